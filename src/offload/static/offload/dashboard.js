// The offload dashboard: fetch the JSON, draw counters, tables and charts
// (uPlot, from vendor/uplot/).
// Loaded from a file (the page's CSP allows no inline script); every value
// from the server is written as text, never as HTML.
"use strict";
(function () {
  const root = document.getElementById("offload-dash");
  if (!root) return;
  const url = root.dataset.url;
  const refresh = Math.min(3600, Math.max(1, Number(root.dataset.refresh) || 5)) * 1000;
  const MAX_DEPTH_POINTS = 720;
  const MAX_DEPTH_QUEUES = 6;
  const CHART_HEIGHT = 220;
  // Points further apart than this are not joined: nothing was sampled between them.
  const GAP_MS = 150 * 1000;
  // Both charts count tasks: whole steps on the value axis.
  const COUNT_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6];
  const PALETTE = ["#417690", "#ba2121", "#2b8a3e", "#b7791f", "#6b46c1", "#2c7a7b"];
  // queue -> [[time, depth], ...] read by this page since it opened; drawn after
  // the workers' per-minute samples (data.depth), from the last sample on.
  const depthHistory = new Map();
  // chart container id -> { plot, key }: a plot is redrawn with new data, and
  // made again only when its series change.
  const plots = new Map();
  let timer = null;
  let inFlight = false;

  function text(id, value) { document.getElementById(id).textContent = value; }

  function seconds(value) {
    if (value === null || value === undefined) return "–";
    if (value < 1) return Math.round(value * 1000) + " ms";
    if (value < 120) return value.toFixed(1) + " s";
    return Math.round(value / 60) + " min";
  }

  function clock(date) { return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }); }
  function day(date) { return date.toLocaleDateString([], { month: "short", day: "numeric" }); }

  // Every tick says its time and its day, so a day's axis is never ambiguous.
  // The labels are kept on the container, where tests and people can read them.
  function timeTicks(container) {
    return (plot, splits) => {
      const labels = splits.map((s) => {
        const date = new Date(s * 1000);
        return `${clock(date)}\n${day(date)}`;
      });
      container.dataset.xTicks = JSON.stringify(labels);
      return labels;
    };
  }

  // Breaks the lines where points are further apart than GAP_MS: a row of nulls between.
  function withGaps(times, columns) {
    const xs = [], ys = columns.map(() => []);
    times.forEach((t, i) => {
      if (i > 0 && t - times[i - 1] > GAP_MS) {
        xs.push((times[i - 1] + t) / 2);
        ys.forEach((y) => y.push(null));
      }
      xs.push(t);
      ys.forEach((y, k) => y.push(columns[k][i]));
    });
    return [xs.map((t) => t / 1000), ...ys];
  }

  function plotOptions(container, names) {
    const shown = (plot, value) => (value === null || value === undefined ? "–" : String(value));
    return {
      width: Math.max(280, container.clientWidth),
      height: CHART_HEIGHT,
      scales: { x: { time: true } },
      cursor: { drag: { x: false, y: false } },
      series: [
        { label: "time", value: (plot, t) => (t === null ? "–" : new Date(t * 1000).toLocaleString()) },
        ...names.map((name, i) => ({
          label: name, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: false, value: shown,
        })),
      ],
      // Mid grey reads on the admin's light and dark themes alike.
      axes: [
        { values: timeTicks(container), space: 70, size: 48, stroke: "#888", grid: { stroke: "rgba(128,128,128,0.2)" } },
        { size: 50, stroke: "#888", grid: { stroke: "rgba(128,128,128,0.2)" }, incrs: COUNT_STEPS },
      ],
    };
  }

  // A uPlot line chart; times in ms, one column of values (or null: a gap) per name.
  function lineChart(container, names, times, columns) {
    const data = withGaps(times, columns);
    const key = JSON.stringify(names);
    const known = plots.get(container.id);
    if (known && known.key === key) {
      known.plot.setData(data);
    } else {
      if (known) known.plot.destroy();
      const plot = new uPlot(plotOptions(container, names), data, container);
      plots.set(container.id, { plot, key });
      container.offloadPlot = plot;
    }
    container.dataset.nulls = String(data.slice(1).flat().filter((v) => v === null).length);
  }

  function depthChart(container, data) {
    const sampled = data.depth || {};
    const names = [...new Set([...Object.keys(sampled), ...depthHistory.keys()])].sort().slice(0, MAX_DEPTH_QUEUES);
    const byMinute = new Map(names.map((name) => [name, new Map()]));
    let newest = -Infinity;
    for (const name of names) {
      for (const [minute, ready] of sampled[name] || []) {
        const t = Date.parse(minute);
        byMinute.get(name).set(t, ready);
        newest = Math.max(newest, t);
      }
    }
    // Every minute of the window up to the newest sample: a minute without a
    // sample is null, drawn as a gap; then what this page read, live.
    const grid = data.series.minutes.map((m) => Date.parse(m)).filter((t) => t <= newest);
    const live = [...new Set(names.flatMap((name) => (depthHistory.get(name) || []).map((p) => p[0])))]
      .filter((t) => t > newest).sort((a, b) => a - b);
    const columns = names.map((name) => {
      const liveAt = new Map(depthHistory.get(name) || []);
      return grid.map((t) => byMinute.get(name).get(t) ?? null)
        .concat(live.map((t) => liveAt.get(t) ?? null));
    });
    lineChart(container, names, grid.concat(live), columns);
    container.dataset.samples = String(names.reduce((n, name) => n + (sampled[name] || []).length, 0));
  }

  function resizeWithPage() {
    if (!window.ResizeObserver) return;
    for (const id of ["chart-finished", "chart-depth"]) {
      const container = document.getElementById(id);
      new ResizeObserver(() => {
        const known = plots.get(id);
        const width = Math.max(280, container.clientWidth);
        if (known && known.plot.width !== width) known.plot.setSize({ width, height: CHART_HEIGHT });
      }).observe(container);
    }
  }

  function cell(row, value, numeric, cut) {
    const td = document.createElement("td");
    if (cut) {
      // A long task path is cut short by the stylesheet; the whole of it in the title.
      const span = document.createElement("span");
      span.className = "offload-path";
      span.title = value;
      span.textContent = value;
      td.appendChild(span);
    } else {
      td.textContent = value;
    }
    if (numeric) td.className = "num";
    row.appendChild(td);
  }

  function fillTable(id, rows, columns) {
    const body = document.querySelector(`#${id} tbody`);
    const fresh = rows.map((item) => {
      const tr = document.createElement("tr");
      for (const [key, format, numeric, cut] of columns) cell(tr, format(item[key]), numeric, cut);
      return tr;
    });
    body.replaceChildren(...fresh);
  }

  function render(data) {
    const c = data.counters;
    text("c-ready", c.ready + (c.ready_capped ? "+" : ""));
    text("c-running", c.running + (c.running_capped ? "+" : ""));
    text("c-blocked", c.blocked + (c.blocked_capped ? "+" : ""));
    text("c-waiting", c.waiting + (c.waiting_capped ? "+" : ""));
    text("c-failed", String(c.failed_last_hour));
    text("c-throughput", String(c.throughput_per_minute));
    text("c-wait", `${seconds(data.latency.wait_p50)} / ${seconds(data.latency.wait_p95)}`);
    text("c-run", `${seconds(data.latency.run_p50)} / ${seconds(data.latency.run_p95)}`);
    const minutes = data.series.minutes.map((m) => Date.parse(m));
    lineChart(document.getElementById("chart-finished"), ["succeeded", "failed"], minutes,
      [data.series.succeeded, data.series.failed]);
    const now = new Date(data.generated_at).getTime();
    for (const q of data.queues) {
      const points = depthHistory.get(q.name) || [];
      points.push([now, q.depth]);
      if (points.length > MAX_DEPTH_POINTS) points.shift();
      depthHistory.set(q.name, points);
    }
    depthChart(document.getElementById("chart-depth"), data);
    const plain = (v) => String(v);
    fillTable("table-queues", data.queues, [
      ["name", plain], ["depth", plain, true], ["due", plain, true], ["running", plain, true],
      ["oldest_wait", plain, true], ["wait_p50", seconds, true], ["wait_p95", seconds, true],
      ["run_p50", seconds, true], ["run_p95", seconds, true],
      ["paused", (p) => (p ? "paused" : "running")],
    ]);
    fillTable("table-tasks", data.tasks, [
      ["path", plain, false, true], ["succeeded", plain, true], ["failed", plain, true], ["cancelled", plain, true],
      ["wait_p50", seconds, true], ["wait_p95", seconds, true],
      ["run_p50", seconds, true], ["run_p95", seconds, true],
    ]);
    text("offload-sample", `Percentiles from the newest ${data.latency.sample} finished tasks of the window.`);
    renderVacuum(data.vacuum);
  }

  function describeBlocker(b) {
    const age = b.age_seconds === null ? "for an unknown time" : "for " + seconds(b.age_seconds);
    if (b.kind === "transaction") {
      const from = b.client ? `, from ${b.client}` : "";
      return `transaction of pid ${b.pid} (${b.application_name || "no application_name"}, user ${b.name}${from}), ` +
        `${b.state}, open ${age}, began ${b.since}, last query started ${b.query_start || "-"}`;
    }
    if (b.kind === "prepared transaction") return `prepared transaction "${b.name}" (owner ${b.application_name}), ${age}`;
    return `${b.state} ${b.application_name} replication slot "${b.name}", ${age}`;
  }

  function renderVacuum(section) {
    const box = document.getElementById("offload-vacuum");
    box.hidden = !section.blockers.length;
    text("offload-vacuum-limit", seconds(section.warning_seconds));
    document.getElementById("offload-vacuum-list").replaceChildren(...section.blockers.map((b) => {
      const li = document.createElement("li");
      li.textContent = describeBlocker(b);
      return li;
    }));
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
  resizeWithPage();
  load().finally(schedule);
})();
