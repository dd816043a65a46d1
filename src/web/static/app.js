// The fastjobs dashboard: hash routing, the live / paused toggle and the logout button.
//
// Modules: dom.js (building elements, formatting), api.js (requests, session, error
// banner), chart.js (the throughput chart), pages-*.js (one function per page).
// Nothing here is built or bundled: the browser loads these files as they are.

import { api, loadSession, session, showError, clearError } from "./api.js";
import { overviewPage, queuesPage } from "./pages-overview.js";
import { jobsPage } from "./pages-jobs.js";
import { jobPage } from "./pages-job.js";
import { deadPage, periodicPage, workersPage } from "./pages-misc.js";

const PAGES = {
  overview: overviewPage,
  queues: queuesPage,
  jobs: jobsPage,
  job: jobPage,
  dead: deadPage,
  periodic: periodicPage,
  workers: workersPage,
};

const main = document.getElementById("main");
let current = null; // {name, page, token}
let routeToken = 0;

// "#/jobs?state=dead" -> {name: "jobs", params}; "#/jobs/<id>" -> {name: "job", params with id}.
function parseHash() {
  const hash = window.location.hash.replace(/^#\/?/, "");
  const [path, query] = splitOnce(hash, "?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  let name = parts[0] || "overview";
  if (name === "jobs" && parts.length > 1) {
    name = "job";
    params.set("id", decodeURIComponent(parts.slice(1).join("/")));
  }
  if (!PAGES[name]) name = "overview";
  return { name, params };
}

function splitOnce(text, sep) {
  const i = text.indexOf(sep);
  return i < 0 ? [text, ""] : [text.slice(0, i), text.slice(i + 1)];
}

function render() {
  const { name, params } = parseHash();
  const token = ++routeToken;
  clearError();
  for (const link of document.querySelectorAll("nav.main-nav a")) {
    const page = link.dataset.page;
    const active = page === name || (page === "jobs" && name === "job");
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  main.replaceChildren();
  main.setAttribute("aria-busy", "true");
  const ctx = { current: () => token === routeToken };
  const page = PAGES[name](main, params, ctx, () => refresh(token));
  current = { name, page, token, busy: false, again: false };
  document.title = `${titleOf(name, params)} · fastjobs`;
  refresh(token);
}

function titleOf(name, params) {
  if (name === "job") return "Job " + params.get("id");
  return name.charAt(0).toUpperCase() + name.slice(1);
}

// Refreshes the page on screen (at once); errors go to the banner. A refresh asked for
// while one runs is done after it.
async function refresh(token) {
  const page = current;
  if (!page || token !== page.token) return;
  if (page.busy) {
    page.again = true;
    return;
  }
  page.busy = true;
  try {
    await page.page.refresh();
    if (page === current) clearError("load");
  } catch (err) {
    if (page === current) showError(err, "load");
  } finally {
    page.busy = false;
    lastRefresh = Date.now();
    if (page === current) {
      main.removeAttribute("aria-busy");
      if (page.again) {
        page.again = false;
        scheduleRefresh();
      }
    }
  }
}

// Live updates: events from the WebSocket schedule a refresh, at most one a second.
let lastRefresh = 0;
let timer = null;

// A hidden tab (another tab in front, a minimised window) asks nothing of the server:
// it catches up when shown again.
let missed = false;

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && missed) {
    missed = false;
    scheduleRefresh();
  }
});

function scheduleRefresh() {
  if (document.hidden) {
    missed = true;
    return;
  }
  if (timer || !current) return;
  const wait = Math.max(150, 1000 - (Date.now() - lastRefresh));
  timer = setTimeout(() => {
    timer = null;
    if (current) refresh(current.token);
  }, wait);
}

// The toggle's choice is remembered in this browser (localStorage may be unavailable).
function remembered() {
  try {
    return localStorage.getItem("fastjobs.live") !== "off";
  } catch (err) {
    return true;
  }
}

function remember(on) {
  try {
    localStorage.setItem("fastjobs.live", on ? "on" : "off");
  } catch (err) {
    /* not kept: fine */
  }
}

const live = {
  on: remembered(),
  socket: null,
  retryDelay: 1000,
  retryTimer: null,
  pollTimer: null,
  failures: 0, // connections in a row that failed
  status: "connecting",
};

function eventsUrl() {
  const url = new URL("api/events", document.baseURI);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.hash = "";
  url.search = "";
  return url.href;
}

function connect() {
  if (!live.on || live.socket) return;
  let socket;
  try {
    socket = new WebSocket(eventsUrl());
  } catch (err) {
    reconnectLater();
    return;
  }
  live.socket = socket;
  if (live.failures < 3) setStatus("connecting");
  socket.addEventListener("open", () => {
    live.retryDelay = 1000;
    live.failures = 0;
    setStatus("live");
    scheduleRefresh(); // catch up on what happened while disconnected
  });
  socket.addEventListener("message", () => scheduleRefresh());
  socket.addEventListener("close", (event) => {
    if (live.socket !== socket) return;
    live.socket = null;
    if (live.on) reconnectLater();
  });
  socket.addEventListener("error", () => { /* "close" follows and reconnects */ });
}

// Tries again after 1 s, 2 s, 4 s... up to 30 s. A lost session sends the user to the login
// form (the session check before each try answers 401). If the server answers but keeps
// refusing the WebSocket (live updates off: create_app(live=False), or a proxy without
// WebSockets), the toggle says so; the page still refreshes every 15 s.
function reconnectLater() {
  live.failures += 1;
  setStatus(live.failures >= 3 ? "off" : "reconnecting");
  clearTimeout(live.retryTimer);
  const delay = live.retryDelay * (0.75 + Math.random() * 0.5);
  live.retryDelay = Math.min(live.retryDelay * 2, 30000);
  live.retryTimer = setTimeout(() => {
    live.retryTimer = null;
    // The session may have expired: a 401 here sends the user to the login form.
    api("session").then(connect, () => reconnectLater());
  }, delay);
}

function disconnect() {
  clearTimeout(live.retryTimer);
  live.retryTimer = null;
  const socket = live.socket;
  live.socket = null;
  if (socket) socket.close(1000, "paused");
  setStatus("paused");
}

function setLive(on) {
  live.on = on;
  remember(on);
  if (on) {
    live.retryDelay = 1000;
    live.failures = 0;
    connect();
    scheduleRefresh();
  } else {
    disconnect();
  }
  clearInterval(live.pollTimer);
  // Heartbeats, ages and rates change without events: a slow refresh while live.
  live.pollTimer = on ? setInterval(scheduleRefresh, 15000) : null;
}

function setStatus(status) {
  live.status = status;
  const toggle = document.getElementById("live-toggle");
  const labels = {
    live: "Live", connecting: "Live (connecting…)", reconnecting: "Live (reconnecting…)", paused: "Paused",
    off: "Live unavailable: refreshing every 15 s",
  };
  toggle.querySelector(".live-label").textContent = labels[status];
  toggle.dataset.status = status;
  toggle.setAttribute("aria-pressed", live.on ? "true" : "false");
  toggle.title = live.on ? "Updates arrive as jobs change: click to pause" : "Updates are paused: click to go live";
}

async function logout(event) {
  event.preventDefault();
  // Nothing more asks the server for data: it would answer 401 once the session ended.
  current = null;
  clearTimeout(timer);
  clearInterval(live.pollTimer);
  window.removeEventListener("hashchange", render);
  disconnect();
  try {
    await fetch("logout", {
      method: "POST", credentials: "same-origin", referrerPolicy: "same-origin", headers: session.csrf ? { "X-CSRF-Token": session.csrf } : {},
    });
  } finally {
    window.location.assign("login");
  }
}

async function start() {
  document.getElementById("live-toggle").addEventListener("click", () => setLive(!live.on));
  document.getElementById("logout").addEventListener("submit", logout);
  try {
    await loadSession();
  } catch (err) {
    showError(err, "load");
  }
  const role = document.getElementById("role");
  role.textContent = session.role === "read" ? "read-only" : "";
  role.hidden = session.role !== "read";
  window.addEventListener("hashchange", render);
  render();
  setLive(live.on);
}

start();
