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

  // Reflect the state of the SSE connection in the live indicator.
  function setLive(isLive) {
    var indicator = document.getElementById("live-indicator");
    if (!indicator) return;
    indicator.classList.toggle("is-offline", !isLive);
    var text = indicator.querySelector(".live-text");
    if (text) {
      text.textContent = isLive ? "live_feed_active" : "live_feed_reconnecting";
    }
  }

  document.addEventListener("DOMContentLoaded", fillTimezoneOffset);
  document.addEventListener("htmx:afterSwap", function (event) {
    fillTimezoneOffset();
    // htmx fires afterSwap on the newly swapped-in element(s); live results
    // updates never move focus.
    var swapped = event.target;
    if (swapped && swapped.id !== "live-results") {
      focusFirstInvalid(swapped);
    }
  });
  document.addEventListener("input", selectWriteIn);
  document.addEventListener("htmx:sseOpen", function () { setLive(true); });
  document.addEventListener("htmx:sseError", function () { setLive(false); });
})();
