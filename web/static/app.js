// Progressive enhancement for the Traceless dashboard. Every page works
// without this file; it only adds copy buttons to secrets shown once, and
// follows at once a link marked data-follow (the way on to a Stripe page).
(function () {
  "use strict";

  function say(button, text) {
    var status = button.nextElementSibling;
    if (status && status.classList.contains("copy-status")) {
      status.textContent = text;
    }
  }

  // selectText selects the element's text so that the person can copy it
  // by hand when the clipboard is not available.
  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  function fallback(button, el) {
    selectText(el);
    var ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (e) {
      ok = false;
    }
    say(button, ok ? "Copied." : "Selected: press Ctrl+C (or ⌘C) to copy.");
  }

  function copy(button) {
    var el = document.getElementById(button.getAttribute("data-copy"));
    if (!el) {
      return;
    }
    var text = el.textContent.trim();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () {
        say(button, "Copied.");
      }, function () {
        fallback(button, el);
      });
    } else {
      fallback(button, el);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var follow = document.querySelector("a[data-follow]");
    if (follow) {
      window.location.assign(follow.href);
    }
    var buttons = document.querySelectorAll("button[data-copy]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].hidden = false;
      buttons[i].addEventListener("click", function (ev) {
        copy(ev.currentTarget);
      });
    }
  });
})();
