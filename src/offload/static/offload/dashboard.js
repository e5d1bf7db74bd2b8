// The offload dashboard: fetch the JSON, draw counters, tables and SVG charts.
// Loaded from a file (the page's CSP allows no inline script); every value
// from the server is written as text, never as HTML.
"use strict";
(function () {
  const root = document.getElementById("offload-dash");
  if (!root) return;
  const url = root.dataset.url;
  const refresh = Math.min(3600, Math.max(1, Number(root.dataset.refresh) || 5)) * 1000;
  const SVG = "http://www.w3.org/2000/svg";
  const MAX_DEPTH_POINTS = 720;
  const MAX_DEPTH_QUEUES = 6;
  // queue -> [[time, depth], ...] read by this page since it opened; drawn after
  // the workers' per-minute samples (data.depth), from the last sample on.
  const depthHistory = new Map();
  let timer = null;
  let inFlight = false;

  function text(id, value) { document.getElementById(id).textContent = value; }

  function seconds(value) {
    if (value === null || value === undefined) return "–";
    if (value < 1) return Math.round(value * 1000) + " ms";
    if (value < 120) return value.toFixed(1) + " s";
    return Math.round(value / 60) + " min";
  }

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    if (parent) parent.appendChild(node);
    return node;
  }

  // A line chart of several series of [time, value] points, x placed by time.
  function lineChart(container, series) {
    const width = 600, height = 200, left = 40, right = 10, top = 10, bottom = 24;
    const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
    const max = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p[1])));
    const times = series.flatMap((s) => s.points.map((p) => p[0]));
    const first = Math.min(...times), last = Math.max(...times);
    const span = Math.max(last - first, 1);
    const x = (t) => left + ((t - first) / span) * (width - left - right);
    const y = (v) => top + (1 - v / max) * (height - top - bottom);
    for (const frac of [0, 0.5, 1]) {
      el("line", { x1: left, x2: width - right, y1: y(max * frac), y2: y(max * frac), class: "grid" }, svg);
      const label = el("text", { x: left - 4, y: y(max * frac) + 3, "text-anchor": "end" }, svg);
      label.textContent = String(Math.round(max * frac * 10) / 10);
    }
    el("line", { x1: left, x2: width - right, y1: height - bottom, y2: height - bottom, class: "axis" }, svg);
    if (times.length) {
      for (const [t, anchor] of [[first, "start"], [last, "end"]]) {
        const label = el("text", { x: x(t), y: height - 8, "text-anchor": anchor }, svg);
        label.textContent = new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      }
    }
    series.forEach((s, index) => {
      if (!s.points.length) return;
      const points = s.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
      el("polyline", { points, class: `line s${index % 6}` }, svg);
      el("rect", { x: left + 10 + index * 120, y: top, width: 10, height: 10, class: `k${index % 6}` }, svg);
      const key = el("text", { x: left + 24 + index * 120, y: top + 9 }, svg);
      key.textContent = s.name.length > 16 ? s.name.slice(0, 15) + "…" : s.name;
    });
    container.replaceChildren(svg);
  }

  function cell(row, value, numeric) {
    const td = document.createElement("td");
    td.textContent = value;
    if (numeric) td.className = "num";
    row.appendChild(td);
  }

  function fillTable(id, rows, columns) {
    const body = document.querySelector(`#${id} tbody`);
    const fresh = rows.map((item) => {
      const tr = document.createElement("tr");
      for (const [key, format, numeric] of columns) cell(tr, format(item[key]), numeric);
      return tr;
    });
    body.replaceChildren(...fresh);
  }

  function render(data) {
    const c = data.counters;
    text("c-ready", c.ready + (c.ready_capped ? "+" : ""));
    text("c-running", c.running + (c.running_capped ? "+" : ""));
    text("c-failed", String(c.failed_last_hour));
    text("c-throughput", String(c.throughput_per_minute));
    text("c-wait", `${seconds(data.latency.wait_p50)} / ${seconds(data.latency.wait_p95)}`);
    text("c-run", `${seconds(data.latency.run_p50)} / ${seconds(data.latency.run_p95)}`);
    const minutes = data.series.minutes.map((m) => Date.parse(m));
    lineChart(document.getElementById("chart-finished"), [
      { name: "finished", points: minutes.map((t, i) => [t, data.series.finished[i]]) },
      { name: "failed", points: minutes.map((t, i) => [t, data.series.failed[i]]) },
    ]);
    const now = new Date(data.generated_at).getTime();
    for (const q of data.queues) {
      const points = depthHistory.get(q.name) || [];
      points.push([now, q.depth]);
      if (points.length > MAX_DEPTH_POINTS) points.shift();
      depthHistory.set(q.name, points);
    }
    const sampled = data.depth || {};
    const names = new Set([...Object.keys(sampled), ...depthHistory.keys()]);
    const shown = [...names].sort().slice(0, MAX_DEPTH_QUEUES);
    lineChart(document.getElementById("chart-depth"), shown.map((name) => {
      const samples = (sampled[name] || []).map((row) => [Date.parse(row[0]), row[1]]);
      const after = samples.length ? samples[samples.length - 1][0] : -Infinity;
      const live = (depthHistory.get(name) || []).filter((p) => p[0] > after);
      return { name, points: samples.concat(live) };
    }));
    const chart = document.getElementById("chart-depth");
    chart.dataset.samples = String(shown.reduce((n, name) => n + (sampled[name] || []).length, 0));
    const plain = (v) => String(v);
    fillTable("table-queues", data.queues, [
      ["name", plain], ["depth", plain, true], ["due", plain, true], ["running", plain, true],
      ["oldest_wait", plain, true], ["wait_p50", seconds, true], ["wait_p95", seconds, true],
      ["run_p50", seconds, true], ["run_p95", seconds, true],
      ["paused", (p) => (p ? "paused" : "running")],
    ]);
    fillTable("table-tasks", data.tasks, [
      ["path", plain], ["finished", plain, true], ["failed", plain, true],
      ["wait_p50", seconds, true], ["wait_p95", seconds, true],
      ["run_p50", seconds, true], ["run_p95", seconds, true],
    ]);
    text("offload-sample", `Percentiles from the newest ${data.latency.sample} finished tasks of the window.`);
  }

  async function load() {
    if (inFlight || document.hidden) return;
    inFlight = true;
    const status = document.getElementById("offload-status");
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      render(await response.json());
      status.textContent = "updated " + new Date().toLocaleTimeString();
      status.className = "";
      root.dataset.loaded = String(Number(root.dataset.loaded || 0) + 1);
    } catch (error) {
      status.textContent = "could not refresh: " + error.message;
      status.className = "error";
    } finally {
      inFlight = false;
    }
  }

  function schedule() {
    clearTimeout(timer);
    // No timer at all while hidden: a background tab costs the server nothing.
    if (!document.hidden) timer = setTimeout(() => load().finally(schedule), refresh);
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) clearTimeout(timer);
    else load().finally(schedule);
  });
  load().finally(schedule);
})();
