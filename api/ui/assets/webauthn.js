// WebAuthn for the pages: the one thing forms cannot do. Each button asks the API (or the
// page's own CSRF-checked route) for options, asks the browser's authenticator, puts the
// answer in the form's hidden fields and submits the form: the server side is the same form
// post as everything else.
(function () {
  'use strict';

  function fromB64url(s) {
    s = s.replace(/-/g, '+').replace(/_/g, '/');
    while (s.length % 4) { s += '='; }
    var bin = atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }

  function toB64url(buf) {
    var bytes = new Uint8Array(buf);
    var bin = '';
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function getOptions(options) {
    var pk = Object.assign({}, options.publicKey);
    pk.challenge = fromB64url(pk.challenge);
    if (pk.allowCredentials) {
      pk.allowCredentials = pk.allowCredentials.map(function (c) {
        return Object.assign({}, c, { id: fromB64url(c.id) });
      });
    }
    return { publicKey: pk };
  }

  function createOptions(options) {
    var pk = Object.assign({}, options.publicKey);
    pk.challenge = fromB64url(pk.challenge);
    pk.user = Object.assign({}, pk.user, { id: fromB64url(pk.user.id) });
    if (pk.excludeCredentials) {
      pk.excludeCredentials = pk.excludeCredentials.map(function (c) {
        return Object.assign({}, c, { id: fromB64url(c.id) });
      });
    }
    return { publicKey: pk };
  }

  function assertionJson(cred) {
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      extensions: {},
      response: {
        authenticatorData: toB64url(cred.response.authenticatorData),
        clientDataJSON: toB64url(cred.response.clientDataJSON),
        signature: toB64url(cred.response.signature),
        userHandle: cred.response.userHandle ? toB64url(cred.response.userHandle) : null
      }
    };
  }

  function attestationJson(cred) {
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      extensions: {},
      response: {
        attestationObject: toB64url(cred.response.attestationObject),
        clientDataJSON: toB64url(cred.response.clientDataJSON)
      }
    };
  }

  async function postJson(url, body) {
    var r = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body)
    });
    var json = await r.json().catch(function () { return {}; });
    if (!r.ok) { throw new Error((json.error && json.error.message) || ('refused (' + r.status + ')')); }
    return json;
  }

  async function postForm(url, form) {
    var body = new URLSearchParams();
    body.set('csrf', form.querySelector('input[name="csrf"]').value);
    var r = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: body.toString()
    });
    var json = await r.json().catch(function () { return {}; });
    if (!r.ok) { throw new Error((json.error && json.error.message) || ('refused (' + r.status + ')')); }
    return json;
  }

  function say(el, text) { if (el) { el.textContent = text; } }

  function supported() { return !!(window.PublicKeyCredential && navigator.credentials); }

  // Sign-in, second step: answer the challenge with a security key.
  document.querySelectorAll('form[data-security-key-login]').forEach(function (form) {
    var button = form.querySelector('[data-use-key]');
    var status = form.querySelector('[data-key-status]');
    if (!supported()) { say(status, 'This browser cannot use security keys; use a code below.'); return; }
    button.addEventListener('click', async function () {
      button.disabled = true;
      say(status, 'Touch your security key…');
      try {
        var challenge = form.querySelector('input[name="challenge_id"]').value;
        var ceremony = await postJson('/v1/login/mfa/security-key', { challenge_id: challenge });
        var cred = await navigator.credentials.get(getOptions(ceremony.options));
        form.querySelector('input[name="ceremony_id"]').value = ceremony.ceremony_id;
        form.querySelector('input[name="assertion"]').value = JSON.stringify(assertionJson(cred));
        say(status, 'Checking…');
        form.submit();
      } catch (e) {
        say(status, 'The key did not answer: ' + e.message);
        button.disabled = false;
      }
    });
  });

  // Sign-in page: a passkey instead of identifier and password.
  document.querySelectorAll('[data-passkey]').forEach(function (box) {
    if (!supported()) { return; }
    box.hidden = false;
    var button = box.querySelector('button');
    var status = box.querySelector('[role="status"]');
    var form = box.querySelector('form');
    button.addEventListener('click', async function () {
      button.disabled = true;
      say(status, 'Choose your passkey…');
      try {
        var ceremony = await postJson('/v1/login/passkey/options', {});
        var cred = await navigator.credentials.get(getOptions(ceremony.options));
        form.querySelector('input[name="ceremony_id"]').value = ceremony.ceremony_id;
        form.querySelector('input[name="assertion"]').value = JSON.stringify(assertionJson(cred));
        form.submit();
      } catch (e) {
        say(status, 'No passkey was used: ' + e.message);
        button.disabled = false;
      }
    });
  });

  // Security center: register a security key or a passkey (the form names where its options come
  // from, and also carries the password proof).
  document.querySelectorAll('form[data-register-key]').forEach(function (form) {
    var button = form.querySelector('[data-create-key]');
    var status = form.querySelector('[data-key-status]');
    if (!supported()) { say(status, 'This browser cannot register security keys.'); button.disabled = true; return; }
    button.addEventListener('click', async function () {
      if (!form.reportValidity()) { return; }
      button.disabled = true;
      say(status, 'Follow your browser\u2019s prompt…');
      try {
        var ceremony = await postForm(form.dataset.optionsUrl, form);
        var cred = await navigator.credentials.create(createOptions(ceremony.options));
        form.querySelector('input[name="ceremony_id"]').value = ceremony.ceremony_id;
        form.querySelector('input[name="credential"]').value = JSON.stringify(attestationJson(cred));
        say(status, 'Saving…');
        form.submit();
      } catch (e) {
        say(status, 'Nothing was registered: ' + e.message);
        button.disabled = false;
      }
    });
  });
})();
