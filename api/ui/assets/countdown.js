// The resend button's countdown: the form works without it (the server refuses an early
// resend and says when to retry); this only shows the wait.
(function () {
  'use strict';
  document.querySelectorAll('[data-available-at]').forEach(function (button) {
    var at = Date.parse(button.dataset.availableAt);
    var label = button.textContent;
    if (isNaN(at)) { return; }
    function tick() {
      var left = Math.ceil((at - Date.now()) / 1000);
      if (left > 0) {
        button.disabled = true;
        button.textContent = label + ' (' + left + ' s)';
        window.setTimeout(tick, 500);
      } else {
        button.disabled = false;
        button.textContent = label;
      }
    }
    tick();
  });
})();
