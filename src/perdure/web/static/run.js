// One run: its facts, the hooks it waits for (with a form to resume each), a timeline
// of its steps, sleeps and hooks, its input and outcome, and its event log. Refreshed
// every second until the run ends. Parts are kept by key and updated in place, so open
// details, focus and a payload being typed survive the refreshes.

import {
  ApiError,
  api,
  base,
  clearError,
  errorBlock,
  formatDuration,
  formatTime,
  h,
  isTerminal,
  parseTime,
  poll,
  prettyJson,
  runDuration,
  setText,
  showError,
  statusBadge,
} from "./dashboard.js";

const runId = document.body.dataset.runId;
const runPath = `/runs/${encodeURIComponent(runId)}`;

const $ = (id) => document.getElementById(id);
const ui = {
  workflow: $("workflow"),
  status: $("status"),
  facts: $("facts"),
  blocked: $("blocked"),
  cancel: $("cancel"),
  rerun: $("rerun"),
  forkStep: $("fork-step"),
  fork: $("fork"),
  hooksSection: $("hooks-section"),
  hooks: $("hooks"),
  timeline: $("timeline"),
  input: $("input"),
  outcomeTitle: $("outcome-title"),
  outcome: $("outcome"),
  log: $("log"),
  events: $("events"),
};

let current = null; // the run as last fetched
let refresh = () => {};

// -- facts ---------------------------------------------------------------------------

const facts = new Map(); // label -> <dd>

function fact(label, value, title) {
  let dd = facts.get(label);
  if (!dd) {
    dd = h("dd");
    ui.facts.append(h("div", {}, h("dt", {}, label), dd));
    facts.set(label, dd);
  }
  setText(dd, value);
  if (title) dd.title = title;
}

function renderFacts(run, now) {
  setText(ui.workflow, run.workflow);
  const cancelling = run.cancel_requested && !isTerminal(run.status);
  statusBadge(run.status, ui.status, cancelling ? "cancelling" : run.status);
  document.title = `Run ${run.id} (${run.status}) · perdure`;
  fact("Created", formatTime(parseTime(run.created_at)), run.created_at);
  fact("Started", formatTime(parseTime(run.started_at)), run.started_at || "");
  fact("Ended", formatTime(parseTime(run.completed_at)), run.completed_at || "");
  const took = runDuration(run, now);
  fact("Duration", formatDuration(took) + (took !== null && !isTerminal(run.status) ? " …" : ""));
  fact("Version", run.version || "–");
  fact("Held by", run.owner || (isTerminal(run.status) ? "–" : "no worker now"));
  // Its deadline (timeout=), and the business keys it set (perdure.set_attributes).
  if (run.deadline_at) fact("Deadline", formatTime(parseTime(run.deadline_at)), run.deadline_at);
  const attributes = Object.entries(run.attributes || {}).sort(([a], [b]) => a.localeCompare(b));
  if (attributes.length || facts.has("Attributes")) {
    fact("Attributes", attributes.map(([key, value]) => `${key}=${value}`).join(" ") || "–");
  }
  renderFleet(run);
  if (run.forked_from) runLinkFact("Forked from", run.forked_from);
  // A pending run held back by its workflow's concurrency limit: which key, how full.
  if (run.waiting_for || facts.has("Waiting for")) fact("Waiting for", run.waiting_for || "–");
  if (run.parent_id) runLinkFact("Parent", run.parent_id);
  if (run.root_id && run.root_id !== run.parent_id) runLinkFact("Root", run.root_id);
  if (run.children && run.children.length) {
    const ended = run.children.filter((child) => isTerminal(child.status)).length;
    childrenFact(`${run.children.length} (${ended} ended)`, run.id);
  }
  ui.cancel.hidden = isTerminal(run.status) || run.cancel_requested;
  ui.rerun.disabled = false;
  renderBlocked(run);
}

// The parent and the root of a child run: links to their pages.
function runLinkFact(label, id) {
  let dd = facts.get(label);
  if (!dd) {
    ui.facts.append(h("dt", {}, label));
    dd = h("dd");
    ui.facts.append(dd);
    facts.set(label, dd);
  }
  if (dd.dataset.run === id) return;
  dd.dataset.run = id;
  dd.replaceChildren(h("a", { href: runHref(id), class: "mono run-link" }, id));
}

// How many children, linking to the runs list of them (?parent=).
function childrenFact(text, id) {
  runLinkFact("Children", id);
  const link = facts.get("Children").firstChild;
  link.href = `${base}/?parent=${encodeURIComponent(id)}`;
  link.classList.remove("mono");
  setText(link, text);
}

function runHref(id) {
  return `${base}/runs/${encodeURIComponent(id)}`;
}

// The versions of its workflow on the live workers: the holder's, else all they define;
// and, for a run waiting for a worker none of them can be, why.
function renderFleet(run) {
  if (run.live_versions === undefined || isTerminal(run.status)) return;
  const live = run.live_versions.length ? run.live_versions.join(", ") : "none";
  fact("Workers' version", run.worker_version || live, `live workers define: ${live}`);
  if (run.stranded || facts.has("No worker")) fact("No worker", run.stranded || "–");
}

// A blocked run is not failed: it waits for code that can continue it. Say why.
let shownBlocked = null;
function renderBlocked(run) {
  const reason = run.status === "blocked" ? run.blocked_reason || "" : null;
  if (reason === shownBlocked) return;
  shownBlocked = reason;
  ui.blocked.hidden = reason === null;
  if (reason === null) return;
  ui.blocked.replaceChildren(
    h("strong", {}, "Blocked, not failed. "),
    "A worker whose code of this workflow differs tries it again by itself; " +
      `perdure unblock ${run.id} tries it now.`,
    h("pre", { class: "mono" }, reason),
  );
}

// -- input and outcome -----------------------------------------------------------------

let shownInput = null;
let shownOutcome = null;

function renderIo(run) {
  const input = JSON.stringify(run.input);
  if (input !== shownInput) {
    shownInput = input;
    ui.input.replaceChildren(prettyJson(run.input));
  }
  const outcome = JSON.stringify([run.status, run.result, run.error]);
  if (outcome === shownOutcome) return;
  shownOutcome = outcome;
  if (run.status === "completed") {
    setText(ui.outcomeTitle, "Output");
    ui.outcome.replaceChildren(prettyJson(run.result));
  } else if (run.status === "cancelled") {
    // Cancelled by a caller, or for a reason of its own: its deadline passed.
    setText(ui.outcomeTitle, "Outcome");
    const why = run.error ? `: ${run.error.message}` : "";
    ui.outcome.replaceChildren(h("p", { class: "muted", id: "cancelled-why" }, `The run was cancelled${why}.`));
  } else if (run.error) {
    setText(ui.outcomeTitle, "Error");
    ui.outcome.replaceChildren(errorBlock(run.error));
  } else {
    setText(ui.outcomeTitle, "Outcome");
    ui.outcome.replaceChildren(h("p", { class: "muted" }, "The run has not ended yet."));
  }
}

// -- hooks -----------------------------------------------------------------------------

const hookCards = new Map(); // token -> card

// A placeholder payload from the hook's JSON schema: its required fields, typed.
function example(schema) {
  if (!schema || schema.type !== "object" || !schema.properties) return "{}";
  const sample = {};
  const defs = schema.$defs || {};
  for (const name of schema.required || Object.keys(schema.properties)) {
    let field = schema.properties[name] || {};
    if (field.$ref) field = defs[field.$ref.split("/").pop()] || {};
    if (field.enum) sample[name] = field.enum[0];
    else if (field.const !== undefined) sample[name] = field.const;
    else if (field.type === "string") sample[name] = "";
    else if (field.type === "integer" || field.type === "number") sample[name] = 0;
    else if (field.type === "boolean") sample[name] = false;
    else if (field.type === "array") sample[name] = [];
    else if (field.type === "object") sample[name] = {};
    else sample[name] = null;
  }
  return JSON.stringify(sample, null, 2);
}

function hookCard(hook) {
  const id = `payload-${hookCards.size}`;
  const message = h("p", { class: "form-message", role: "status" });
  if (hook.kind === "webhook") {
    const url = `${location.origin}${base}/webhooks/${hook.token}`;
    return h(
      "div",
      { class: "hook" },
      h("p", { class: "hook-title" }, h("strong", {}, "webhook"), " ", h("span", { class: "mono" }, hook.correlation_id)),
      h("p", {}, "Send an HTTP request to ", h("code", { class: "wrap" }, url)),
    );
  }
  const textarea = h("textarea", {
    id,
    name: "payload",
    rows: "4",
    spellcheck: "false",
    class: "mono",
    placeholder: example(hook.schema),
    "aria-describedby": `${id}-help`,
  });
  const button = h("button", { type: "submit", class: "primary" }, "Resume");
  const form = h(
    "form",
    { class: "resume", "data-token": hook.token },
    h("label", { for: id }, "Payload (JSON)"),
    textarea,
    h(
      "p",
      { id: `${id}-help`, class: "help" },
      hook.schema ? "Checked against the hook's schema before it is stored." : "Stored as given: this server does not define the hook (start it with --module).",
    ),
    hook.schema ? h("details", { class: "schema" }, h("summary", {}, "Payload schema"), prettyJson(hook.schema)) : null,
    h("div", { class: "form-actions" }, button, message),
  );
  textarea.addEventListener("input", () => {
    textarea.removeAttribute("aria-invalid");
    message.className = "form-message";
    setText(message, "");
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = textarea.value.trim();
    message.className = "form-message";
    try {
      if (!text) throw new Error("type the payload first (the grey text is an example)");
      JSON.parse(text);
    } catch (error) {
      message.className = "form-message bad";
      setText(message, `Not valid JSON: ${error.message}`);
      textarea.setAttribute("aria-invalid", "true");
      textarea.focus();
      return;
    }
    textarea.removeAttribute("aria-invalid");
    button.disabled = true;
    setText(message, "Sending…");
    try {
      await api(`/hooks/${encodeURIComponent(hook.token)}/resume`, { method: "POST", body: text });
      message.className = "form-message good";
      setText(message, "Resumed: the run continues.");
      refresh();
    } catch (error) {
      message.className = "form-message bad";
      setText(message, error instanceof ApiError ? error.message : String(error));
    } finally {
      button.disabled = false;
    }
  });
  return h(
    "div",
    { class: "hook" },
    h(
      "p",
      { class: "hook-title" },
      h("strong", {}, hook.name),
      " ",
      h("span", { class: "muted" }, "token"),
      " ",
      h("code", { class: "wrap" }, hook.token),
      " ",
      h("span", { class: "muted" }, `since ${formatTime(parseTime(hook.created_at))}`),
    ),
    form,
  );
}

function renderHooks(hooks) {
  const live = new Set();
  for (const hook of hooks) {
    live.add(hook.token);
    if (!hookCards.has(hook.token)) {
      const card = hookCard(hook);
      hookCards.set(hook.token, card);
      ui.hooks.append(card);
    }
  }
  for (const [token, card] of hookCards) {
    if (!live.has(token)) {
      card.remove();
      hookCards.delete(token);
    }
  }
  ui.hooksSection.hidden = hooks.length === 0;
}

// -- the timeline ----------------------------------------------------------------------

const rows = new Map(); // call -> {details, label, track, duration, detail, signature}
let axis = null;

const OUTCOME_WORDS = {
  running: "running",
  retrying: "retrying",
  completed: "completed",
  failed: "failed",
  sleeping: "sleeping",
  cancelled: "cancelled",
  waiting: "waiting",
  received: "received",
  disposed: "disposed",
  conflict: "conflict",
  marked: "new branch",
};

function groups(spans) {
  const found = new Map();
  for (const span of spans) {
    let group = found.get(span.call);
    if (!group) {
      group = { call: span.call, kind: span.kind, spans: [] };
      found.set(span.call, group);
    }
    group.spans.push(span);
  }
  return [...found.values()];
}

const NICE = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 15000, 30000, 60000,
  120000, 300000, 600000, 900000, 1800000, 3600000, 7200000, 21600000, 43200000, 86400000];

// Draws the time axis; returns where its ticks are (fractions of the width).
function renderAxis(total) {
  const step = NICE.find((candidate) => total / candidate <= 6) || total / 6;
  const ticks = [];
  const places = [];
  for (let at = 0; at <= total + 1e-9; at += step) {
    places.push(at / total);
    const tick = h("span", { class: "tick" }, at === 0 ? "0" : `+${formatDuration(at)}`);
    tick.style.left = `${(at / total) * 100}%`;
    if (at / total > 0.94) tick.classList.add("tick-end");
    ticks.push(tick);
  }
  if (!axis) {
    axis = {
      root: h("div", { class: "t-axis", "aria-hidden": "true" }, h("span"), h("span", { class: "t-ticks" }), h("span")),
    };
    ui.timeline.prepend(axis.root);
  }
  axis.root.children[1].replaceChildren(...ticks);
  return places;
}

function percent(ms, origin, total) {
  return `${Math.min(Math.max(((ms - origin) / total) * 100, 0), 100)}%`;
}

function bars(group, origin, total, now, grid) {
  const parts = [];
  for (const place of grid) {
    if (place <= 0) continue;
    const line = h("span", { class: "grid" });
    line.style.left = `${place * 100}%`;
    parts.push(line);
  }
  let previousEnd = null;
  for (const span of group.spans) {
    const start = parseTime(span.start);
    const end = parseTime(span.end) ?? now;
    if (previousEnd !== null && start > previousEnd) {
      const gap = h("span", { class: "gap" });
      gap.style.left = percent(previousEnd, origin, total);
      gap.style.width = `${((start - previousEnd) / total) * 100}%`;
      parts.push(gap);
    }
    const open = span.end === null;
    const bar = h("span", {
      class: `bar o-${span.outcome}${open ? " open" : ""}${span.attempt > 1 ? " retry" : ""}`,
      title: `${span.attempt ? `attempt ${span.attempt} · ` : ""}${span.outcome} · ${formatDuration(end - start)}`,
    });
    bar.style.left = percent(start, origin, total);
    bar.style.width = `${Math.max(((end - start) / total) * 100, 0)}%`;
    if (span.attempt && group.spans.length > 1) bar.append(h("span", { class: "attempt" }, String(span.attempt)));
    parts.push(bar);
    for (const payload of span.payloads) {
      const mark = h("span", { class: "mark", title: `payload received ${formatTime(parseTime(payload.at))}` });
      mark.style.left = percent(parseTime(payload.at), origin, total);
      parts.push(mark);
    }
    previousEnd = end;
  }
  return parts;
}

function offset(ms, origin) {
  return ms === null ? "–" : `+${formatDuration(ms - origin)}`;
}

function spanDetail(group, origin) {
  const first = group.spans[0];
  const parts = [];
  if (group.kind === "step") {
    parts.push(h("h4", {}, "Input"), prettyJson(first.input));
    for (const span of group.spans) {
      const start = parseTime(span.start);
      const end = parseTime(span.end);
      parts.push(
        h(
          "h4",
          {},
          `Attempt ${span.attempt ?? "?"} `,
          h("span", { class: `word o-${span.outcome}` }, OUTCOME_WORDS[span.outcome] || span.outcome),
          h("span", { class: "muted" }, ` at ${offset(start, origin)}${end !== null ? `, took ${formatDuration(end - start)}` : ""}`),
        ),
      );
      if (span.error) parts.push(errorBlock(span.error));
      if (span.wake_at) parts.push(h("p", { class: "muted" }, `Next attempt at ${formatTime(parseTime(span.wake_at))}.`));
      if (span.has_output) parts.push(h("h4", {}, "Output"), prettyJson(span.output));
    }
  } else if (group.kind === "sleep") {
    const end = parseTime(first.end);
    parts.push(
      h("p", {}, `Slept from ${formatTime(parseTime(first.start))} until ${formatTime(parseTime(first.wake_at))}`,
        end !== null ? `; ${first.outcome === "cancelled" ? "cancelled" : "woke"} at ${formatTime(end)}.` : "."),
    );
  } else if (group.kind === "patch") {
    parts.push(h("p", {}, "The run took the new branch of patch ", h("strong", {}, first.name || "?"), " (perdure.patched)."));
  } else if (group.kind === "child") {
    parts.push(
      h("p", {}, "Child run ", h("a", { href: runHref(first.run_id), class: "mono run-link" }, first.run_id),
        " of workflow ", h("strong", {}, first.name || "?"), first.detail.endsWith("(detached)") ? " (detached)." : "."),
      h("h4", {}, "Input"), prettyJson(first.input),
    );
    if (first.error) parts.push(errorBlock(first.error));
    if (first.has_output) parts.push(h("h4", {}, "Output"), prettyJson(first.output));
  } else {
    parts.push(
      h("p", {}, "Hook ", h("strong", {}, first.name || "?"), ", token ", h("code", { class: "wrap" }, first.token || "?")),
    );
    if (first.error) parts.push(errorBlock(first.error));
    if (first.payloads.length === 0) parts.push(h("p", { class: "muted" }, "No payload received."));
    for (const payload of first.payloads) {
      parts.push(h("h4", {}, `Payload received at ${formatTime(parseTime(payload.at))}`), prettyJson(payload.payload));
    }
  }
  return parts;
}

function makeRow(group) {
  const label = {
    outcome: h("span", { class: "word" }),
    extra: h("span", { class: "muted" }),
  };
  const track = h("span", { class: "t-track", "aria-hidden": "true" });
  const duration = h("span");
  const detail = h("div", { class: "t-detail" });
  const details = h(
    "details",
    { class: `t-row kind-${group.kind}`, "data-call": group.call },
    h(
      "summary",
      {},
      h(
        "span",
        { class: "t-label" },
        h("span", { class: `kind k-${group.kind}` }, group.kind),
        h("span", { class: "mono call", title: group.call }, group.call),
        group.kind === "child"
          ? h("a", { href: runHref(group.spans[0].run_id), class: "mono run-link child-link", title: "open the child run" }, "→ run")
          : "",
        label.extra,
      ),
      track,
      h("span", { class: "t-dur" }, label.outcome, duration),
    ),
    detail,
  );
  return { details, label, track, duration, detail, signature: null };
}

function renderTimeline(run, timeline) {
  const now = parseTime(timeline.now);
  const origin = parseTime(run.created_at);
  const all = groups(timeline.spans);
  let end = isTerminal(run.status) ? parseTime(run.completed_at) ?? now : now;
  for (const span of timeline.spans) end = Math.max(end, parseTime(span.end) ?? now);
  const total = Math.max(end - origin, 1);
  if (all.length === 0) {
    if (!ui.timeline.querySelector(".empty")) {
      ui.timeline.append(h("p", { class: "empty" }, "No steps, sleeps or hooks yet."));
    }
    return;
  }
  ui.timeline.querySelector(".empty")?.remove();
  const grid = renderAxis(total);
  all.forEach((group, index) => {
    let row = rows.get(group.call);
    if (!row) {
      row = makeRow(group);
      rows.set(group.call, row);
    }
    const last = group.spans[group.spans.length - 1];
    const firstStart = parseTime(group.spans[0].start);
    const lastEnd = parseTime(last.end);
    row.label.outcome.className = `word o-${last.outcome}`;
    setText(row.label.outcome, OUTCOME_WORDS[last.outcome] || last.outcome);
    const attempts = group.kind === "step" && group.spans.length > 1 ? `${group.spans.length} attempts` : "";
    const payloads = group.kind === "hook" && last.payloads.length > 1 ? `${last.payloads.length} payloads` : "";
    setText(row.label.extra, attempts || payloads);
    setText(row.duration, formatDuration((lastEnd ?? now) - firstStart) + (lastEnd === null ? " …" : ""));
    row.track.replaceChildren(...bars(group, origin, total, now, grid));
    const signature = JSON.stringify(group.spans);
    if (signature !== row.signature) {
      row.signature = signature;
      row.detail.replaceChildren(...spanDetail(group, origin));
    }
    const position = index + 1; // after the axis
    if (ui.timeline.children[position] !== row.details) {
      ui.timeline.insertBefore(row.details, ui.timeline.children[position] || null);
    }
  });
}

// -- the event log ---------------------------------------------------------------------

let lastSeq = 0;
let logTable = null;
let logOrigin = null;

async function loadEvents() {
  const data = await api(`${runPath}/events?after=${lastSeq}`);
  if (!logTable) {
    logTable = h("tbody");
    ui.events.replaceChildren(
      h(
        "table",
        { class: "events" },
        h("thead", {}, h("tr", {}, ["#", "At", "Type", "Call", "Data"].map((name) => h("th", { scope: "col" }, name)))),
        logTable,
      ),
    );
  }
  for (const event of data.events) {
    lastSeq = event.seq;
    const at = parseTime(event.created_at);
    logOrigin ??= at;
    logTable.append(
      h(
        "tr",
        {},
        h("td", { class: "num" }, String(event.seq)),
        h("td", { class: "num", title: formatTime(at) }, offset(at, logOrigin)),
        h("td", { class: "mono" }, event.type),
        h("td", { class: "mono" }, event.correlation_id || ""),
        h("td", {}, h("code", { class: "wrap" }, JSON.stringify(event.data))),
      ),
    );
  }
}

ui.log.addEventListener("toggle", () => {
  if (ui.log.open) loadEvents().catch((error) => showError("Could not load the event log:", error));
});

// -- actions ----------------------------------------------------------------------------

ui.cancel.addEventListener("click", async () => {
  if (!confirm(`Cancel run ${runId}? It stops at its next await.`)) return;
  ui.cancel.disabled = true;
  try {
    await api(`${runPath}/cancel`, { method: "POST" });
    clearError();
  } catch (error) {
    showError("Could not cancel the run:", error);
  } finally {
    ui.cancel.disabled = false;
    refresh();
  }
});

ui.rerun.addEventListener("click", async () => {
  ui.rerun.disabled = true;
  try {
    const run = await api(`${runPath}/rerun`, { method: "POST" });
    location.assign(`${base}/runs/${encodeURIComponent(run.id)}`);
  } catch (error) {
    showError("Could not rerun:", error);
    ui.rerun.disabled = false;
  }
});

// Fork: a new run whose log is this one's up to the chosen call (steps before it are
// not run again), then today's code. The picker lists the calls of the timeline.
function renderForkSteps(timeline) {
  const calls = groups(timeline.spans).map((group) => group.call);
  const listed = [...ui.forkStep.options].map((option) => option.value);
  if (listed.join("\n") === calls.join("\n")) return;
  const chosen = ui.forkStep.value;
  ui.forkStep.replaceChildren(...calls.map((call) => h("option", { value: call }, call)));
  if (calls.includes(chosen)) ui.forkStep.value = chosen;
  ui.forkStep.disabled = ui.fork.disabled = calls.length === 0;
}

ui.fork.addEventListener("click", async () => {
  const step = ui.forkStep.value;
  if (!step) return;
  ui.fork.disabled = true;
  try {
    const run = await api(`${runPath}/fork`, { method: "POST", body: { from_step: step } });
    location.assign(`${base}/runs/${encodeURIComponent(run.id)}`);
  } catch (error) {
    showError("Could not fork:", error);
    ui.fork.disabled = false;
  }
});

// -- polling ---------------------------------------------------------------------------

async function tick() {
  const run = await api(runPath);
  const [timeline, hooks] = await Promise.all([
    api(`${runPath}/timeline`),
    api(`/hooks?run=${encodeURIComponent(runId)}`),
  ]);
  if (ui.log.open) await loadEvents();
  clearError();
  current = run;
  const now = parseTime(timeline.now);
  renderFacts(run, now);
  renderHooks(isTerminal(run.status) ? [] : hooks.hooks);
  renderTimeline(run, timeline);
  renderForkSteps(timeline);
  renderIo(run);
  return !isTerminal(run.status);
}

refresh = poll(tick, (error) => {
  showError(current === null ? "Could not load the run:" : "Could not refresh the run:", error);
  return !(current === null && error.status === 404); // no such run: stop asking
});
