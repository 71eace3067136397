// The Metrics page: what the store holds over a window (last hour, day or week), from
// GET /stats: runs started and ended per minute by outcome (drawn with uPlot, vendored
// in uplot.esm.js), failure rate per workflow, the slowest steps, and the backlog.
// Refreshed every five seconds, like the rest of the dashboard.

import uPlot from "./uplot.esm.js";
import { api, clearError, formatDuration, h, poll, setText, showError } from "./dashboard.js";

const form = document.getElementById("filters");
const sinceSelect = document.getElementById("since");
const workflowSelect = document.getElementById("workflow");
const chartBox = document.getElementById("chart");
const workflows = new Set();

const params = new URLSearchParams(location.search);
sinceSelect.value = ["1h", "24h", "7d"].includes(params.get("since")) ? params.get("since") : "1h";
if (params.get("workflow")) addWorkflow(params.get("workflow"));
workflowSelect.value = params.get("workflow") || "";

const SERIES = [
  { key: "started", label: "started", color: "--running" },
  { key: "completed", label: "completed", color: "--completed" },
  { key: "failed", label: "failed", color: "--failed" },
  { key: "cancelled", label: "cancelled", color: "--cancelled" },
];
const TOTALS = ["started", "completed", "failed", "cancelled", "pending", "blocked"];

let plot = null;
let plotKey = "";

function addWorkflow(name) {
  if (workflows.has(name)) return;
  workflows.add(name);
  const options = [...workflowSelect.options].slice(1);
  const before = options.find((option) => option.value.localeCompare(name) > 0) || null;
  workflowSelect.insertBefore(h("option", { value: name }, name), before);
}

function query() {
  const search = new URLSearchParams({ since: sinceSelect.value });
  if (workflowSelect.value) search.set("workflow", workflowSelect.value);
  return search;
}

function cssColor(name) {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || "#888";
}

function seconds(value) {
  return formatDuration(Math.round(value * 1000));
}

function percent(rate) {
  return `${(rate * 100).toFixed(rate > 0 && rate < 0.1 ? 1 : 0)} %`;
}

function renderTotals(totals) {
  const list = document.getElementById("totals");
  list.replaceChildren(
    ...TOTALS.map((key) =>
      h("div", { class: `total ${key}`, "data-total": key }, h("dt", {}, key), h("dd", { class: "num" }, String(totals[key] ?? 0))),
    ),
  );
}

function renderChart(stats) {
  const step = stats.bucket_seconds;
  const start = Date.parse(stats.since) / 1000;
  const perMinute = 60 / step;
  const xs = stats.started.map((_, index) => start + index * step);
  const data = [
    xs,
    stats.started.map((n) => n * perMinute),
    ...SERIES.slice(1).map((series) => stats.ended[series.key].map((n) => n * perMinute)),
  ];
  const key = `${step}:${xs.length}:${chartBox.clientWidth}`;
  if (plot === null || plotKey !== key) {
    if (plot !== null) plot.destroy();
    plotKey = key;
    const options = {
      width: Math.max(320, chartBox.clientWidth),
      height: 260,
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
      axes: [
        { stroke: cssColor("--muted"), grid: { stroke: cssColor("--border") } },
        { stroke: cssColor("--muted"), grid: { stroke: cssColor("--border") }, label: "runs / min" },
      ],
      series: [
        {},
        ...SERIES.map((series) => ({
          label: series.label,
          stroke: cssColor(series.color),
          width: 2,
          points: { show: false },
        })),
      ],
    };
    chartBox.replaceChildren();
    plot = new uPlot(options, data, chartBox);
  } else {
    plot.setData(data);
  }
  const width = step % 3600 === 0 ? `${step / 3600} h` : `${step / 60} min`;
  setText(document.getElementById("chart-title"), `Runs per minute (in buckets of ${width})`);
}

function rows(tbody, items, cells, emptyText, columns) {
  if (items.length === 0) {
    tbody.replaceChildren(h("tr", {}, h("td", { colspan: String(columns), class: "empty" }, emptyText)));
    return;
  }
  tbody.replaceChildren(...items.map((item) => h("tr", {}, ...cells(item))));
}

function render(stats) {
  for (const item of [...stats.workflows, ...stats.backlog]) addWorkflow(item.workflow);
  renderTotals(stats.totals);
  renderChart(stats);
  rows(
    document.getElementById("workflows"),
    stats.workflows,
    (w) => [
      h("th", { scope: "row" }, w.workflow),
      h("td", { class: "num" }, String(w.completed)),
      h("td", { class: "num" }, String(w.failed)),
      h("td", { class: "num" }, String(w.cancelled)),
      h("td", { class: `num${w.failed ? " bad" : ""}` }, percent(w.failure_rate)),
    ],
    "No run ended in this window.",
    5,
  );
  rows(
    document.getElementById("steps"),
    stats.steps,
    (s) => [
      h("th", { scope: "row", class: "mono" }, s.name),
      h("td", { class: "num" }, String(s.calls)),
      h("td", { class: "num" }, seconds(s.p50)),
      h("td", { class: "num" }, seconds(s.p95)),
      h("td", { class: "num" }, seconds(s.p99)),
      h("td", { class: "num" }, String(s.retries)),
      h("td", { class: `num${s.failed ? " bad" : ""}` }, String(s.failed)),
    ],
    "No step ended in the runs of this window.",
    7,
  );
  setText(
    document.getElementById("steps-caption"),
    `Slowest steps by p95: a call's duration, retries included, over the ${stats.sampled_runs} most recently ended runs`,
  );
  rows(
    document.getElementById("backlog"),
    stats.backlog,
    (b) => [
      h("th", { scope: "row" }, b.workflow),
      h("td", { class: "num" }, String(b.pending)),
      h("td", { class: `num${b.blocked ? " bad" : ""}` }, String(b.blocked)),
    ],
    "Nothing waits: no run pending or blocked.",
    3,
  );
}

async function tick() {
  const search = query().toString();
  const stats = await api(`/stats?${search}`);
  clearError();
  if (query().toString() === search) render(stats); // else the filters changed meanwhile
}

const refresh = poll(tick, (error) => showError("Could not load the metrics:", error), 5000);

form.addEventListener("change", () => {
  history.replaceState(null, "", `?${query()}`);
  refresh();
});
form.addEventListener("submit", (event) => event.preventDefault());
window.addEventListener("resize", () => {
  if (plot !== null) plot.setSize({ width: Math.max(320, chartBox.clientWidth), height: 260 });
});
