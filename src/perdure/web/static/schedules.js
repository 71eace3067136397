// The Schedules page: every schedule with its next fire time and last runs, refreshed
// every few seconds, with Pause/Resume and "Run now" buttons.

import {
  api,
  base,
  clearError,
  formatAgo,
  formatTime,
  h,
  parseTime,
  poll,
  showError,
  statusBadge,
} from "./dashboard.js";

const tbody = document.getElementById("rows");
const empty = document.getElementById("empty");

function lastRuns(runs) {
  if (!runs || runs.length === 0) return "–";
  const list = h("ul", { class: "last-runs" });
  for (const run of runs) {
    const link = h("a", { href: `${base}/runs/${encodeURIComponent(run.id)}`, class: "mono" }, run.tick ? formatTime(parseTime(run.tick)) : run.id);
    list.append(h("li", {}, statusBadge(run.status), " ", link));
  }
  return list;
}

function nextFire(schedule, now) {
  if (schedule.paused) return "paused";
  if (!schedule.next_fire_at) return "no tick left";
  const at = parseTime(schedule.next_fire_at);
  return h("time", { datetime: schedule.next_fire_at, title: formatAgo(at, now) }, formatTime(at));
}

async function act(schedule, action) {
  try {
    await api(`/schedules/${encodeURIComponent(schedule.id)}/${action}`, { method: "POST" });
    clearError();
  } catch (error) {
    showError(`Could not ${action} schedule ${schedule.id}:`, error);
  }
  refresh();
}

function row(schedule, now) {
  const toggle = schedule.paused ? "resume" : "pause";
  const buttons = h(
    "span",
    { class: "actions" },
    h("button", { type: "button", class: "quiet", onclick: () => act(schedule, toggle) }, schedule.paused ? "Resume" : "Pause"),
    " ",
    h("button", { type: "button", class: "quiet", onclick: () => act(schedule, "trigger") }, "Run now"),
  );
  return h(
    "tr",
    { "data-id": schedule.id },
    h("th", { scope: "row", class: "mono" }, schedule.id),
    h("td", {}, schedule.workflow),
    h("td", { class: "mono" }, schedule.cron),
    h("td", {}, schedule.tz),
    h("td", {}, nextFire(schedule, now)),
    h("td", {}, schedule.paused ? "paused" : `active (overlap: ${schedule.overlap})`, " ", buttons),
    h("td", {}, lastRuns(schedule.last_runs)),
  );
}

async function tick() {
  const body = await api("/schedules");
  clearError();
  const now = Date.now();
  tbody.replaceChildren(...body.schedules.map((schedule) => row(schedule, now)));
  empty.hidden = body.schedules.length > 0;
}

const refresh = poll(tick, (error) => showError("Could not load the schedules:", error), 3000);
