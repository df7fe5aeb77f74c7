// The dashboard's charts: SVG drawn to fill its box, with the axis labels
// as HTML beside it (text inside a stretched SVG would stretch with it).
// Times are UTC.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const CHART_W = 720;
const CHART_H = 160;

function svgElement(name, attributes) {
  const e = document.createElementNS(SVG_NS, name);
  Object.entries(attributes).forEach(([k, v]) => e.setAttribute(k, String(v)));
  return e;
}

// A UTC clock time for epoch second `t`, as precise as a span of `span` s needs.
function clock(t, span) {
  const iso = new Date(t * 1000).toISOString();
  if (span > 2 * 86400) return iso.slice(5, 10) + " " + iso.slice(11, 16);
  return iso.slice(11, span < 600 ? 19 : 16);
}

// The smallest of 1, 2, 2.5, 5 × 10^n at or above `v`: a round top for an axis.
function roundUp(v) {
  if (!(v > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((m) => m * power).find((x) => x >= v);
}

// Axis labels around `svg` (inside its `.chart-box`): `y` labels at
// fractions of the height, `x` labels at fractions of the width.
function axisLabels(svg, y, x) {
  const box = svg.parentElement;
  box.querySelectorAll(".axis").forEach((e) => e.remove());
  y.forEach(([fraction, text]) => {
    const label = document.createElement("span");
    label.className = "axis y";
    label.style.top = (1 - fraction) * 100 + "%";
    label.textContent = text;
    box.appendChild(label);
  });
  x.forEach(([fraction, text]) => {
    const label = document.createElement("span");
    label.className = "axis x" + (fraction === 0 ? " start" : fraction === 1 ? " end" : "");
    label.style.left = fraction * 100 + "%";
    label.textContent = text;
    box.appendChild(label);
  });
}

// `points` ([[epoch s, value], …]) as a line from 0 to a round maximum,
// with grid lines and labels at 0, half and the maximum.
function drawLine(svg, points, formatValue) {
  svg.replaceChildren();
  if (points.length === 0) {
    axisLabels(svg, [], [[0.5, "no data in this range"]]);
    return;
  }
  const top = roundUp(Math.max(...points.map((p) => p[1])));
  const t0 = points[0][0];
  const t1 = points[points.length - 1][0];
  const span = Math.max(t1 - t0, 1);
  const x = (t) => ((t - t0) / span) * CHART_W;
  const y = (v) => CHART_H - (v / top) * (CHART_H - 4);
  [0, 0.5, 1].forEach((f) =>
    svg.appendChild(svgElement("line", { class: "grid", x1: 0, x2: CHART_W, y1: y(top * f), y2: y(top * f) }))
  );
  const coords = points.map((p) => `${x(p[0])},${y(p[1])}`).join(" ");
  svg.appendChild(svgElement("polyline", { points: points.length > 1 ? coords : `0,${y(points[0][1])} ${CHART_W},${y(points[0][1])}` }));
  svg.dataset.max = String(top);
  axisLabels(
    svg,
    [0, 0.5, 1].map((f) => [f, formatValue(top * f)]),
    [[0, clock(t0, span)], [0.5, clock(t0 + span / 2, span)], [1, clock(t1, span)]]
  );
}

// What a view was doing between events, by the state each event left it in.
const STATE_CLASS = {
  starting: "starting", playing: "playing", paused: "paused", seeking: "seeking",
  rebuffering: "rebuffering", errored: "errored", ended: "ended", idle: "idle",
};
// Events worth a mark of their own on the timeline.
const MARKED = ["playing", "rebufferstart", "rebufferend", "renditionchange", "error", "viewend"];

// One view on a time axis: its states as bands (middle lane), its bitrate
// as a step line (top lane) and a mark per notable event (bottom lane):
// the first `playing` is the startup, then rebuffers, errors, bitrate
// changes and the end.
function drawTimeline(svg, view, events) {
  svg.replaceChildren();
  const t0 = view.view_start;
  const t1 = Math.max(t0 + 1, ...events.map((e) => e.ts));
  const span = t1 - t0;
  const x = (t) => ((t - t0) / span) * CHART_W;
  events.forEach((e, i) => {
    const next = i + 1 < events.length ? events[i + 1].ts : e.ts;
    if (next <= e.ts) return;
    svg.appendChild(svgElement("rect", {
      class: "band " + (STATE_CLASS[e.state] || "idle"), x: x(e.ts), y: 70, width: x(next) - x(e.ts), height: 30,
    }));
  });
  const top = roundUp(Math.max(1, ...events.map((e) => e.bitrate_kbps)));
  const rate = (kbps) => 60 - (kbps / top) * 50;
  // A step line: each reported bitrate holds until the next one.
  const steps = [];
  let level = null;
  events.forEach((e) => {
    if (e.bitrate_kbps === 0) return;
    if (level !== null) steps.push(`${x(e.ts)},${level}`);
    level = rate(e.bitrate_kbps);
    steps.push(`${x(e.ts)},${level}`);
  });
  if (level !== null) {
    steps.push(`${CHART_W},${level}`);
    svg.appendChild(svgElement("polyline", { class: "bitrate", points: steps.join(" ") }));
  }
  let started = false;
  events.forEach((e) => {
    if (!MARKED.includes(e.event)) return;
    if (e.event === "playing") {
      if (started) return;
      started = true;
    }
    const kind = e.event === "playing" ? "startup" : e.event;
    const mark = svgElement("line", { class: "mark " + kind, x1: x(e.ts), x2: x(e.ts), y1: 105, y2: 155 });
    mark.dataset.event = kind;
    const title = svgElement("title", {});
    title.textContent = `${kind} at +${e.ts - t0} s${e.error_code ? " (" + e.error_code + ")" : ""}`;
    mark.appendChild(title);
    svg.appendChild(mark);
  });
  axisLabels(
    svg,
    [[1, `${top.toLocaleString()} kbps`]],
    [[0, clock(t0, span) + " start"], [0.5, `+${Math.round(span / 2)} s`], [1, `+${span} s`]]
  );
}
