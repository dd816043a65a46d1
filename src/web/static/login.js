// The login page: says why the last attempt failed. The server sends a failed login
// back to login?error=<code> (unauthorized: a wrong token; rate_limited: too many tries).
"use strict";
(function () {
  const error = new URLSearchParams(window.location.search).get("error");
  if (!error) return;
  const messages = {
    rate_limited: "Too many failed attempts: wait a minute and try again.",
    forbidden: "The login was refused: it came from another site.",
    too_large: "The login form was too large.",
  };
  const box = document.getElementById("login-error");
  box.textContent = messages[error] || "That token is not valid.";
  box.hidden = false;
})();
