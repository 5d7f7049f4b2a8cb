// uptally console: passkeys (WebAuthn). Adds one from the account page, signs in with one at
// the second step or alone. Buttons marked data-passkey stay hidden where the browser has no WebAuthn.
"use strict";
(function () {
  if (!window.PublicKeyCredential || !navigator.credentials) return;

  function toBytes(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var raw = atob(b64), bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }
  function toText(buffer) {
    var bytes = new Uint8Array(buffer), raw = "";
    for (var i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function descriptors(list) {
    return (list || []).map(function (d) { return Object.assign({}, d, { id: toBytes(d.id) }); });
  }
  function credentialJSON(cred) {
    var r = cred.response, out = { id: cred.id, rawId: toText(cred.rawId), type: cred.type,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: toText(r.clientDataJSON) } };
    if (cred.authenticatorAttachment) out.authenticatorAttachment = cred.authenticatorAttachment;
    if (r.attestationObject) {
      out.response.attestationObject = toText(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = toText(r.authenticatorData);
      out.response.signature = toText(r.signature);
      if (r.userHandle) out.response.userHandle = toText(r.userHandle);
    }
    return out;
  }
  function post(url, body) {
    return window.uptally.post(url, body).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) throw new Error(data.error || ("the server answered " + response.status));
        return data;
      });
    });
  }
  function showError(message) {
    var box = document.querySelector("[data-passkey-error]");
    if (!box) return;
    box.textContent = message;
    box.hidden = !message;
  }
  function failed(error) {
    if (error && error.name === "NotAllowedError") showError("The passkey request was cancelled or timed out.");
    else showError(error && error.message ? error.message : String(error));
  }

  function register(button) {
    var name = document.getElementById("passkey-name");
    showError("");
    button.disabled = true;
    post("/console/account/passkeys/options").then(function (options) {
      options.challenge = toBytes(options.challenge);
      options.user.id = toBytes(options.user.id);
      options.excludeCredentials = descriptors(options.excludeCredentials);
      return navigator.credentials.create({ publicKey: options });
    }).then(function (cred) {
      return post("/console/account/passkeys", { name: name ? name.value : "", credential: credentialJSON(cred) });
    }).then(function (data) { window.location.assign(data.next); }, failed)
      .then(function () { button.disabled = false; });
  }

  function signIn(button) {
    showError("");
    button.disabled = true;
    post("/console/login/passkey/options").then(function (options) {
      options.challenge = toBytes(options.challenge);
      options.allowCredentials = descriptors(options.allowCredentials);
      return navigator.credentials.get({ publicKey: options });
    }).then(function (cred) {
      return post("/console/login/passkey", { next: button.getAttribute("data-next") || "", credential: credentialJSON(cred) });
    }).then(function (data) { window.location.assign(data.next); }, failed)
      .then(function () { button.disabled = false; });
  }

  function passwordless(button) {
    showError("");
    button.disabled = true;
    post("/console/login/passkey/start").then(function (options) {
      options.challenge = toBytes(options.challenge);
      options.allowCredentials = descriptors(options.allowCredentials);
      return navigator.credentials.get({ publicKey: options });
    }).then(function (cred) {
      return post("/console/login/passkey/finish", { next: button.getAttribute("data-next") || "", credential: credentialJSON(cred) });
    }).then(function (data) { window.location.assign(data.next); }, failed)
      .then(function () { button.disabled = false; });
  }

  document.querySelectorAll("[data-passkey]").forEach(function (el) {
    var role = el.getAttribute("data-passkey");
    el.hidden = false;
    if (role === "register") el.addEventListener("click", function () { register(el); });
    if (role === "sign-in") el.addEventListener("click", function () { signIn(el); });
    if (role === "passwordless") el.addEventListener("click", function () { passwordless(el); });
  });
})();
