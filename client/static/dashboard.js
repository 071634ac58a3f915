// The operations dashboard: reads GET /api/v1/dashboard with an admin key every few seconds and draws it as
// inline SVG (no chart library, nothing from a CDN). The key comes from the URL fragment (#key=..., never sent
// to a server) or the form, and stays in this tab's sessionStorage only.
const REFRESH_MS = 5000;
const KEY = "recstack.admin";
const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#2f6fde", "#e07a1f", "#2a9d5c", "#b42318"];

const fromFragment = new URLSearchParams(location.hash.slice(1)).get("key");
if (fromFragment) {
  sessionStorage.setItem(KEY, fromFragment);
  history.replaceState(null, "", location.pathname);
}

function el(tag, attributes = {}, text) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function lineChart(series, { unit = "" } = {}) {
  // series: [{ name, points: [number|null] }], one point per time bucket
  const width = 320, height = 120, left = 34, bottom = 14;
  const values = series.flatMap((s) => s.points).filter((v) => v !== null);
  const top = (Math.max(0, ...values) || 1) * 1.1; // all zero: an axis of 1, not of nothing
  const count = Math.max(...series.map((s) => s.points.length), 2);
  const x = (i) => left + (i / (count - 1)) * (width - left - 4);
  const y = (v) => 4 + (1 - v / top) * (height - bottom - 4);
  const svg = el("svg:svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  svg.append(el("svg:line", { x1: left, x2: width, y1: y(0), y2: y(0), stroke: "#ccc" }));
  svg.append(el("svg:text", { x: 2, y: 10 }, `${+top.toPrecision(3)}${unit}`));
  svg.append(el("svg:text", { x: 2, y: y(0) }, `0${unit}`));
  const span = (count - 1) * board.bucket;
  svg.append(el("svg:text", { x: left, y: height - 2 },
                span < 120 ? `${span} s ago` : `${Math.round(span / 60)} min ago`));
  svg.append(el("svg:text", { x: width - 24, y: height - 2 }, "now"));
  series.forEach((s, k) => {
    const path = s.points.map((v, i) => (v === null ? null : `${x(i)},${y(v)}`)).filter(Boolean).join(" ");
    svg.append(el("svg:polyline", { points: path, fill: "none", stroke: COLOURS[k], "stroke-width": 1.6 }));
  });
  const legend = el("div", { class: "legend" });
  series.forEach((s, k) => legend.append(el("span", { style: `color:${COLOURS[k]}` }, `■ ${s.name}`)));
  return [svg, legend];
}

function intervalChart(variants) {
  // Per variant: its name and rates on one line, CTR and conversion beneath as dots on their Wilson intervals.
  if (!variants.length) return [el("p", {}, "No experiment has served a list yet.")];
  const rowHeight = 36, width = 320, left = 4, height = variants.length * rowHeight + 14;
  const top = Math.max(0.01, ...variants.flatMap((v) => [v.ctr_ci95[1], v.conversion_ci95[1]]));
  const x = (p) => left + (p / top) * (width - left - 8);
  const percent = (p) => `${(100 * p).toFixed(1)}%`;
  const svg = el("svg:svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  variants.forEach((v, i) => {
    const base = i * rowHeight;
    svg.append(el("svg:text", { x: left, y: base + 10, "font-size": 8.5 },
                  `${v.experiment_id} / ${v.variant}: ${v.lists} lists, CTR ${percent(v.ctr)}, ` +
                  `conv. ${percent(v.conversion)}`));
    [["ctr", 0], ["conversion", 1]].forEach(([metric, k]) => {
      const [low, high] = v[`${metric}_ci95`], at = base + 18 + k * 7;
      svg.append(el("svg:line", { x1: x(low), x2: x(high), y1: at, y2: at, stroke: COLOURS[k], "stroke-width": 2 }));
      svg.append(el("svg:circle", { cx: x(v[metric]), cy: at, r: 3, fill: COLOURS[k] }));
    });
  });
  svg.append(el("svg:text", { x: left, y: height - 2 }, "0%"));
  svg.append(el("svg:text", { x: width - 40, y: height - 2 }, percent(top)));
  const legend = el("div", { class: "legend" });
  legend.append(el("span", { style: `color:${COLOURS[0]}` }, "■ CTR"),
                el("span", { style: `color:${COLOURS[1]}` }, "■ conversion"));
  return [svg, legend];
}

const board = { bucket: 10 };

function draw(data) {
  board.bucket = data.timeline.bucket_s;
  const rows = data.timeline.rows;
  const serving = el("table");
  serving.replaceChildren(...[["engine", data.engine]].concat(
    data.model_versions.map((m) => [m.version, `last served ${m.last_served_s} s ago`])).map(([a, b]) => {
    const row = el("tr");
    row.append(el("th", {}, a), el("td", {}, b));
    return row;
  }));
  document.getElementById("serving").replaceChildren(serving);
  document.getElementById("requests").replaceChildren(...lineChart([
    { name: "requests", points: rows.map((r) => r.requests) },
    { name: "events", points: rows.map((r) => r.events) }]));
  document.getElementById("latency").replaceChildren(...lineChart([
    { name: "p50", points: rows.map((r) => r.p50_ms) },
    { name: "p95", points: rows.map((r) => r.p95_ms) }], { unit: " ms" }));
  const rate = (r, name) => (r.requests ? (100 * r[name]) / r.requests : 0);
  document.getElementById("rates").replaceChildren(...lineChart([
    { name: `fallbacks (${(100 * data.totals.fallback_rate).toFixed(1)}% overall)`,
      points: rows.map((r) => rate(r, "fallbacks")) },
    { name: `errors (${(100 * data.totals.error_rate).toFixed(1)}% overall)`,
      points: rows.map((r) => rate(r, "errors")) }], { unit: "%" }));
  document.getElementById("experiments").replaceChildren(...intervalChart(data.experiments));
  document.getElementById("trending").replaceChildren(...data.trending.map(
    (t) => el("li", {}, `${t.title} (${t.category})`)));
  const s = data.event_stream;
  document.getElementById("backlog").replaceChildren(el("p", {},
    `${s.events} events and ${s.impressions} impressions held in the stream, ${s.served_lists} served lists ` +
    `logged; last event ${s.last_event ?? "never"}.`));
  document.getElementById("drift").replaceChildren(...driftTable(data.drift));
}

function driftTable(drift) {
  // Per serving model version: the window's share of requests with untrained items or users; then the popularity
  // divergence beside its floor (what sampling noise alone gives a window of that many events).
  const percent = (share) => (share === null ? "–" : `${(100 * share).toFixed(1)}%`);
  const bits = (value) => (value === null ? "–" : value.toFixed(3));
  if (drift.at === null) return [el("p", {}, `First reading within ${drift.interval_s} s.`)];
  const table = el("table");
  const head = el("tr");
  ["model version", "requests", "unknown items", "unknown users"].forEach((name) => head.append(el("th", {}, name)));
  table.append(head);
  for (const v of drift.versions) {
    const row = el("tr");
    [v.model_version, v.requests, percent(v.unknown_item_share), percent(v.unknown_user_share)].forEach(
      (value) => row.append(el("td", {}, value)));
    table.append(row);
  }
  const window = drift.window_s < 120 ? `${drift.window_s} s` : `${Math.round(drift.window_s / 60)} min`;
  return [table, el("p", {}, `Popularity divergence (JS, bits) over the last ${window}: ${bits(drift.js_divergence)}, ` +
                  `noise floor ${bits(drift.js_floor)} for ${drift.events} events.`)];
}

function refuse(message) {
  sessionStorage.removeItem(KEY);
  document.getElementById("board").hidden = true;
  document.getElementById("login").hidden = false;
  document.getElementById("refused").textContent = message;
}

async function refresh() {
  const key = sessionStorage.getItem(KEY);
  if (!key) return refuse("An admin key is needed.");
  try {
    const response = await fetch("/api/v1/dashboard", { headers: { "X-API-Key": key } });
    if (response.status === 401 || response.status === 403) {
      return refuse(`Refused: ${(await response.json()).detail}`);
    }
    if (!response.ok) throw new Error(`status ${response.status}`);
    draw(await response.json());
    document.getElementById("login").hidden = true;
    document.getElementById("board").hidden = false;
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    document.getElementById("updated").textContent = `not updated: ${error.message}; retrying`;
  }
  setTimeout(refresh, REFRESH_MS);
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, document.getElementById("key").value);
  refresh();
});
refresh();
