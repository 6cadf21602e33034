// Oponn page behaviour. Loaded with `defer`; no inline handlers anywhere,
// so the pages run under a strict Content-Security-Policy.
(function () {
  "use strict";

  // The create form posts the browser's UTC offset so a scheduled start
  // entered in local time can be converted on the server.
  function fillTimezoneOffset() {
    var field = document.getElementById("tz_offset_minutes");
    if (field) {
      field.value = String(new Date().getTimezoneOffset());
    }
  }

  // After a form comes back with errors, move focus to the first invalid
  // field so keyboard and screen-reader users land on the problem.
  function focusFirstInvalid(root) {
    if (!root || !root.querySelector) return;
    var invalid = root.querySelector("[aria-invalid='true']");
    if (invalid && typeof invalid.focus === "function") {
      invalid.focus();
    }
  }

  // Typing a write-in selects the write-in radio, so the typed value is
  // what gets submitted.
  function selectWriteIn(event) {
    var target = event.target;
    if (!target || target.id !== "write_in_value") return;
    var radio = document.getElementById("option_write_in");
    if (radio && target.value !== "") {
      radio.checked = true;
    }
  }

  // Reflect the state of the SSE connection in the live indicator: shown
  // only with JavaScript (without it, a <noscript> note says so), as
  // connecting until the stream opens, active while it is, reconnecting
  // after it drops.
  function setLive(state) {
    var indicator = document.getElementById("live-indicator");
    if (!indicator) return;
    indicator.hidden = false;
    indicator.classList.toggle("is-offline", state !== "active");
    var text = indicator.querySelector(".live-text");
    if (text) {
      text.textContent = "live_feed_" + state;
    }
  }

  // Tell screen readers what changed in one short sentence (the polite
  // live region), never the whole table on every update.
  function announceResults() {
    var region = document.getElementById("live-summary");
    var results = document.querySelector("#live-results .results");
    if (!region || !results) return;
    var total = results.querySelector(".results-total");
    var tie = results.querySelector(".results-tie");
    var leader = results.querySelector(".result-row.leading .result-label");
    var summary = total ? total.textContent.trim() : "";
    if (tie) {
      summary += ". " + tie.textContent.trim();
    } else if (leader) {
      summary += ". leading: " + leader.textContent.replace(/^>\s*/, "").trim();
    }
    if (region.textContent !== summary) region.textContent = summary;
  }

  // What to do next after a refusal, by status, when the page did not say.
  var NEXT_STEP = {
    403: "Reload the page and try again.",
    404: "This ballot was deleted, or the page no longer exists. Go back to the dashboard.",
    409: "Reload the page to see the ballot as it is now.",
    429: "Wait a moment, then try again.",
    503: "Nothing was changed. Try again in a moment."
  };

  // htmx swaps only successful answers: show every refusal (a lost CSRF
  // cookie, a ballot deleted meanwhile, an outage) where the user acted,
  // in the server's own words, with a next step.
  function showRequestError(event, offline) {
    var source = event.detail && event.detail.elt;
    var anchor = source && source.closest ? (source.closest("form") || source) : null;
    if (!anchor || !anchor.parentNode) return;
    var status = offline ? 0 : (event.detail.xhr ? event.detail.xhr.status : 0);
    var message = "";
    if (!offline && event.detail.xhr && event.detail.xhr.responseText) {
      var page = new DOMParser().parseFromString(event.detail.xhr.responseText, "text/html");
      var said = page.querySelector(".alert-error, .error-message");
      if (said) message = said.textContent.trim();
    }
    if (!message) {
      // The server's own page says what to do; without one, say it here.
      message = offline
        ? "Could not reach Oponn. Check your connection, then try again."
        : "Something went wrong (" + status + ").";
      var next = NEXT_STEP[status] || (status >= 500 ? NEXT_STEP[503] : "");
      if (next) message += " " + next;
    }
    // Beside the button that was pressed, where the eye already is.
    var place = (anchor.querySelector && anchor.querySelector(".form-actions")) || anchor;
    var region = place.previousElementSibling;
    if (!region || !region.classList.contains("request-error")) {
      region = document.createElement("div");
      region.className = "alert-error request-error";
      region.setAttribute("role", "alert");
      place.parentNode.insertBefore(region, place);
    }
    region.textContent = message;
    if (typeof region.scrollIntoView === "function") {
      region.scrollIntoView({ block: "nearest" });
    }
  }

  document.addEventListener("DOMContentLoaded", fillTimezoneOffset);
  document.addEventListener("DOMContentLoaded", function () {
    if (document.getElementById("live-indicator")) setLive("connecting");
  });
  document.addEventListener("htmx:responseError", function (event) { showRequestError(event, false); });
  document.addEventListener("htmx:sendError", function (event) { showRequestError(event, true); });
  document.addEventListener("htmx:afterSwap", function (event) {
    fillTimezoneOffset();
    // htmx fires afterSwap on the newly swapped-in element(s); live results
    // updates never move focus.
    var swapped = event.target;
    if (swapped && swapped.id === "live-results") {
      announceResults();
    } else {
      focusFirstInvalid(swapped);
    }
  });
  document.addEventListener("input", selectWriteIn);
  document.addEventListener("htmx:sseOpen", function () { setLive("active"); });
  document.addEventListener("htmx:sseError", function () { setLive("reconnecting"); });
})();
