// The freeze link's page: reads the token from the page's own address (the server never echoes
// it) and posts it to the endpoint named by the button.
(function () {
  'use strict';
  var button = document.getElementById('freeze');
  var out = document.getElementById('out');
  if (!button || !out) { return; }
  button.addEventListener('click', async function () {
    var token = new URLSearchParams(window.location.search).get('t') || '';
    out.textContent = 'Freezing…';
    button.disabled = true;
    try {
      var r = await fetch(button.dataset.endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ token: token })
      });
      if (r.status === 204) {
        out.textContent = 'Your account is frozen. Every session was signed out and every API key and device revoked. To unfreeze it later, use "unfreeze" in the app (a code to each of your verified contacts and your second factor).';
        return;
      }
      var e = await r.json().catch(function () { return {}; });
      out.textContent = (e.error && e.error.message) || ('Could not freeze (' + r.status + ').');
    } catch (_) {
      out.textContent = 'Could not reach the server; try again.';
    }
    button.disabled = false;
  });
})();
