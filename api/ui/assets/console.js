// The staff console's live alert list: listens to the alerts feed (/console/alerts/stream, the
// API's stream passed through with the console cookie) and, on each alert event, reloads the
// list's rows from the same page URL (the same filters). Without JavaScript the page works by
// reloading it.
(function () {
  'use strict';
  var status = document.getElementById('live-status');
  var rows = document.getElementById('alert-rows');
  if (!status || !rows || !window.EventSource || !window.fetch || !window.DOMParser) {
    return;
  }
  var busy = false;
  var again = false;

  function paused() {
    status.textContent = 'Live updates paused: reload the page.';
  }

  function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    fetch(window.location.href, { credentials: 'same-origin', headers: { Accept: 'text/html' } })
      .then(function (response) {
        if (!response.ok || response.redirected) {
          throw new Error('status ' + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, 'text/html').getElementById('alert-rows');
        if (fresh) {
          rows.replaceWith(document.importNode(fresh, true));
          rows = document.getElementById('alert-rows');
        }
        status.textContent = 'Live: updated at ' + new Date().toLocaleTimeString() + '.';
      })
      .catch(paused)
      .finally(function () {
        busy = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  var feed = new EventSource(status.getAttribute('data-live-feed'));
  feed.addEventListener('open', function () {
    status.textContent = 'Live: new alerts appear here as they are raised.';
  });
  feed.addEventListener('alert', refresh);
  feed.addEventListener('error', function () {
    if (feed.readyState === EventSource.CLOSED) {
      paused();
    }
  });
})();
