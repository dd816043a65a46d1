// Jobs (#/jobs?state=&queue=&task=&tag=&since=&until=&limit=): filters, a page of jobs,
// next page by cursor, actions on the selected jobs or on all the jobs the filter matches.

import { api, act, notice, postConfirmed } from "./api.js";
import {
  h, append, replace, route, table, emptyRow, STATES, fmtCount, stateBadge, jobLink, ageCell, toSeconds,
} from "./dom.js";

const FILTERS = ["state", "queue", "task", "tag", "since", "until"];
const LIMITS = [25, 50, 100, 200];
const ACTIONS = { retry: "Retry", cancel: "Cancel", delete: "Delete" };

export function jobsPage(root, params, ctx, refreshNow) {
  const filter = {};
  for (const key of FILTERS) if (params.get(key)) filter[key] = params.get(key);
  const limit = LIMITS.includes(Number(params.get("limit"))) ? Number(params.get("limit")) : 50;

  const cursors = [null]; // the cursor of each page shown so far; the last one is on screen
  let nextCursor = null;
  let shown = []; // the jobs on screen
  const selected = new Set();

  // Filters form: submitting it changes the hash, which renders the page anew.
  const form = filterForm(filter, limit, () => { cursors.length = 1; refreshNow(); });
  const queueList = h("datalist", { id: "queue-names" });
  api("queues").then((queues) => {
    replace(queueList, queues.map((q) => h("option", { value: q.name })));
  }, () => {});

  const count = h("span.selection-count");
  const selButtons = Object.entries(ACTIONS).map(([action, label]) => h("button", {
    type: "button", class: action === "delete" ? "danger" : null, "data-testid": "jobs-" + action + "-selected",
    onclick: (e) => actOnSelected(action, e.currentTarget),
  }, label + " selected"));
  const allAction = h("select", { "aria-label": "Action for all matching jobs", "data-testid": "jobs-all-action" },
    Object.entries(ACTIONS).map(([action, label]) => h("option", { value: action }, label)));
  const allButton = h("button", {
    type: "button", "data-testid": "jobs-apply-all", onclick: (e) => actOnAll(allAction.value, e.currentTarget),
  }, "Apply to all matching");
  const toolbar = h("div.toolbar.admin-only", null,
    h("span.group", null, count, selButtons),
    h("span.group", null, allAction, allButton));

  const selectAll = h("input", {
    type: "checkbox", "aria-label": "Select all jobs on this page", "data-testid": "jobs-select-all",
    onchange: () => {
      for (const job of shown) {
        if (selectAll.checked) selected.add(job.id);
        else selected.delete(job.id);
      }
      for (const box of tableBox.querySelectorAll("input.pick")) box.checked = selectAll.checked;
      updateSelection();
    },
  });
  const tableBox = h("div");
  const pager = h("div.pager");
  const prevButton = h("button", {
    type: "button", "data-testid": "jobs-prev",
    onclick: () => { cursors.pop(); selected.clear(); refreshNow(); },
  }, "← Previous page");
  const firstButton = h("button", {
    type: "button", "data-testid": "jobs-first",
    onclick: () => { cursors.length = 1; selected.clear(); refreshNow(); },
  }, "First page");
  const nextButton = h("button", {
    type: "button", "data-testid": "jobs-next",
    onclick: () => { if (nextCursor) { cursors.push(nextCursor); selected.clear(); refreshNow(); } },
  }, "Next page →");
  const pageLabel = h("span.muted");
  append(pager, [firstButton, prevButton, pageLabel, nextButton]);

  replace(root, h("h1", null, "Jobs"), form, queueList, toolbar, tableBox, pager);
  updateSelection();

  function updateSelection() {
    count.textContent = selected.size ? `${selected.size} selected` : "none selected";
    for (const b of selButtons) b.disabled = selected.size === 0;
    selectAll.checked = shown.length > 0 && shown.every((j) => selected.has(j.id));
  }

  async function actOnSelected(action, button) {
    const ids = [...selected];
    if (!ids.length) return;
    if (action === "delete" && !window.confirm(`Delete ${ids.length} selected job(s)? This cannot be undone.`)) return;
    const result = await act(() => postConfirmed("jobs/actions", { action, ids },
      (n) => `${ACTIONS[action]} ${n} jobs?`), { button });
    if (result) {
      notice(`${ACTIONS[action]}: ${fmtCount(result.done)} of ${ids.length} selected job(s) done`);
      selected.clear();
    }
    refreshNow();
  }

  async function actOnAll(action, button) {
    const text = describeFilter(filter);
    if (!window.confirm(`${ACTIONS[action]} every job matching ${text}?`)) return;
    const body = { action, filter: apiFilter(filter) };
    // Over 1,000 jobs the server asks to confirm, with the count.
    const result = await act(() => postConfirmed("jobs/actions", body,
      (n) => `This matches ${n} jobs. ${ACTIONS[action]} all of them?`), { button });
    if (result) notice(`${ACTIONS[action]}: done for ${fmtCount(result.done)} job(s) matching ${text}`);
    selected.clear();
    refreshNow();
  }

  function row(job) {
    const box = h("input.pick", {
      type: "checkbox", "aria-label": "Select job " + job.id, checked: selected.has(job.id),
      onchange: () => {
        if (box.checked) selected.add(job.id);
        else selected.delete(job.id);
        updateSelection();
      },
    });
    const err = job.error;
    return h("tr", { "data-testid": "job-row-" + job.id, "data-state": job.state },
      h("td.pick-cell.admin-only", null, box),
      h("td", null, jobLink(job.id)),
      h("td", null, h("a", { href: route("jobs", { ...filter, task: job.task }) }, job.task)),
      h("td", null, h("a", { href: route("jobs", { ...filter, queue: job.queue }) }, job.queue)),
      h("td", null, stateBadge(job.state)),
      h("td.num", null, `${job.attempt}/${job.max_attempts}`),
      h("td.num", null, String(job.priority)),
      h("td.tags", null, (job.tags || []).map((t) => h("a.tag", { href: route("jobs", { tag: t }) }, t))),
      h("td", null, ageCell(job.enqueued_at)),
      h("td", null, ageCell(job.finished_at || job.started_at)),
      h("td.error-cell", null, err ? h("span", { title: `${err.type}: ${err.message}` },
        h("strong", null, err.type), ": ", truncate(err.message, 80)) : null));
  }

  return {
    async refresh() {
      const cursor = cursors[cursors.length - 1];
      const page = await api("jobs", { query: { ...filter, limit, cursor } });
      if (!ctx.current()) return;
      shown = page.jobs || [];
      nextCursor = page.cursor || null;
      const ids = new Set(shown.map((j) => j.id));
      for (const id of [...selected]) if (!ids.has(id)) selected.delete(id);
      const headers = [h("span.admin-only", null, selectAll), "Id", "Task", "Queue", "State", "Attempt",
        "Priority", "Tags", "Enqueued", "Started / finished", "Last error"];
      replace(tableBox, table(headers,
        shown.length ? shown.map(row) : [emptyRow(headers.length, "No jobs match these filters.")],
        { class: "jobs" }));
      tableBox.querySelector("th").classList.add("pick-cell", "admin-only");
      nextButton.disabled = !nextCursor;
      prevButton.disabled = cursors.length <= 1;
      firstButton.disabled = cursors.length <= 1;
      pageLabel.textContent = `page ${cursors.length} · ${shown.length} job(s)`;
      updateSelection();
    },
  };
}

function truncate(text, n) {
  const s = String(text);
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

// The filter as the actions endpoint takes it: since/until as epoch seconds, several states as a list.
function apiFilter(filter) {
  const out = {};
  for (const [key, value] of Object.entries(filter)) {
    if (key === "state") out.state = value.includes(",") ? value.split(",") : value;
    else if (key === "since" || key === "until") out[key] = Number(value);
    else out[key] = value;
  }
  return out;
}

function describeFilter(filter) {
  const parts = Object.entries(filter).map(([key, value]) =>
    key === "since" || key === "until" ? `${key} ${new Date(Number(value) * 1000).toLocaleString()}` : `${key}=${value}`);
  return parts.length ? parts.join(", ") : "no filter (every job)";
}

// datetime-local input values <-> epoch seconds (in the hash).
function toLocalInput(seconds) {
  const s = toSeconds(Number(seconds));
  if (s === null || isNaN(s)) return "";
  const d = new Date(s * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function fromLocalInput(value) {
  if (!value) return "";
  const ms = new Date(value).getTime();
  return isNaN(ms) ? "" : String(Math.floor(ms / 1000));
}

// The filters form; submitting it sets the hash (the router renders the page anew), or
// calls `again` when the filters did not change (no hashchange then).
function filterForm(filter, limit, again) {
  const state = h("select", { name: "state", "data-testid": "filter-state" },
    h("option", { value: "" }, "any state"),
    STATES.map((s) => h("option", { value: s }, s.replace("_", " "))));
  if (filter.state && !STATES.includes(filter.state)) state.appendChild(h("option", { value: filter.state }, filter.state));
  state.value = filter.state || "";
  const input = (name, placeholder, list) => h("input", {
    name, placeholder, value: filter[name] || "", list, "data-testid": "filter-" + name, autocomplete: "off",
  });
  const since = h("input", { type: "datetime-local", name: "since", value: toLocalInput(filter.since), "data-testid": "filter-since" });
  const until = h("input", { type: "datetime-local", name: "until", value: toLocalInput(filter.until), "data-testid": "filter-until" });
  const limitSelect = h("select", { name: "limit", "aria-label": "Jobs per page" },
    LIMITS.map((n) => h("option", { value: n }, `${n} per page`)));
  limitSelect.value = String(limit);
  const label = (text, control) => h("label", null, h("span", null, text), control);
  return h("form.filters", {
    "data-testid": "jobs-filters",
    onsubmit: (e) => {
      e.preventDefault();
      const data = new FormData(e.currentTarget);
      const next = {};
      for (const key of ["state", "queue", "task", "tag"]) next[key] = String(data.get(key) || "").trim();
      next.since = fromLocalInput(String(data.get("since") || ""));
      next.until = fromLocalInput(String(data.get("until") || ""));
      if (Number(data.get("limit")) !== 50) next.limit = data.get("limit");
      const hash = route("jobs", next);
      if (window.location.hash === hash) again();
      else window.location.hash = hash;
    },
  },
  label("State", state),
  label("Queue", input("queue", "any queue", "queue-names")),
  label("Task", input("task", "any task")),
  label("Tag", input("tag", "any tag")),
  label("Since", since),
  label("Until", until),
  label("Show", limitSelect),
  h("span.form-buttons", null,
    h("button.primary", { type: "submit", "data-testid": "filter-apply" }, "Search"),
    h("a.button", { href: route("jobs") }, "Reset")));
}
