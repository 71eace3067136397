// The run page's durable streams: one card per stream, following it live.
//
// It looks for the run's streams (GET /runs/{id}/streams) every second until the run
// ends, and reads each one from GET /runs/{id}/streams/{name} (Server-Sent Events)
// through fetch, which can send the dashboard's header (EventSource cannot). Text chunks
// are shown as text, run together as a model's tokens are; other values as JSON, one a
// line. A retraction strikes out the chunks of the failed attempt it names. A dropped
// connection is taken up again after the last event received (Last-Event-ID). Values
// reach the page through text nodes only.

import { api, base, h, isTerminal } from "./dashboard.js";

const runId = document.body.dataset.runId;
const runPath = `/runs/${encodeURIComponent(runId)}`;
const main = document.getElementById("main");
const anchor = document.getElementById("timeline")?.closest("section") || null;
const streams = new Map(); // name -> its reader

class StreamView {
  constructor(name) {
    this.name = name;
    this.last = -1; // the index of the last event received
    this.entries = new Map(); // index -> the element showing that chunk
    this.output = h("div", { class: "stream-output", "aria-live": "polite" });
    this.state = h("span", { class: "stream-state muted" }, "connecting…");
    this.section = h(
      "section",
      { class: "card stream", "data-stream": name, "aria-label": `Stream ${name}` },
      h("h2", {}, "Stream ", h("span", { class: "mono" }, name), " ", this.state),
      this.output,
    );
    main.insertBefore(this.section, anchor);
    this.follow();
  }

  async follow() {
    for (;;) {
      try {
        if (await this.read()) return; // the stream ended
      } catch {
        this.state.textContent = "reconnecting…";
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  // Reads until the stream ends (true) or the connection drops (false).
  async read() {
    const headers = { Accept: "text/event-stream", "X-Perdure-Dashboard": "1" };
    if (this.last >= 0) headers["Last-Event-ID"] = String(this.last);
    const path = `${runPath}/streams/${encodeURIComponent(this.name)}`;
    const response = await fetch(base + path, { headers, credentials: "same-origin", cache: "no-store" });
    if (!response.ok || !response.body) throw new Error(`${response.status}`);
    this.state.textContent = "live";
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return false;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (this.handle(block)) {
          reader.cancel().catch(() => {});
          return true;
        }
      }
    }
  }

  // One event; true when it ends the stream.
  handle(block) {
    const fields = {};
    for (const line of block.split("\n")) {
      const at = line.indexOf(": ");
      if (at > 0) fields[line.slice(0, at)] = line.slice(at + 2);
    }
    if (fields.id !== undefined) this.last = Number(fields.id);
    if (fields.event === "end") {
      this.state.textContent = "ended";
      this.section.dataset.ended = "1";
      return true;
    }
    if (fields.data === undefined) return false;
    const data = JSON.parse(fields.data);
    if (fields.event === "chunk") this.chunk(data);
    else if (fields.event === "retracted") this.retracted(data);
    return false;
  }

  chunk({ index, value }) {
    const text = typeof value === "string";
    const node = h(text ? "span" : "div", { class: text ? "chunk" : "chunk json", "data-index": index });
    node.textContent = text ? value : JSON.stringify(value);
    this.entries.set(index, node);
    this.output.append(node);
  }

  retracted({ step, attempt, indices }) {
    for (const index of indices) this.entries.get(index)?.classList.add("retracted");
    const note = `attempt ${attempt ?? "?"} of ${step} failed: ${indices.length} chunk(s) retracted`;
    this.output.append(h("div", { class: "retraction muted" }, note));
  }
}

async function discover() {
  const [run, listed] = await Promise.all([api(runPath), api(`${runPath}/streams`)]);
  for (const { name } of listed.streams) {
    if (!streams.has(name)) streams.set(name, new StreamView(name));
  }
  return !isTerminal(run.status);
}

async function loop() {
  for (;;) {
    let more = true;
    try {
      more = await discover();
    } catch {
      // run.js shows the page's errors; try again
    }
    if (!more) return;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

loop();
