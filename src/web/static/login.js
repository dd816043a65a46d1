// The login page: says why the last attempt failed, and returns to the page asked for. The
// server sends a failed login back to login?error=<code> (unauthorized: a wrong token;
// rate_limited: too many tries). A page opened without a session (say #/jobs/<id>) comes
// here with its route as the fragment (the browser keeps it across the server's redirect,
// the page adds it on a 401): the form posts it as "next" and the server, which accepts
// only a "#/..." route there (never a URL), redirects to it after the login.
"use strict";
(function () {
  const route = window.location.hash;
  if (/^#\/[A-Za-z0-9\-._~!$&'()*+,;=:@\/?%]{0,2000}$/.test(route)) {
    document.getElementById("next").value = route;
  }
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
