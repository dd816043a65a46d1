// Dead letters grouped by error (#/dead), periodic tasks (#/periodic), workers (#/workers).

import { api, act, readOnly, postConfirmed } from "./api.js";
import {
  h, replace, route, table, emptyRow, fmtCount, fmtDuration, stateBadge, jobLink, ageCell, timeCell, toSeconds,
} from "./dom.js";

export function deadPage(root, params, ctx, refreshNow) {
  const queue = params.get("queue") || "";
  const note = h("p.muted.small");
  const body = h("div");
  const form = h("form.filters.inline", {
    onsubmit: (e) => {
      e.preventDefault();
      window.location.hash = route("dead", { queue: new FormData(e.currentTarget).get("queue").trim() });
    },
  },
  h("label", null, h("span", null, "Queue"), h("input", { name: "queue", value: queue, placeholder: "any queue" })),
  h("span.form-buttons", null, h("button", { type: "submit" }, "Show")),
  h("a.button", { href: route("jobs", { state: "dead", queue }) }, "All dead jobs in the jobs list"));
  replace(root, h("h1", null, "Dead letters"), form, note, body);

  function groupAction(group, action, button) {
    const what = `${group.type}: ${group.message}`;
    const verb = action === "retry" ? "Retry" : "Delete";
    if (!window.confirm(`${verb} the ${fmtCount(group.count)} dead job(s) failing with\n\n${what}\n\n${queue ? "in queue " + queue : "in every queue"}?`)) return;
    const payload = { type: group.type, message: group.message };
    if (queue) payload.queue = queue;
    act(() => postConfirmed("dead/groups/" + action, payload, (n) => `${n} jobs: ${verb.toLowerCase()} all of them?`), {
      button, done: (r) => (r ? `${verb}: ${fmtCount(r.done)} job(s)` : "Nothing done"),
    }).then(refreshNow);
  }

  return {
    async refresh() {
      const data = await api("dead/groups", { query: { queue } });
      if (!ctx.current()) return;
      const groups = Array.isArray(data) ? data : data.groups || [];
      const scanned = Array.isArray(data) ? null : data.scanned;
      note.textContent = "Dead jobs grouped by exception type and message"
        + (typeof scanned !== "number" ? "."
          : data.complete === false ? `, from the newest ${fmtCount(scanned)} dead jobs (there are more).`
            : `: all ${fmtCount(scanned)} dead jobs.`);
      const headers = ["Error", "Jobs", "Queues", "Latest", "Examples", ""];
      const rows = groups.map((g, i) => h("tr", { "data-testid": "dead-group-" + i },
        h("td.error-cell", null, g.type ? h("strong.error-type", null, g.type) : h("span.muted", null, "no error recorded"),
          h("div", null, g.message)),
        h("td.num", null, fmtCount(g.count)),
        h("td", null, (g.queues || []).map((q) => h("a.tag", { href: route("jobs", { state: "dead", queue: q }) }, q))),
        h("td", null, ageCell(g.latest_at)),
        h("td.ids", null, (g.sample_ids || []).slice(0, 5).map((id) => jobLink(id)),
          (g.sample_ids || []).length > 5 ? h("span.muted", null, ` +${g.sample_ids.length - 5}`) : null),
        h("td", null, readOnly() ? null : h("span.buttons", null,
          h("button", { type: "button", "data-testid": "dead-retry-" + i, onclick: (e) => groupAction(g, "retry", e.currentTarget) }, "Retry all"),
          h("button.danger", { type: "button", "data-testid": "dead-delete-" + i, onclick: (e) => groupAction(g, "delete", e.currentTarget) }, "Delete all")))));
      replace(body, table(headers, rows.length ? rows : [emptyRow(headers.length, "No dead jobs.")], { class: "dead" }));
    },
  };
}

export function periodicPage(root, params, ctx) {
  const body = h("div");
  replace(root, h("h1", null, "Periodic tasks"), body);
  return {
    async refresh() {
      const list = await api("periodic");
      if (!ctx.current()) return;
      const headers = ["Task", "Queue", "Schedule", "Time zone", "Next run", "Last run", "Outcome"];
      const rows = list.map((p) => h("tr", { "data-testid": "periodic-row-" + p.task },
        h("th", { scope: "row" }, h("a", { href: route("jobs", { task: p.task }) }, p.task)),
        h("td", null, p.queue ? h("a", { href: route("jobs", { queue: p.queue }) }, p.queue) : h("span.muted", null, "–")),
        h("td.mono", null, p.schedule),
        h("td", null, p.tz || ""),
        h("td", null, timeCell(p.next_run)),
        h("td", null, p.last_run === null || p.last_run === undefined ? h("span.muted", null, "never") : timeCell(p.last_run)),
        h("td", null, p.last_state ? stateBadge(p.last_state) : h("span.muted", null, "–"),
          p.last_job_id ? [" ", jobLink(p.last_job_id)] : null)));
      replace(body, table(headers, rows.length ? rows : [emptyRow(headers.length, "No periodic tasks are registered with this app.")]));
    },
  };
}

export function workersPage(root, params, ctx) {
  const body = h("div");
  const opened = new Set(); // workers whose running jobs the user opened (kept across refreshes)
  replace(root, h("h1", null, "Workers"), body);
  return {
    async refresh() {
      const workers = await api("workers");
      if (!ctx.current()) return;
      workers.sort((a, b) => Number(b.alive) - Number(a.alive) || String(a.id).localeCompare(String(b.id)));
      const now = Date.now() / 1000;
      const headers = ["Host", "Pid", "Queues", "Concurrency", "Running", "Uptime", "Last heartbeat", "Version", "Status"];
      const rows = workers.map((w) => {
        const running = w.running || [];
        const started = toSeconds(w.started_at);
        return h("tr", { "data-testid": "worker-row-" + w.id, class: w.alive ? null : "gone", title: w.id },
          h("th", { scope: "row" }, w.hostname),
          h("td.num", null, String(w.pid)),
          h("td", null, (w.queues || []).map((q) => h("a.tag", { href: route("jobs", { queue: q }) }, q))),
          h("td.num", null, String(w.concurrency)),
          h("td", null, running.length
            ? h("details", {
              open: opened.has(w.id),
              ontoggle: (e) => { if (e.currentTarget.open) opened.add(w.id); else opened.delete(w.id); },
            }, h("summary", null, `${running.length} job(s)`),
              h("ul.links", null, running.map((id) => h("li", null, jobLink(id)))))
            : h("span.muted", null, "0")),
          h("td", null, started === null ? "–" : w.alive ? fmtDuration(now - started) : h("span.muted", null, "–")),
          h("td", null, ageCell(w.last_seen)),
          h("td.mono", null, w.version || ""),
          h("td", null, w.alive ? h("span.badge.badge-alive", null, "alive") : h("span.badge.badge-gone", null, "gone")));
      });
      const alive = workers.filter((w) => w.alive).length;
      replace(body,
        h("p.muted.small", null, `${alive} alive, ${workers.length - alive} gone. A worker is gone when no heartbeat came within its time to live.`),
        table(headers, rows.length ? rows : [emptyRow(headers.length, "No workers registered.")], { class: "workers" }));
    },
  };
}
