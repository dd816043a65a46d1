// Job detail (#/jobs/<id>): every field of the job, its timeline, each attempt's error,
// and retry / edit and retry / cancel / delete.

import { api, act, notice, ApiError } from "./api.js";
import {
  h, replace, route, fields, pre, stateBadge, jobLink, jobHref, timeCell, fmtDuration, toSeconds,
  UNFINISHED, RETRYABLE,
} from "./dom.js";

export function jobPage(root, params, ctx, refreshNow) {
  const id = params.get("id");
  let job = null;
  const opened = new Map(); // attempt -> whether the user opened (true) or closed (false) its error

  const title = h("h1", null, "Job ", h("span.mono", null, id));
  const buttons = h("div.toolbar.admin-only");
  const editBox = h("div.edit-box", { hidden: true });
  const body = h("div");
  replace(root, h("p.crumbs", null, h("a", { href: route("jobs") }, "← Jobs")), title, buttons, editBox, body);

  function button(label, testid, onclick, enabled, why, cls) {
    return h("button", {
      type: "button", "data-testid": testid, class: cls, disabled: !enabled, title: enabled ? null : why, onclick,
    }, label);
  }

  function renderButtons() {
    const state = job.state;
    replace(buttons,
      button("Retry", "job-retry", (e) => retry(e.currentTarget, undefined), RETRYABLE.has(state),
        "only a dead or cancelled job can be retried", "primary"),
      button("Edit and retry…", "job-edit", openEdit, RETRYABLE.has(state),
        "only a dead or cancelled job can be retried"),
      button("Cancel", "job-cancel", cancel, UNFINISHED.has(state), "the job has finished"),
      button("Delete", "job-delete", remove, state !== "active", "an active job cannot be deleted: cancel it first",
        "danger"));
  }

  async function retry(btn, edits) {
    const result = await act(() => api(`jobs/${encodeURIComponent(id)}/retry`, { method: "POST", body: edits }), {
      button: btn,
    });
    if (result === undefined) return false;
    if (result && result.ok === false) {
      notice("Not retried: a live job of its queue holds its unique key, or it changed state meanwhile");
    } else {
      notice(edits ? "Edited and retried" : "Retried");
    }
    refreshNow();
    return true;
  }

  async function cancel(e) {
    if (!window.confirm("Cancel this job?")) return;
    const result = await act(() => api(`jobs/${encodeURIComponent(id)}/cancel`, { method: "POST" }),
      { button: e.currentTarget });
    if (result !== undefined) notice(result && result.ok === false ? "Not cancelled: it already finished" : "Cancelled");
    refreshNow();
  }

  async function remove(e) {
    if (!window.confirm("Delete this job and everything kept about it? This cannot be undone.")) return;
    const result = await act(() => api(`jobs/${encodeURIComponent(id)}`, { method: "DELETE" }),
      { button: e.currentTarget });
    if (result === undefined) return;
    if (result && result.ok === false) {
      notice("Not deleted: it became active meanwhile");
      refreshNow();
    } else {
      notice(`Job ${id} deleted`);
      window.location.hash = route("jobs");
    }
  }

  // Edit and retry: args and kwargs as JSON, queue, priority, max_attempts.
  function openEdit() {
    const args = h("textarea", { name: "args", rows: 6, spellcheck: "false", "data-testid": "edit-args" });
    args.value = JSON.stringify(job.args || [], null, 2);
    const kwargs = h("textarea", { name: "kwargs", rows: 6, spellcheck: "false", "data-testid": "edit-kwargs" });
    kwargs.value = JSON.stringify(job.kwargs || {}, null, 2);
    const queue = h("input", { name: "queue", value: job.queue, required: true, "data-testid": "edit-queue" });
    const priority = h("input", { name: "priority", type: "number", step: 1, value: job.priority, "data-testid": "edit-priority" });
    const maxAttempts = h("input", {
      name: "max_attempts", type: "number", min: 1, step: 1, value: job.max_attempts, "data-testid": "edit-max-attempts",
    });
    const problem = h("p.form-error", { hidden: true, role: "alert" });
    const fail = (text) => { problem.textContent = text; problem.hidden = false; };
    const label = (text, control) => h("label", null, h("span", null, text), control);
    const form = h("form.edit", {
      "data-testid": "edit-form",
      onsubmit: async (e) => {
        e.preventDefault();
        problem.hidden = true;
        let a;
        let k;
        try {
          a = JSON.parse(args.value);
        } catch (err) {
          return fail("args: not valid JSON (" + err.message + ")");
        }
        try {
          k = JSON.parse(kwargs.value);
        } catch (err) {
          return fail("kwargs: not valid JSON (" + err.message + ")");
        }
        if (!Array.isArray(a)) return fail("args must be a JSON array, e.g. [1, \"two\"]");
        if (k === null || typeof k !== "object" || Array.isArray(k)) return fail("kwargs must be a JSON object, e.g. {\"to\": \"x\"}");
        const p = Number(priority.value);
        const m = Number(maxAttempts.value);
        if (!Number.isInteger(p)) return fail("priority must be a whole number");
        if (!Number.isInteger(m) || m < 1) return fail("max attempts must be a whole number, at least 1");
        const edits = { args: a, kwargs: k, queue: queue.value.trim(), priority: p, max_attempts: m };
        if (await retry(e.submitter || null, edits)) closeEdit();
      },
    },
    h("h2", null, "Edit and retry"),
    h("p.muted.small", null, "The job keeps its id and its errors; it runs again with fresh attempts and these values."),
    h("div.edit-grid", null,
      label("args (JSON array)", args),
      label("kwargs (JSON object)", kwargs)),
    h("div.edit-row", null,
      label("Queue", queue), label("Priority", priority), label("Max attempts", maxAttempts)),
    problem,
    h("div.buttons", null,
      h("button.primary", { type: "submit", "data-testid": "edit-submit" }, "Retry with these values"),
      h("button", { type: "button", onclick: closeEdit }, "Close")));
    replace(editBox, form);
    editBox.hidden = false;
    args.focus();
  }

  function closeEdit() {
    editBox.hidden = true;
    editBox.replaceChildren();
  }

  function render() {
    const j = job;
    const section = (heading, ...content) => h("section.panel", null, h("h2", null, heading), ...content);
    const finished = toSeconds(j.finished_at);
    const started = toSeconds(j.started_at);
    replace(title, h("span.mono", null, j.task), " ", stateBadge(j.state, { "data-testid": "job-state" }));
    const parents = j.depends_on || [];
    replace(body,
      h("div.detail-grid", null,
        section("Job",
          fields([
            ["Id", h("span.mono", { "data-testid": "job-id" }, j.id)],
            ["Task", h("a", { href: route("jobs", { task: j.task }) }, j.task)],
            ["Queue", h("a", { href: route("jobs", { queue: j.queue }) }, j.queue)],
            ["State", stateBadge(j.state)],
            ["Attempt", `${j.attempt} of ${j.max_attempts}`],
            ["Priority", String(j.priority)],
            ["Tags", (j.tags || []).length
              ? h("span.tags", { "data-testid": "job-tags" }, j.tags.map((t) => h("a.tag", { href: route("jobs", { tag: t }) }, t)))
              : h("span.muted", null, "none")],
            ["Enqueued", timeCell(j.enqueued_at)],
            ["Runs at", timeCell(j.run_at)],
            ["Started", timeCell(j.started_at)],
            ["Finished", timeCell(j.finished_at)],
            ["Ran for", finished !== null && started !== null ? fmtDuration(finished - started) : null],
            ["Unique key", j.unique_key === null || j.unique_key === undefined ? null : h("span.mono", null, j.unique_key)],
            ["Limit key", j.limit_key === null || j.limit_key === undefined ? null : h("span.mono", null, j.limit_key)],
            // A batch's id is its tracking job's: that job lists the members under "Depends on".
            ["Batch", !j.batch_id ? null : j.batch_id === j.id
              ? h("span", { "data-testid": "job-batch" }, "this job tracks the batch (its members are below)")
              : h("a.mono", { href: jobHref(j.batch_id), "data-testid": "job-batch" }, j.batch_id)],
            ["Progress", progress(j.progress)],
          ])),
        section("Timeline", timeline(j))),
      parents.length ? section("Depends on",
        h("p", null, `${parents.length} job(s); ${j.pending_parents || 0} not finished yet, ${j.failed_parents || 0} dead or cancelled.`),
        h("ul.links", { "data-testid": "job-parents" }, parents.map((p) => h("li", null, jobLink(p))))) : null,
      section("Arguments",
        h("h3", null, "args"), pre(j.args, { "data-testid": "job-args" }),
        h("h3", null, "kwargs"), pre(j.kwargs, { "data-testid": "job-kwargs" })),
      j.meta && Object.keys(j.meta).length ? section("Meta", pre(j.meta, { "data-testid": "job-meta" })) : null,
      j.result !== null && j.result !== undefined || j.state === "succeeded"
        ? section("Result", pre(j.result === undefined ? null : j.result, { "data-testid": "job-result" })) : null,
      section(`Errors (${(j.errors || []).length})`, errors(j.errors || [], opened)));
    renderButtons();
  }

  return {
    async refresh() {
      try {
        const data = await api(`jobs/${encodeURIComponent(id)}`);
        if (!ctx.current()) return;
        job = data;
        render();
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 404) || !ctx.current()) throw err;
        job = null;
        replace(buttons);
        replace(body, h("p.empty-page", { "data-testid": "job-missing" },
          "No job has this id (it was deleted, trimmed by the retention, or never existed)."));
      }
    },
  };
}

function progress(p) {
  if (!p) return null;
  const fraction = Math.max(0, Math.min(1, Number(p.fraction) || 0));
  return h("div.progress", { "data-testid": "job-progress" },
    h("progress", { max: 1, value: fraction }, `${Math.round(fraction * 100)} %`),
    h("span", null, `${Math.round(fraction * 100)} %`),
    p.message ? h("span", null, "· ", p.message) : null,
    h("span.muted", null, "· ", timeCell(p.at)));
}

// What happened when, oldest first: enqueued, scheduled, each attempt's start and failure, the end.
function timeline(j) {
  const events = [];
  const add = (at, label, detail, cls) => {
    const t = toSeconds(at);
    if (t !== null && t > 0) events.push({ t, label, detail, cls });
  };
  add(j.enqueued_at, "enqueued", `to ${j.queue}`);
  if (j.state === "scheduled" || j.state === "retry_pending") add(j.run_at, "due", "next run");
  else if (!(j.errors || []).length && toSeconds(j.run_at) - toSeconds(j.enqueued_at) > 1) add(j.run_at, "due", "scheduled run");
  for (const e of j.errors || []) {
    add(e.started_at, `attempt ${e.attempt} started`, e.worker ? `on ${e.worker}` : null);
    add(e.at, `attempt ${e.attempt} failed`, `${e.type}: ${e.message}`, "state-dead");
  }
  // The current run's start, unless it is a failed attempt's already listed (a retried job
  // starts again from attempt 1: compare times, not attempt numbers).
  const lastFailure = Math.max(0, ...(j.errors || []).map((e) => toSeconds(e.at) || 0));
  if (j.started_at && toSeconds(j.started_at) > lastFailure) add(j.started_at, `attempt ${j.attempt} started`, null);
  if (j.finished_at) add(j.finished_at, j.state, null, "state-" + j.state);
  else if (j.state !== "active") add(Date.now() / 1000, `now ${j.state}`, null, "state-" + j.state);
  events.sort((a, b) => a.t - b.t);
  return h("ol.timeline", { "data-testid": "job-timeline" }, events.map((e) =>
    h("li", null,
      h("span.dot", { class: e.cls || null }),
      h("strong", null, e.label), " ", timeCell(e.t),
      e.detail ? h("div.muted.small", null, e.detail) : null)));
}

function errors(list, opened) {
  if (!list.length) return h("p.muted", null, "No attempt failed.");
  return h("div.errors", { "data-testid": "job-errors" }, [...list].reverse().map((e) => {
    const started = toSeconds(e.started_at);
    const at = toSeconds(e.at);
    const open = opened.has(e.attempt) ? opened.get(e.attempt) : e === list[list.length - 1];
    const box = h("details.error", { open, ontoggle: () => opened.set(e.attempt, box.open) },
      h("summary", null, h("strong", null, `Attempt ${e.attempt}: `), h("span.error-type", null, e.type), ": ", e.message),
      fields([
        ["Type", h("span.mono", null, e.type)],
        ["Message", e.message],
        ["Worker", e.worker ? h("a.mono", { href: route("workers") }, e.worker) : null],
        ["Started", started !== null ? timeCell(started) : null],
        ["Failed", timeCell(e.at)],
        ["Ran for", started !== null && at !== null ? fmtDuration(at - started) : null],
      ]),
      e.traceback ? pre(e.traceback, { class: "traceback" }) : h("p.muted", null, "No traceback recorded."));
    return box;
  }));
}
