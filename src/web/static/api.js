// Talking to the dashboard's REST API, and the error banner / notice line.
//
// Paths are relative ("api/stats", not "/api/stats") so the dashboard works wherever it
// is mounted (e.g. at /jobs). Requests carry the session cookie (credentials
// "same-origin"); state-changing ones also carry the X-CSRF-Token header that
// GET api/session hands out.

import { h, replace } from "./dom.js";

export const session = { role: null, csrf: null };

export class ApiError extends Error {
  constructor(status, error, detail, data) {
    super(detail ? `${error}: ${detail}` : String(error));
    this.status = status;
    this.error = error;
    this.detail = detail;
    this.data = data;
  }
}

// api("jobs", {query: {state: "dead"}}), api("jobs/ID/retry", {method: "POST", body: {...}}).
// Resolves to the parsed JSON; rejects with an ApiError (network failures too, status 0).
export async function api(path, { method = "GET", query, body } = {}) {
  let url = "api/" + path;
  if (query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value === null || value === undefined || value === "") continue;
      for (const item of Array.isArray(value) ? value : [value]) params.append(key, String(item));
    }
    const text = params.toString();
    if (text) url += "?" + text;
  }
  const headers = { Accept: "application/json" };
  if (method !== "GET" && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  // referrerPolicy "same-origin": under the server's "no-referrer" policy a browser sends
  // "Origin: null" with a POST, which the server's cross-origin check refuses.
  const init = { method, headers, credentials: "same-origin", cache: "no-store", referrerPolicy: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    throw new ApiError(0, "network", "cannot reach the dashboard server (" + err.message + ")");
  }
  if (response.status === 401) {
    // The session expired or was never made: back to the login form, which returns to this page.
    window.location.assign("login" + window.location.hash);
    throw new ApiError(401, "unauthorized", "log in again");
  }
  let data = null;
  const type = response.headers.get("Content-Type") || "";
  if (type.includes("json")) {
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
  }
  if (!response.ok) {
    const error = (data && data.error) || "http_" + response.status;
    const detail = (data && data.detail) || response.statusText || "";
    throw new ApiError(response.status, error, detail, data);
  }
  return data;
}

// Reads the role and the CSRF token once at start.
export async function loadSession() {
  const data = await api("session");
  session.role = data.role;
  session.csrf = data.csrf;
  document.body.classList.toggle("role-read", data.role === "read");
  return data;
}

export function readOnly() {
  return session.role === "read";
}

// The error banner (data-testid="error-banner"). `source` says what showed it: a failed
// page load ("load") is cleared by the next good load; an action's error stays until
// dismissed or until the page changes.
let bannerSource = null;

export function showError(err, source = "action") {
  const banner = document.getElementById("error-banner");
  const text = err instanceof ApiError ? describe(err) : String(err && err.message ? err.message : err);
  bannerSource = source;
  replace(banner,
    h("span.banner-text", null, text),
    h("button.link.close", { type: "button", title: "Dismiss", "aria-label": "Dismiss", onclick: () => clearError() }));
  banner.hidden = false;
}

function describe(err) {
  if (err.status === 0) return err.detail;
  const what = err.error === "read_only" ? "read-only session" : err.error;
  return err.detail ? `${what}: ${err.detail}` : `${what} (HTTP ${err.status})`;
}

export function clearError(source) {
  if (typeof source === "string" && bannerSource !== source) return;
  const banner = document.getElementById("error-banner");
  banner.hidden = true;
  banner.replaceChildren();
  bannerSource = null;
}

// A short-lived line saying what an action did ("Retried 3 jobs").
let noticeTimer = null;

export function notice(text) {
  const el = document.getElementById("notice");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { el.hidden = true; }, 6000);
}

// Runs an action: shows its error in the banner, a notice on success, and returns its
// result (undefined on failure). Buttons passed in are disabled while it runs.
export async function act(fn, { button, done } = {}) {
  if (button) button.disabled = true;
  try {
    const result = await fn();
    if (done) notice(typeof done === "function" ? done(result) : done);
    return result;
  } catch (err) {
    showError(err, "action");
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

// POSTs an action that the server may want confirmed (409 {"error": "confirm", "count": n}
// when it would act on more than 1,000 jobs): asks the user question(count) and sends it
// again with "confirm": true. Resolves to null when the user says no.
export async function postConfirmed(path, body, question) {
  try {
    return await api(path, { method: "POST", body });
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 409 && err.error === "confirm")) throw err;
    const count = err.data && typeof err.data.count === "number" ? err.data.count.toLocaleString() : "many";
    if (!window.confirm(question(count))) return null;
    return await api(path, { method: "POST", body: { ...body, confirm: true } });
  }
}
