// Usage: tokens, cost and calls over time by model or connection (a stacked bar
// chart drawn as SVG, with the same figures in a table), and the recent calls.

import { api } from "./api.js";
import { clear, formatCost, formatNumber, h } from "./dom.js";

export const title = "Usage";

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#2456c9", "#d9480f", "#2b8a3e", "#ae3ec9", "#e67700", "#0c8599", "#c2255c", "#5f3dc4"];
const METRICS = {
  tokens: { label: "Tokens", value: (p) => p.input_tokens + p.output_tokens, format: formatNumber },
  cost: { label: "Cost (USD)", value: (p) => p.cost || 0, format: formatCost },
  calls: { label: "Calls", value: (p) => p.calls, format: formatNumber },
};

let controls = null;
let chart = null;
let totals = null;
let breakdown = null;
let recent = null;
let status = null;
let data = null;

function select(id, label, options, selected) {
  const element = h("select", { id, onchange: () => (id === "usage-days" ? refresh() : render()) },
    options.map(([value, text]) => h("option", { value, selected: value === selected }, text)));
  return { element, field: h("div", { class: "field inline" }, h("label", { for: id }, label), element) };
}

export function init(section) {
  const days = select("usage-days", "Period", [["1", "Last 24 hours"], ["7", "Last 7 days"], ["30", "Last 30 days"]], "7");
  const group = select("usage-group", "Group by", [["model", "Model"], ["connection", "Connection"]], "model");
  const metric = select("usage-metric", "Show", [["tokens", "Tokens"], ["cost", "Cost"], ["calls", "Calls"]], "tokens");
  controls = { days: days.element, group: group.element, metric: metric.element };
  status = h("p", { class: "muted", role: "status" });
  totals = h("p", { id: "usage-totals" });
  chart = h("figure", { id: "usage-chart", class: "chart" });
  breakdown = h("div", { id: "usage-breakdown" });
  recent = h("div", { id: "usage-recent" });
  section.append(
    h("h1", { id: "usage-title" }, "Usage"),
    h("div", { class: "toolbar" }, days.field, group.field, metric.field,
      h("button", { type: "button", onclick: refresh }, "Refresh")),
    status, totals, chart, breakdown,
    h("h2", {}, "Recent calls"),
    recent,
  );
}

export function show() {
  refresh();
}

async function refresh() {
  status.textContent = "Loading usage…";
  try {
    const [usage, calls] = await Promise.all([
      api(`/admin/usage?days=${controls.days.value}`),
      api("/admin/usage/recent?limit=50"),
    ]);
    data = { usage, calls: calls.calls };
    status.textContent = "";
    render();
  } catch (error) {
    status.textContent = error.status === 503 ? error.message : `Could not read usage: ${error.message}`;
  }
}

function render() {
  if (!data) return;
  const { usage, calls } = data;
  const metric = METRICS[controls.metric.value];
  const points = controls.group.value === "model" ? usage.by_model : usage.by_connection;
  const t = usage.totals;
  totals.textContent = `${formatNumber(t.calls)} calls (${formatNumber(t.errors)} failed), ` +
    `${formatNumber(t.input_tokens)} tokens in, ${formatNumber(t.output_tokens)} out, ` +
    `cost ${formatCost(t.cost)} since ${new Date(usage.since).toLocaleString()}.`;
  drawChart(points, metric, usage.bucket);
  drawBreakdown(points, metric);
  drawRecent(calls);
}

function svg(tag, attributes = {}, text = null) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text !== null) element.textContent = text;
  return element;
}

function drawChart(points, metric, bucket) {
  clear(chart);
  const keys = [...new Set(points.map((p) => p.key))];
  const buckets = [...new Set(points.map((p) => p.bucket))].sort();
  const caption = h("figcaption", {}, `${metric.label} per ${bucket} by ${controls.group.value}`);
  if (!buckets.length) {
    chart.append(caption, h("p", { class: "muted" }, "No calls in this period yet."));
    return;
  }
  const stacks = buckets.map((b) => keys.map((k) => {
    const point = points.find((p) => p.bucket === b && p.key === k);
    return point ? metric.value(point) : 0;
  }));
  const highest = Math.max(...stacks.map((s) => s.reduce((a, v) => a + v, 0)), 1e-12);
  const width = 720;
  const height = 240;
  const left = 64;
  const bottom = 28;
  const plotHeight = height - bottom - 8;
  const slot = (width - left) / buckets.length;
  const bar = Math.max(2, Math.min(48, slot * 0.7));
  const image = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, role: "img", class: "bars",
    "aria-label": `${metric.label} per ${bucket}; the table below has the figures`,
  });
  image.append(svg("line", { x1: left, y1: 8, x2: left, y2: 8 + plotHeight, class: "axis" }));
  image.append(svg("line", { x1: left, y1: 8 + plotHeight, x2: width, y2: 8 + plotHeight, class: "axis" }));
  image.append(svg("text", { x: left - 6, y: 16, "text-anchor": "end", class: "tick" }, metric.format(highest)));
  image.append(svg("text", { x: left - 6, y: 8 + plotHeight, "text-anchor": "end", class: "tick" }, "0"));
  buckets.forEach((b, i) => {
    const x = left + i * slot + (slot - bar) / 2;
    let y = 8 + plotHeight;
    stacks[i].forEach((value, k) => {
      if (!value) return;
      const size = (value / highest) * plotHeight;
      y -= size;
      const rect = svg("rect", { x, y, width: bar, height: Math.max(size, 1), fill: COLORS[k % COLORS.length] });
      rect.append(svg("title", {}, `${keys[k]} · ${b}: ${metric.format(value)}`));
      image.append(rect);
    });
    if (buckets.length <= 12 || i % Math.ceil(buckets.length / 12) === 0) {
      const date = new Date(b);
      const text = bucket === "hour"
        ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
        : date.toLocaleDateString([], { month: "short", day: "numeric" });
      image.append(svg("text", { x: x + bar / 2, y: height - 8, "text-anchor": "middle", class: "tick" }, text));
    }
  });
  const legend = h("ul", { class: "legend" }, keys.map((key, k) =>
    h("li", {}, h("span", { class: `swatch swatch-${k % COLORS.length}`, "aria-hidden": "true" }), key)));
  chart.append(caption, image, legend);
}

function drawBreakdown(points, metric) {
  const sums = new Map();
  for (const p of points) {
    const row = sums.get(p.key) || { calls: 0, errors: 0, input: 0, output: 0, cost: null };
    row.calls += p.calls;
    row.errors += p.errors;
    row.input += p.input_tokens;
    row.output += p.output_tokens;
    if (p.cost !== null) row.cost = (row.cost || 0) + p.cost;
    sums.set(p.key, row);
  }
  clear(breakdown);
  if (!sums.size) return;
  const body = h("tbody");
  for (const [key, row] of [...sums].sort((a, b) => b[1].calls - a[1].calls)) {
    body.append(h("tr", {},
      h("th", { scope: "row" }, key),
      h("td", { class: "num" }, formatNumber(row.calls)),
      h("td", { class: "num" }, formatNumber(row.errors)),
      h("td", { class: "num" }, formatNumber(row.input)),
      h("td", { class: "num" }, formatNumber(row.output)),
      h("td", { class: "num" }, formatCost(row.cost))));
  }
  breakdown.append(h("table", { class: "usage-table", "aria-label": `Totals by ${controls.group.value}` },
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, controls.group.value === "model" ? "Model" : "Connection"),
      h("th", { scope: "col", class: "num" }, "Calls"),
      h("th", { scope: "col", class: "num" }, "Failed"),
      h("th", { scope: "col", class: "num" }, "Tokens in"),
      h("th", { scope: "col", class: "num" }, "Tokens out"),
      h("th", { scope: "col", class: "num" }, "Cost"))),
    body));
}

function drawRecent(calls) {
  clear(recent);
  if (!calls.length) {
    recent.append(h("p", { class: "muted" }, "No calls recorded yet."));
    return;
  }
  const body = h("tbody");
  for (const call of calls) {
    body.append(h("tr", { class: call.outcome === "ok" ? "" : "failed" },
      h("td", {}, new Date(call.started_at).toLocaleString()),
      h("th", { scope: "row" }, `${call.connection}/${call.model}`),
      h("td", {}, call.api),
      h("td", { class: "num" }, formatNumber(call.input_tokens)),
      h("td", { class: "num" }, formatNumber(call.output_tokens)),
      h("td", { class: "num" }, formatCost(call.cost)),
      h("td", { class: "num" }, `${Math.round(call.latency_ms)} ms`),
      h("td", { class: "num" }, call.ttft_ms === null ? "—" : `${Math.round(call.ttft_ms)} ms`),
      h("td", {}, call.outcome, call.error ? h("span", { class: "muted" }, ` ${call.error}`) : null)));
  }
  recent.append(h("table", { class: "recent", "aria-label": "Recent calls" },
    h("thead", {}, h("tr", {},
      ["Time", "Model", "API", "In", "Out", "Cost", "Latency", "First token", "Outcome"]
        .map((text) => h("th", { scope: "col" }, text)))),
    body));
}
