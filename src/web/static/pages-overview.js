// Overview (#/overview) and Queues (#/queues).

import { api, act, readOnly, showError } from "./api.js";
import {
  h, replace, route, table, emptyRow, STATES, fmtCount, fmtRate, fmtPercent, fmtDuration, stateBadge,
} from "./dom.js";
import { throughputChart, stepName } from "./chart.js";

// Each page is a function (root element, route params, ctx) returning {refresh}: the router
// calls refresh() once and then again on live updates; ctx.current() turns false once the
// user went to another page (a late answer is then dropped).

export function overviewPage(root, params, ctx) {
  let range = ["1h", "24h", "30d"].includes(params.get("range")) ? params.get("range") : "1h";
  const cards = h("section.cards", { "aria-label": "Jobs per state" });
  const summary = h("section.cards.summary", { "aria-label": "Throughput and workers" });
  const chartBox = h("div.chart-box");
  const legend = h("p.chart-legend.muted");
  const tabs = h("div.tabs", { role: "tablist" },
    ["1h", "24h", "30d"].map((r) => h("button", {
      type: "button", role: "tab", "data-range": r, "data-testid": "chart-range-" + r,
      "aria-selected": r === range ? "true" : "false",
      onclick: () => { range = r; markTabs(); loadChart().catch((err) => showError(err, "load")); },
    }, r)));
  const markTabs = () => {
    for (const b of tabs.children) b.setAttribute("aria-selected", b.dataset.range === range ? "true" : "false");
  };

  replace(root,
    h("h1", null, "Overview"),
    cards,
    summary,
    h("section.panel", null,
      h("div.panel-head", null, h("h2", null, "Throughput"), tabs),
      chartBox,
      legend));

  async function loadStats() {
    const stats = await api("stats");
    if (!ctx.current()) return;
    const totals = stats.totals || {};
    const states = STATES.concat(Object.keys(totals).filter((s) => !STATES.includes(s)));
    // Large counts may be estimates (PostgreSQL: see Backend.stats_estimated): shown with "~".
    const estimated = new Set(Object.values(stats.estimated || {}).flat());
    replace(cards, states.map((state) =>
      h("a.card.state-card.state-" + state.replace(/[^a-z_]/g, ""),
        { href: route("jobs", { state }), title: estimated.has(state) ? "an estimate: large counts are estimated" : null },
        h("span.card-label", null, state.replace("_", " ")),
        h("span.card-value", { "data-testid": "stat-" + state },
          (estimated.has(state) ? "~" : "") + fmtCount(totals[state] || 0)))));
    const t = stats.throughput || {};
    const w = stats.workers || {};
    const paused = stats.paused || [];
    replace(summary,
      card("Jobs/s now", fmtRate(t.jobs_per_s), "last full minute, all queues", "stat-jobs-per-s"),
      card("Failure rate", t.failure_rate === null || t.failure_rate === undefined ? "–" : fmtPercent(t.failure_rate),
        "retried + dead / runs, last hour", "stat-failure-rate"),
      h("a.card", { href: route("workers") },
        h("span.card-label", null, "Live workers"),
        h("span.card-value", { "data-testid": "stat-workers" }, fmtCount(w.alive || 0)),
        h("span.card-note", null, w.gone ? `${fmtCount(w.gone)} gone` : "none gone")),
      h("a.card", { href: route("queues") },
        h("span.card-label", null, "Queues"),
        h("span.card-value", null, fmtCount(Object.keys(stats.queues || {}).length)),
        h("span.card-note", null, paused.length ? "paused: " + paused.join(", ") : "none paused")));
  }

  async function loadChart() {
    const wanted = range;
    const points = await api("history/series", { query: { range: wanted } });
    if (!ctx.current() || wanted !== range) return;
    const { chart, step } = throughputChart(points, wanted, chartBox.clientWidth || 800);
    replace(chartBox, chart);
    const total = (points || []).reduce((sum, p) => sum + (p.succeeded || 0) + (p.failed || 0), 0);
    replace(legend,
      h("span.key.key-ok"), " succeeded ", h("span.key.key-failed"), " failed (retried or dead)",
      ` · jobs per ${stepName(step)} · ${fmtCount(total)} in the last ${wanted}`);
  }

  // The chart's points are per minute at best: live refreshes redraw it every 10 s at most.
  let chartAt = 0;

  return {
    async refresh() {
      const chartDue = Date.now() - chartAt > 10000;
      if (chartDue) chartAt = Date.now();
      await Promise.all([loadStats(), chartDue ? loadChart() : null]);
    },
  };
}

function card(label, value, note, testid) {
  return h("div.card", null,
    h("span.card-label", null, label),
    h("span.card-value", { "data-testid": testid }, value),
    h("span.card-note", null, note));
}

// Queues: depth per state, oldest age, jobs/s, p50/p95, paused; pause/resume/clear.

const QUEUE_STATES = ["queued", "scheduled", "retry_pending", "active", "waiting", "succeeded", "dead", "cancelled"];

export function queuesPage(root, params, ctx, refreshNow) {
  const body = h("div");
  replace(root, h("h1", null, "Queues"), body);

  function actions(q) {
    if (readOnly()) return h("span.muted", null, "read-only");
    const name = q.name;
    const toggle = q.paused
      ? h("button", {
        type: "button", "data-testid": "queue-resume-" + name,
        onclick: (e) => act(() => api(`queues/${encodeURIComponent(name)}/resume`, { method: "POST" }),
          { button: e.currentTarget, done: `Queue ${name} resumed` }).then(refreshNow),
      }, "Resume")
      : h("button", {
        type: "button", "data-testid": "queue-pause-" + name,
        onclick: (e) => act(() => api(`queues/${encodeURIComponent(name)}/pause`, { method: "POST" }),
          { button: e.currentTarget, done: `Queue ${name} paused` }).then(refreshNow),
      }, "Pause");
    const waiting = (q.counts.queued || 0) + (q.counts.scheduled || 0) + (q.counts.retry_pending || 0);
    const clear = h("button.danger", {
      type: "button", "data-testid": "queue-clear-" + name,
      title: "Delete the queue's jobs that have not started (queued, scheduled, retry pending)",
      onclick: (e) => {
        const ok = window.confirm(`Clear queue "${name}"?\n\nThis deletes its ${fmtCount(waiting)} queued, scheduled `
          + "and retry-pending jobs. Active, waiting and finished jobs stay.");
        if (!ok) return;
        act(() => api(`queues/${encodeURIComponent(name)}/clear`, { method: "POST" }),
          { button: e.currentTarget, done: (r) => `Cleared ${fmtCount(r && r.cleared)} jobs from ${name}` })
          .then(refreshNow);
      },
    }, "Clear");
    return h("span.buttons", null, toggle, clear);
  }

  return {
    async refresh() {
      const queues = await api("queues");
      if (!ctx.current()) return;
      const rows = queues.map((q) => {
        q.counts = q.counts || {};
        return h("tr", { "data-testid": "queue-row-" + q.name, class: q.paused ? "paused" : null },
          h("th", { scope: "row" }, h("a", { href: route("jobs", { queue: q.name }) }, q.name)),
          QUEUE_STATES.map((s) => h("td.num", null, q.counts[s]
            ? h("a", { href: route("jobs", { queue: q.name, state: s }),
              title: (q.estimated || []).includes(s) ? "an estimate: large counts are estimated" : null },
            ((q.estimated || []).includes(s) ? "~" : "") + fmtCount(q.counts[s]))
            : h("span.muted", null, "0"))),
          h("td.num", null, q.oldest_age === null || q.oldest_age === undefined ? "–" : fmtDuration(q.oldest_age)),
          h("td.num", null, fmtRate(q.jobs_per_s)),
          h("td.num", null, fmtDuration(q.p50)),
          h("td.num", null, fmtDuration(q.p95)),
          h("td", null,
            q.paused ? stateBadge("paused", { class: "badge-paused" }) : h("span.muted", null, "running"),
            q.broken ? h("span.badge.badge-broken", { title: q.broken }, "broken") : null),
          h("td", null, actions(q)));
      });
      const headers = ["Queue", ...QUEUE_STATES.map((s) => s.replace("_", " ")),
        "Oldest ready", "Jobs/s", "p50", "p95", "Status", ""];
      replace(body,
        table(headers, rows.length ? rows : [emptyRow(headers.length, "No queues yet.")], { class: "queues" }),
        h("p.muted.small", null,
          "Oldest ready: how long the oldest job ready to run has waited. Jobs/s, p50 and p95 run times: "
          + "the last 5 minutes. Clear deletes the jobs that have not started."),
        ...queues.filter((q) => q.broken).map((q) => h("p.warn", null, `Queue ${q.name}: ${q.broken}`)));
    },
  };
}
