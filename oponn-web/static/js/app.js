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

  // Each date-time picker's value is local time; its UTC offset is the
  // one in force on that date (not today's: a daylight-saving change may
  // lie between), posted beside it.
  var ZONE_FIELDS = [
    ["scheduled_start_time", "start_offset_minutes"],
    ["ends_at_time", "end_offset_minutes"]
  ];
  function fillZoneOffsets() {
    for (var i = 0; i < ZONE_FIELDS.length; i++) {
      var picker = document.getElementById(ZONE_FIELDS[i][0]);
      var offset = document.getElementById(ZONE_FIELDS[i][1]);
      if (!offset) continue;
      var at = picker && picker.value ? new Date(picker.value) : null;
      offset.value = at && !isNaN(at.getTime()) ? String(at.getTimezoneOffset()) : "";
    }
  }

  // Date-time pickers for the future (scheduled start, custom end) refuse
  // past times in the browser too: their minimum is this minute, local.
  function limitToFuture(root) {
    var scope = root && root.querySelectorAll ? root : document;
    var now = new Date();
    now.setSeconds(0, 0);
    var local = new Date(now.getTime() - now.getTimezoneOffset() * 60000)
      .toISOString().slice(0, 16);
    var fields = scope.querySelectorAll("input.future-time");
    for (var i = 0; i < fields.length; i++) fields[i].min = local;
  }

  // The custom end field shows only while "custom end time" is the chosen
  // window, and is required then. Without JavaScript it always shows.
  function showCustomEnd() {
    var choice = document.getElementById("duration_mins");
    var field = document.getElementById("ends-at-field");
    if (!choice || !field) return;
    var custom = choice.value === "custom";
    field.hidden = !custom;
    var input = document.getElementById("ends_at_time");
    if (input) input.required = custom;
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
      text.textContent = LIVE_TEXT[state] || "live_feed_" + state;
    }
  }

  // The indicator's words once the stream has stopped for good.
  var LIVE_TEXT = {
    ended: "live_feed_ended: final results",
    deleted: "live_feed_ended: ballot deleted"
  };

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

  // A span of milliseconds as a countdown reads it: "2d 03h", "1h 05m",
  // "4m 09s", "9s".
  function formatSpan(ms) {
    var seconds = Math.max(0, Math.ceil(ms / 1000));
    var days = Math.floor(seconds / 86400);
    var hours = Math.floor((seconds % 86400) / 3600);
    var minutes = Math.floor((seconds % 3600) / 60);
    var rest = seconds % 60;
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    if (days > 0) return days + "d " + two(hours) + "h";
    if (hours > 0) return hours + "h " + two(minutes) + "m";
    if (minutes > 0) return minutes + "m " + two(rest) + "s";
    return rest + "s";
  }

  // The server's clock, as near as the page can tell: the browser's,
  // corrected by the difference seen when the page arrived.
  var clockSkew = null;
  function serverNow() {
    if (clockSkew === null) {
      var line = document.querySelector(".ballot-state[data-now]");
      var then = line ? Number(line.getAttribute("data-now")) : NaN;
      clockSkew = isFinite(then) && then > 0 ? then - Date.now() : 0;
    }
    return Date.now() + clockSkew;
  }

  // The status line's words for the state it holds, counting down to the
  // next change. At zero it waits for the server to say the change
  // happened (the live stream's `state` event).
  function statusText(line) {
    var status = line.getAttribute("data-status");
    var opensAt = Number(line.getAttribute("data-opens-at"));
    var closesRaw = line.getAttribute("data-closes-at");
    var closesAt = closesRaw ? Number(closesRaw) : NaN;
    var now = serverNow();
    if (status === "pending") {
      return opensAt > now ? "starts in " + formatSpan(opensAt - now) : "opening…";
    }
    if (status === "active") {
      if (!isFinite(closesAt)) return "voting open";
      return closesAt > now ? "ends in " + formatSpan(closesAt - now) : "closing…";
    }
    if (status === "deleted") return "ballot deleted";
    return "voting closed";
  }

  function tickCountdowns() {
    var lines = document.querySelectorAll(".ballot-state");
    for (var i = 0; i < lines.length; i++) {
      var label = lines[i].querySelector(".status-label");
      var text = statusText(lines[i]);
      if (label && label.textContent !== text) label.textContent = text;
    }
  }

  // What a screen reader hears when the state changes.
  var STATE_SUMMARY = {
    active: "Voting is open.",
    ended: "Voting has closed.",
    deleted: "This ballot was deleted."
  };

  // What the vote form says beside itself in each state.
  var STATE_NOTE = {
    ended: "voting_closed: this ballot no longer takes votes.",
    deleted: "This ballot was deleted. Go back to the dashboard to find another."
  };

  // Applies one `state` event (status, opens_at, closes_at) to the page:
  // the status line and its countdown, the vote form's controls (enabled
  // only while open, and only for a viewer the server said may vote), the
  // owner's close button, and results that were waiting for the close.
  function applyState(state) {
    if (!state || typeof state.status !== "string") return;
    var lines = document.querySelectorAll(".ballot-state");
    var previous = lines.length ? lines[0].getAttribute("data-status") : null;
    for (var i = 0; i < lines.length; i++) {
      var line = lines[i];
      line.setAttribute("data-status", state.status);
      if (typeof state.opens_at === "number") line.setAttribute("data-opens-at", String(state.opens_at));
      line.setAttribute("data-closes-at", typeof state.closes_at === "number" ? String(state.closes_at) : "");
      var dot = line.querySelector(".status-dot");
      if (dot) dot.className = "status-dot " + (state.status === "deleted" ? "ended" : state.status);
    }
    tickCountdowns();
    var changed = previous !== null && previous !== state.status;
    var open = state.status === "active";
    // Disabling the control that has focus would drop focus to the page:
    // move it to the note that says why, so keyboard users keep their place.
    var focused = document.activeElement;
    var lostFocus = false;
    var forms = document.querySelectorAll("form[data-can-vote]");
    for (var f = 0; f < forms.length; f++) {
      var options = forms[f].querySelector("fieldset.options");
      var button = forms[f].querySelector("button[type='submit']");
      var enable = open && forms[f].getAttribute("data-can-vote") === "true";
      if (!open && options && options.contains(focused)) lostFocus = true;
      if (!enable && button && button === focused) lostFocus = true;
      if (options) options.disabled = !open;
      if (button) button.disabled = !enable;
    }
    var notes = document.querySelectorAll(".state-note");
    for (var n = 0; n < notes.length; n++) {
      var note = STATE_NOTE[state.status] || (changed && open ? "voting_open: you can vote now." : "");
      notes[n].textContent = note;
      notes[n].hidden = note === "";
    }
    if (lostFocus && notes.length && !notes[0].hidden) {
      notes[0].setAttribute("tabindex", "-1");
      notes[0].focus();
    }
    var closeForms = document.querySelectorAll(".close-form");
    for (var c = 0; c < closeForms.length; c++) {
      closeForms[c].hidden = state.status === "ended" || state.status === "deleted";
    }
    if (changed) {
      var summaries = document.querySelectorAll(".state-summary");
      for (var s = 0; s < summaries.length; s++) {
        summaries[s].textContent = STATE_SUMMARY[state.status] || "";
      }
    }
    // The stream itself stays open until the server says it is final
    // (`sse-close="final"`): votes checked just before the end still
    // arrive.
    if (state.status === "deleted") {
      var controls = document.querySelectorAll(".owner-controls");
      for (var o = 0; o < controls.length; o++) controls[o].hidden = true;
    }
    if (changed && state.status === "ended" && window.htmx &&
        document.querySelector("[data-shown-on-close]") && document.getElementById("results-section")) {
      // The results were waiting for the close: bring them in.
      window.htmx.ajax("GET", window.location.pathname, {
        target: "#results-section", select: "#results-section", swap: "outerHTML"
      });
    }
  }

  // A `state` event is data for applyState, never markup to swap in.
  function takeStateEvent(event) {
    var message = event.detail;
    if (!message || message.type !== "state") return;
    event.preventDefault();
    var state = null;
    try { state = JSON.parse(message.data); } catch (ignored) { return; }
    applyState(state);
  }

  // Copy buttons (shown only with JavaScript; without it the link is
  // selectable text): copy the link, and say so where a screen reader
  // hears it. Falls back to selecting the text and the older copy command
  // where the clipboard API is refused (a page over plain http).
  function showCopyButtons() {
    var buttons = document.querySelectorAll(".copy-button");
    for (var i = 0; i < buttons.length; i++) buttons[i].hidden = false;
  }

  function copyLink(button) {
    var source = document.getElementById(button.getAttribute("data-copy-from"));
    if (!source) return;
    var status = document.querySelector(".copy-status");
    var done = function (copied) {
      var label = button.getAttribute("data-label") || button.textContent;
      button.setAttribute("data-label", label);
      button.textContent = copied ? "copied" : "press Ctrl+C";
      if (status) {
        status.textContent = copied
          ? "Copied: " + source.value
          : "Could not copy by itself: the link is selected, press Ctrl+C (or long-press on a phone).";
      }
      window.setTimeout(function () { button.textContent = label; }, 2000);
    };
    var fallback = function () {
      source.focus();
      source.select();
      var copied = false;
      try { copied = document.execCommand("copy"); } catch (ignored) { copied = false; }
      done(copied);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(source.value).then(function () { done(true); }, fallback);
    } else {
      fallback();
    }
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
    limitToFuture(document);
    showCustomEnd();
  });
  document.addEventListener("change", function (event) {
    if (event.target && event.target.id === "duration_mins") showCustomEnd();
  });
  document.addEventListener("input", fillZoneOffsets);
  document.addEventListener("change", fillZoneOffsets);
  document.addEventListener("DOMContentLoaded", fillZoneOffsets);
  document.addEventListener("DOMContentLoaded", function () {
    if (document.getElementById("live-indicator")) setLive("connecting");
  });
  document.addEventListener("htmx:responseError", function (event) { showRequestError(event, false); });
  document.addEventListener("htmx:sendError", function (event) { showRequestError(event, true); });
  document.addEventListener("htmx:afterSwap", function (event) {
    fillTimezoneOffset();
    fillZoneOffsets();
    limitToFuture(document);
    showCustomEnd();
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
  document.addEventListener("htmx:sseBeforeMessage", takeStateEvent);
  document.addEventListener("DOMContentLoaded", showCopyButtons);
  document.addEventListener("click", function (event) {
    var button = event.target && event.target.closest ? event.target.closest(".copy-button") : null;
    if (button) copyLink(button);
  });
  document.addEventListener("DOMContentLoaded", function () {
    if (document.querySelector(".ballot-state")) {
      tickCountdowns();
      window.setInterval(tickCountdowns, 1000);
    }
  });
  document.addEventListener("htmx:sseOpen", function () { setLive("active"); });
  document.addEventListener("htmx:sseError", function () { setLive("reconnecting"); });
  // The server's `final` event closed the stream for good (voting ended
  // and its last votes are in, or the ballot is gone): say so, not
  // "reconnecting".
  document.addEventListener("htmx:sseClose", function (event) {
    if (!event.detail || event.detail.type !== "message") return;
    var line = document.querySelector(".ballot-state");
    setLive(line && line.getAttribute("data-status") === "deleted" ? "deleted" : "ended");
  });
})();
