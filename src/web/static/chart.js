// The overview's throughput chart: stacked bars (succeeded below, failed above) per
// time bucket, drawn as SVG from GET api/history/series points [{at, succeeded, failed, runs}].

import { svg, fmtCount, toSeconds } from "./dom.js";

const RANGES = { "1h": 3600, "24h": 86400, "30d": 30 * 86400 };
const DEFAULT_STEP = { "1h": 60, "24h": 3600, "30d": 86400 };

const HEIGHT = 220;
const PAD = { left: 48, right: 12, top: 12, bottom: 26 };

// width: the chart's width in CSS pixels (the box it goes in), so its text is not scaled.
export function throughputChart(points, range, width = 800) {
  const WIDTH = Math.max(320, Math.round(width));
  const span = RANGES[range] || 3600;
  const rows = (points || [])
    .map((p) => ({ at: toSeconds(p.at), ok: num(p.succeeded), failed: num(p.failed) }))
    .filter((p) => p.at !== null)
    .sort((a, b) => a.at - b.at);
  const step = inferStep(rows) || DEFAULT_STEP[range] || 60;
  const end = Math.max(Date.now() / 1000, rows.length ? rows[rows.length - 1].at + step : 0);
  const start = end - span;

  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const max = niceMax(Math.max(1, ...rows.map((p) => p.ok + p.failed)));
  const x = (t) => PAD.left + ((t - start) / span) * plotW;
  const y = (v) => PAD.top + plotH - (v / max) * plotH;
  const barW = Math.max(1, (step / span) * plotW - (step / span * plotW > 4 ? 1 : 0));

  const chart = svg("svg", {
    class: "chart", viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img",
    "aria-label": `Jobs finished per ${stepName(step)}, last ${range}`,
  });

  // Horizontal grid lines with their values.
  for (let i = 0; i <= 4; i++) {
    const v = (max / 4) * i;
    chart.appendChild(svg("line", { class: "grid", x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v) }));
    chart.appendChild(svg("text", { class: "axis", x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" }, fmtShort(v)));
  }
  // Time labels (fewer on a narrow chart).
  const ticks = WIDTH < 560 ? 2 : 4;
  for (let i = 0; i <= ticks; i++) {
    const t = start + (span / ticks) * i;
    const anchor = i === 0 ? "start" : i === ticks ? "end" : "middle";
    chart.appendChild(svg("text", { class: "axis", x: x(t), y: HEIGHT - 8, "text-anchor": anchor }, timeLabel(t, range)));
  }
  // Bars.
  for (const p of rows) {
    if (p.at + step < start) continue;
    const left = Math.max(PAD.left, x(p.at));
    const title = `${new Date(p.at * 1000).toLocaleString()}: ${fmtCount(p.ok)} succeeded, ${fmtCount(p.failed)} failed`;
    const group = svg("g", null, svg("title", null, title));
    if (p.ok > 0) group.appendChild(svg("rect", { class: "bar-ok", x: left, width: barW, y: y(p.ok), height: y(0) - y(p.ok) }));
    if (p.failed > 0) {
      group.appendChild(svg("rect", {
        class: "bar-failed", x: left, width: barW, y: y(p.ok + p.failed), height: y(p.ok) - y(p.ok + p.failed),
      }));
    }
    if (group.childNodes.length > 1) chart.appendChild(group);
  }
  chart.appendChild(svg("line", { class: "baseline", x1: PAD.left, x2: WIDTH - PAD.right, y1: y(0), y2: y(0) }));
  return { chart, step };
}

export function stepName(step) {
  if (step >= 86400) return step === 86400 ? "day" : `${Math.round(step / 86400)} days`;
  if (step >= 3600) return step === 3600 ? "hour" : `${Math.round(step / 3600)} hours`;
  if (step >= 60) return step === 60 ? "minute" : `${Math.round(step / 60)} minutes`;
  return `${step} s`;
}

function num(v) {
  return typeof v === "number" && isFinite(v) ? v : 0;
}

function inferStep(rows) {
  let step = Infinity;
  for (let i = 1; i < rows.length; i++) {
    const d = rows[i].at - rows[i - 1].at;
    if (d > 0 && d < step) step = d;
  }
  return isFinite(step) ? step : null;
}

function niceMax(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmtShort(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(v % 1e6 ? 1 : 0) + "M";
  if (v >= 1e3) return (v / 1e3).toFixed(v % 1e3 ? 1 : 0) + "k";
  return String(Math.round(v * 10) / 10);
}

function timeLabel(t, range) {
  const d = new Date(t * 1000);
  if (range === "30d") return d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}
