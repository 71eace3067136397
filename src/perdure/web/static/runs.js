// The runs list: newest first, filtered by status, workflow and attributes, refreshed
// every second, a page at a time ("More runs" follows the API's `next` cursor).
// Rows are kept by run id and updated in place, so focus and selection survive.
// The "Tree" view lists the top-level runs of the page, each with an expander that loads
// its child runs (GET /runs?parent_id=) when opened, indented, to any depth.

import {
  api,
  base,
  clearError,
  formatAgo,
  formatDuration,
  formatTime,
  h,
  isTerminal,
  parseTime,
  poll,
  runDuration,
  setText,
  showError,
  statusBadge,
} from "./dashboard.js";

const form = document.getElementById("filters");
const statusSelect = document.getElementById("status");
const workflowSelect = document.getElementById("workflow");
const attrInput = document.getElementById("attr");
const treeBox = document.getElementById("tree");
const more = document.getElementById("more");
const newest = document.getElementById("newest");
const tbody = document.getElementById("rows");
const empty = document.getElementById("empty");
const count = document.getElementById("count");

const rows = new Map(); // run id (or "more:" + a parent's id) -> {tr, cells, toggle}
const workflows = new Set();

// The filters live in the address, so a reload or a bookmark keeps them.
const params = new URLSearchParams(location.search);
statusSelect.value = params.get("status") || "";
if (params.get("workflow")) addWorkflow(params.get("workflow"));
workflowSelect.value = params.get("workflow") || "";
attrInput.value = params.getAll("attr").join(" ");
treeBox.checked = params.get("view") === "tree";
// The tree view: the runs whose children are shown, and their children as last read
// (a run id -> {runs: oldest first, next: the API's cursor when there are more}).
const expanded = new Set();
const childrenOf = new Map();
const CHILD_LIMIT = 1000; // the API's largest page; past it, the "more" row opens ?parent=
let lastRuns = [];
// A page holds 200 runs unless the address says otherwise (?limit=50).
const LIMIT = Math.min(Math.max(Number.parseInt(params.get("limit"), 10) || 200, 1), 1000);
let after = params.get("after"); // this page starts after that cursor; none: the newest
// ?parent=RUN lists that run's child runs (its page's "Children" links here): the tree,
// one level at a time. Every listed child links to its parent.
const parent = params.get("parent");
if (parent) {
  const note = h("p", { class: "muted parent-note" }, "Child runs of ",
    h("a", { href: `${base}/runs/${encodeURIComponent(parent)}`, class: "mono run-link" }, parent),
    " · ", h("a", { href: location.pathname }, "all runs"));
  form.after(note);
}

function addWorkflow(name) {
  if (workflows.has(name)) return;
  workflows.add(name);
  const options = [...workflowSelect.options].slice(1);
  const before = options.find((option) => option.value.localeCompare(name) > 0) || null;
  workflowSelect.insertBefore(h("option", { value: name }, name), before);
}

function query() {
  const search = new URLSearchParams();
  if (statusSelect.value) search.set("status", statusSelect.value);
  if (workflowSelect.value) search.set("workflow", workflowSelect.value);
  for (const term of attrInput.value.split(/\s+/).filter(Boolean)) search.append("attr", term);
  if (LIMIT !== 200) search.set("limit", String(LIMIT));
  if (parent) search.set("parent", parent);
  if (treeBox.checked) search.set("view", "tree");
  return search;
}

// Links to the next page (the runs after these) and back to the newest.
function renderPager(next) {
  const search = query();
  newest.hidden = !after;
  newest.href = search.toString() ? `?${search}` : location.pathname;
  more.hidden = !next;
  if (next) {
    search.set("after", next);
    more.href = `?${search}`;
  }
}

// The tree view's expander of a run: opens (and reads) or closes its child runs.
function makeToggle(run) {
  const toggle = h("button", {
    type: "button",
    class: "quiet tree-toggle",
    "aria-expanded": "false",
    "aria-label": `Child runs of ${run.id}`,
    title: "Show its child runs",
  }, "▸");
  toggle.addEventListener("click", async () => {
    if (expanded.has(run.id)) {
      expanded.delete(run.id);
    } else {
      expanded.add(run.id);
      try {
        await loadChildren(run.id);
        clearError();
      } catch (error) {
        expanded.delete(run.id);
        showError("Could not load the child runs:", error);
      }
    }
    render(lastRuns);
  });
  return toggle;
}

async function loadChildren(id) {
  const data = await api(`/runs?parent_id=${encodeURIComponent(id)}&limit=${CHILD_LIMIT}`);
  childrenOf.set(id, { runs: data.runs.slice().reverse(), next: data.next });
}

// The row that stands for a parent's children past the first CHILD_LIMIT.
function makeMoreRow(id) {
  const link = h("a", { href: `?parent=${encodeURIComponent(id)}` }, `more child runs of ${id.slice(0, 12)} →`);
  const th = h("th", { scope: "row", colspan: "6", class: "muted" }, link);
  return { tr: h("tr", { "data-more-of": id, class: "tree-more" }, th), cells: null, toggle: null };
}

function makeRow(run) {
  const link = h("a", { href: `${base}/runs/${encodeURIComponent(run.id)}`, class: "mono" }, run.id);
  const toggle = treeBox.checked ? makeToggle(run) : null;
  const of = run.parent_id && !treeBox.checked
    ? h("div", { class: "muted child-of" }, "↳ child of ",
        h("a", { href: `${base}/runs/${encodeURIComponent(run.parent_id)}`, class: "mono" }, run.parent_id.slice(0, 12)))
    : "";
  const cells = {
    name: h("span"),
    attributes: h("span", { class: "attributes muted" }),
    workflow: null,
    version: h("td", { class: "mono" }),
    status: statusBadge(run.status),
    created: h("time"),
    duration: h("td", { class: "num" }),
  };
  cells.workflow = h("td", {}, cells.name, " ", cells.attributes);
  const tr = h(
    "tr",
    { "data-run-id": run.id },
    h("th", { scope: "row" }, toggle, link, of),
    cells.workflow,
    cells.version,
    h("td", {}, cells.status),
    h("td", {}, cells.created),
    cells.duration,
  );
  return { tr, cells, toggle };
}

// The run's code version, and beside it, while it is not over, the version on the worker
// holding it or the versions the live workers define (a deploy in view); a run that no
// live worker can take says so.
function versionText(run) {
  const own = run.version || "–";
  if (isTerminal(run.status) || run.live_versions === undefined) return own;
  if (run.stranded) return `${own} · no live worker`;
  const workers = run.worker_version || run.live_versions.join(", ");
  return workers && workers !== own ? `${own} · workers: ${workers}` : own;
}

function updateRow(row, run, now) {
  setText(row.cells.name, run.workflow);
  const attributes = Object.entries(run.attributes || {}).sort(([a], [b]) => a.localeCompare(b));
  setText(row.cells.attributes, attributes.map(([key, value]) => `${key}=${value}`).join(" "));
  setText(row.cells.version, versionText(run));
  row.cells.version.title = run.stranded || "";
  row.cells.version.classList.toggle("stranded", Boolean(run.stranded));
  const cancelling = run.cancel_requested && !isTerminal(run.status);
  statusBadge(run.status, row.cells.status, cancelling ? "cancelling" : run.status);
  if (run.error) row.cells.status.title = `${run.error.type}: ${run.error.message}`;
  if (run.blocked_reason) row.cells.status.title = run.blocked_reason;
  if (run.waiting_for) row.cells.status.title = run.waiting_for; // held back by its limit
  const created = parseTime(run.created_at);
  row.cells.created.dateTime = run.created_at;
  row.cells.created.title = formatTime(created);
  setText(row.cells.created, formatAgo(created, now));
  const took = runDuration(run, now);
  setText(row.cells.duration, formatDuration(took) + (took !== null && !isTerminal(run.status) ? " …" : ""));
}

// What the table shows, in order: the runs, or in the tree view the top-level ones (of
// ?parent=, its children) each followed by its open subtree, children oldest first.
function entries(runs) {
  if (!treeBox.checked) return runs.map((run) => ({ key: run.id, run, depth: 0 }));
  const out = [];
  const visit = (run, depth) => {
    out.push({ key: run.id, run, depth });
    if (!expanded.has(run.id)) return;
    const children = childrenOf.get(run.id) || { runs: [], next: null };
    for (const child of children.runs) visit(child, depth + 1);
    if (children.next) out.push({ key: `more:${run.id}`, more: run.id, depth: depth + 1 });
  };
  for (const run of runs) if (!run.parent_id || run.parent_id === parent) visit(run, 0);
  return out;
}

function updateToggle(row, run) {
  const open = expanded.has(run.id);
  const children = childrenOf.get(run.id);
  const none = open && children !== undefined && children.runs.length === 0;
  row.toggle.setAttribute("aria-expanded", String(open));
  setText(row.toggle, none ? "·" : open ? "▾" : "▸");
  row.toggle.title = none ? "No child runs" : open ? "Hide its child runs" : "Show its child runs";
}

function render(runs) {
  lastRuns = runs;
  const now = Date.now();
  const seen = new Set();
  const shownEntries = entries(runs);
  shownEntries.forEach((entry, index) => {
    seen.add(entry.key);
    let row = rows.get(entry.key);
    if (!row) {
      row = entry.more ? makeMoreRow(entry.more) : makeRow(entry.run);
      rows.set(entry.key, row);
    }
    if (entry.run) {
      addWorkflow(entry.run.workflow);
      updateRow(row, entry.run, now);
      if (row.toggle) updateToggle(row, entry.run);
    }
    row.tr.firstElementChild.style.paddingLeft = entry.depth ? `${1.25 + entry.depth * 1.5}rem` : "";
    row.tr.classList.toggle("tree-child", entry.depth > 0);
    row.tr.dataset.depth = String(entry.depth);
    if (tbody.children[index] !== row.tr) tbody.insertBefore(row.tr, tbody.children[index] || null);
  });
  for (const [id, row] of rows) {
    if (!seen.has(id)) {
      row.tr.remove();
      rows.delete(id);
    }
  }
  const filtered = statusSelect.value || workflowSelect.value || attrInput.value.trim() || parent;
  const roots = treeBox.checked ? shownEntries.filter((entry) => entry.depth === 0).length : runs.length;
  empty.hidden = roots > 0;
  setText(
    empty,
    runs.length > 0
      ? "No top-level run on this page: its runs are all child runs (their parents are older)."
      : filtered
        ? "No runs match these filters."
        : "No runs yet. Start one with engine.start(...), POST /runs, or perdure rerun.",
  );
  const shown = after
    ? `${runs.length} older run${runs.length === 1 ? "" : "s"}`
    : runs.length === LIMIT
      ? `the newest ${LIMIT} runs`
      : `${runs.length} run${runs.length === 1 ? "" : "s"}`;
  const tops = treeBox.checked ? ` (${roots} at the top of a tree)` : "";
  setText(count, `${shown}${filtered ? " matching the filters" : ""}${tops}, newest first`);
}

async function tick() {
  const filters = query().toString();
  const search = query();
  search.set("limit", String(LIMIT));
  if (after) search.set("after", after);
  if (parent) {
    search.delete("parent");
    search.set("parent_id", parent);
  }
  search.delete("view");
  const [data, fleet] = await Promise.all([api(`/runs?${search}`), api("/workers")]);
  // The open subtrees are read again too (their runs move on); few are open at a time.
  if (treeBox.checked) await Promise.all([...expanded].map(loadChildren));
  clearError();
  if (query().toString() === filters) {
    render(data.runs);
    renderPager(data.next);
  } // else the filters changed meanwhile
  renderWorkers(fleet.workers, Date.now());
}

// The live workers: where each runs, the workflows (and versions) it defines, and when
// it last heartbeat. Rebuilt at each poll: there are few.
const workersBody = document.getElementById("workers");
const noWorkers = document.getElementById("no-workers");

function renderWorkers(workers, now) {
  noWorkers.hidden = workers.length > 0;
  workersBody.replaceChildren(
    ...workers.map((worker) => {
      const defined = Object.entries(worker.workflows).map(([name, version]) => `${name} (${version})`);
      const beat = parseTime(worker.heartbeat_at);
      return h(
        "tr",
        { "data-worker-id": worker.id },
        h("th", { scope: "row", class: "mono" }, worker.id),
        h("td", {}, `${worker.host} · pid ${worker.pid}`),
        h("td", { class: "mono" }, defined.join(", ") || "–"),
        h("td", {}, h("time", { dateTime: worker.heartbeat_at, title: formatTime(beat) }, formatAgo(beat, now))),
      );
    }),
  );
}

const refresh = poll(tick, (error) => showError("Could not load the runs:", error));

form.addEventListener("change", () => {
  after = null; // new filters: from the newest run again
  const search = query().toString();
  history.replaceState(null, "", search ? `?${search}` : location.pathname);
  for (const row of rows.values()) row.tr.remove();
  rows.clear();
  expanded.clear();
  childrenOf.clear();
  refresh();
});
form.addEventListener("submit", (event) => event.preventDefault());
