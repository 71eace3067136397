// Helpers both pages use: calling the JSON API, building elements, formatting times,
// pretty JSON, the alert banner and the polling loop. No framework, no build step.
// Every value from the API reaches the page through textContent, never as HTML.

export const base = document.body.dataset.base || "";
export const authEnabled = document.body.dataset.auth === "1";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// Calls the API; returns the parsed JSON or throws ApiError with the server's message.
// The header tells the server a dashboard page made the call: it accepts the session
// cookie only with it (a cross-site page cannot set it without a CORS preflight).
export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json", "X-Perdure-Dashboard": "1" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(base + path, init);
  } catch {
    throw new ApiError(0, "cannot reach the perdure server");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // not JSON: a proxy's error page, say
  }
  if (!response.ok) {
    const message = (data && data.error) || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return data;
}

// h("a", {href: "/x", class: "id"}, "text", child): an element. Strings become text.
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// Sets a node's text only when it changed (no flicker, selections survive).
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

// -- times ---------------------------------------------------------------------------

// Milliseconds since the epoch of an ISO 8601 time (microseconds are cut to ms).
export function parseTime(text) {
  if (!text) return null;
  const value = Date.parse(String(text).replace(/(\.\d{3})\d+/, "$1"));
  return Number.isNaN(value) ? null : value;
}

const pad = (n, width = 2) => String(n).padStart(width, "0");

// Local time to the second: 2024-05-01 14:03:07.
export function formatTime(ms) {
  if (ms === null || ms === undefined) return "–";
  const d = new Date(ms);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

// A span for people, as the CLI prints it: 12 ms, 3.4 s, 2m 05s, 1h 02m, 3d 04h.
export function formatDuration(ms) {
  if (ms === null || ms === undefined) return "–";
  const seconds = Math.max(ms, 0) / 1000;
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const whole = Math.floor(seconds);
  if (whole < 3600) return `${Math.floor(whole / 60)}m ${pad(whole % 60)}s`;
  if (whole < 86400) return `${Math.floor(whole / 3600)}h ${pad(Math.floor((whole % 3600) / 60))}m`;
  return `${Math.floor(whole / 86400)}d ${pad(Math.floor((whole % 86400) / 3600))}h`;
}

// "just now", "12 s ago", "5 min ago", "3 h ago", else the date.
export function formatAgo(ms, now) {
  if (ms === null) return "–";
  const seconds = Math.round((now - ms) / 1000);
  if (seconds < 2) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return formatTime(ms).slice(0, 10);
}

// How long a run has taken: start to end, or to now while it runs.
export function runDuration(run, now) {
  const started = parseTime(run.started_at);
  if (started === null) return null;
  const ended = parseTime(run.completed_at);
  const terminal = ["completed", "failed", "cancelled"].includes(run.status);
  if (ended === null && terminal) return null;
  return (ended ?? now) - started;
}

export const isTerminal = (status) => ["completed", "failed", "cancelled"].includes(status);

// A run's status in its colour; `label` may say more ("cancelling").
export function statusBadge(status, node = h("span"), label = status) {
  const name = `badge status-${status}`;
  if (node.className !== name) node.className = name;
  setText(node, label);
  return node;
}

// -- JSON ------------------------------------------------------------------------------

const TOKENS = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;

// Pretty-printed JSON in a <pre>, its keys, strings, numbers and literals coloured.
export function prettyJson(value) {
  const text = JSON.stringify(value, null, 2) ?? "undefined";
  const pre = h("pre", { class: "json", tabindex: "0" });
  let last = 0;
  for (const match of text.matchAll(TOKENS)) {
    if (match.index > last) pre.append(text.slice(last, match.index));
    const [whole, string, colon, literal, number] = match;
    if (string !== undefined) {
      pre.append(h("span", { class: colon ? "j-key" : "j-str" }, string));
      if (colon) pre.append(colon);
    } else if (literal !== undefined) {
      pre.append(h("span", { class: "j-lit" }, literal));
    } else if (number !== undefined) {
      pre.append(h("span", { class: "j-num" }, number));
    } else {
      pre.append(whole);
    }
    last = match.index + whole.length;
  }
  pre.append(text.slice(last));
  return pre;
}

// An error (type, message, traceback) with the traceback folded away.
export function errorBlock(error) {
  const box = h(
    "div",
    { class: "error-block" },
    h("p", { class: "error-title" }, h("strong", {}, error.type || "Error"), ": ", error.message ?? ""),
  );
  if (error.traceback) {
    box.append(
      h(
        "details",
        { class: "traceback" },
        h("summary", {}, "Traceback"),
        h("pre", { tabindex: "0" }, String(error.traceback).trimEnd()),
      ),
    );
  }
  return box;
}

// -- the alert banner and polling ------------------------------------------------------

const alertBox = document.getElementById("alert");

// Shows what went wrong at the top of the page; a session that ended gets a sign-in link.
export function showError(what, error) {
  if (!alertBox) return;
  alertBox.replaceChildren(h("strong", {}, what), " ", error.message);
  if (error.status === 401 && authEnabled) {
    const next = location.pathname.slice(base.length) + location.search;
    alertBox.append(" ", h("a", { href: `${base}/login?next=${encodeURIComponent(next)}` }, "Sign in again"));
  }
  alertBox.hidden = false;
}

export function clearError() {
  if (alertBox && !alertBox.hidden) {
    alertBox.hidden = true;
    alertBox.replaceChildren();
  }
}

const live = document.getElementById("live");

function setLive(state, text) {
  if (!live) return;
  live.dataset.state = state;
  setText(live, text);
}

// Calls `tick` now, then again `interval` ms after each call ends, while the page is
// visible. `tick` returns false to stop (a run that ended). A failed call goes to
// `onError`, which returns false to stop too. Returns a function that polls at once
// (after an action).
export function poll(tick, onError, interval = 1000) {
  let timer = null;
  let running = false;
  let again = false;
  let stopped = false;

  function schedule() {
    clearTimeout(timer);
    timer = stopped || document.hidden ? null : setTimeout(once, interval);
  }

  async function once() {
    clearTimeout(timer);
    timer = null;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      stopped = (await tick()) === false;
      setLive(stopped ? "done" : "live", stopped ? "up to date" : "live");
    } catch (error) {
      setLive("error", error.status ? `error ${error.status}` : "offline");
      stopped = onError(error) === false;
    } finally {
      running = false;
    }
    if (again) {
      again = false;
      await once();
    } else {
      schedule();
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (stopped) return;
    if (document.hidden) {
      clearTimeout(timer);
      timer = null;
      setLive("paused", "paused");
    } else if (timer === null && !running) {
      once();
    }
  });
  once();
  return () => {
    stopped = false;
    return once();
  };
}
