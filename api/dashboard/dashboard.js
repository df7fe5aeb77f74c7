// The dashboard: one page over the api's own JSON endpoints. The read
// token lives in this tab's session storage; the time range and filters
// live in the address (?range=…&filter=dim:value…), so a view can be shared.
"use strict";

const TOKEN_KEY = "qoe-read-token";
const TILES = [
  ["views", "count"],
  ["unique_viewers", "count"],
  ["video_startup_time", "median"],
  ["playback_failure_percentage", "percentage"],
  ["exits_before_video_start", "percentage"],
  ["rebuffer_percentage", "percentage"],
  ["weighted_average_bitrate", "avg"],
];
const $ = (id) => document.getElementById(id);
let catalog = { metrics: [], dimensions: [] };
let breakdownRows = [];
let breakdownSort = { key: "negative_impact", descending: true };
let liveTimer = null;

function state() {
  const q = new URLSearchParams(location.search);
  return { range: q.get("range") || "24:hours", filters: q.getAll("filter") };
}

function setState(range, filters) {
  const q = new URLSearchParams();
  q.set("range", range);
  filters.forEach((f) => q.append("filter", f));
  const open = new URLSearchParams(location.search).get("view");
  if (open) q.set("view", open);
  viewsPage = 1;
  history.pushState(null, "", "?" + q.toString());
  refresh();
}

function query(extra) {
  const s = state();
  const q = new URLSearchParams(extra || {});
  q.append("timeframe[]", s.range);
  s.filters.forEach((f) => q.append("filters[]", f));
  return q.toString();
}

async function api(path) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const reply = await fetch(path, { headers: { Authorization: "Bearer " + token } });
  const body = await reply.json().catch(() => ({}));
  if (reply.status === 401) {
    signOut("That token is not valid here.");
    throw new Error("unauthorized");
  }
  if (!reply.ok) {
    throw new Error((body.error && body.error.message) || reply.statusText);
  }
  return body;
}

function format(value, unit) {
  if (value === null || value === undefined) return "–";
  if (unit === "%") return value.toFixed(2) + " %";
  if (unit === "ms" && value >= 10000) return (value / 1000).toFixed(1) + " s";
  if (unit === "ms") return Math.round(value) + " ms";
  if (unit === "kbps") return Math.round(value).toLocaleString() + " kbps";
  if (!Number.isInteger(value) && Math.abs(value) < 10) return value.toFixed(1);
  return Math.round(value).toLocaleString();
}

// A table body's rows, or one row saying there is nothing (`columns` wide).
function fillRows(table, rows, columns, nothing) {
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = columns;
    td.className = "empty";
    td.textContent = nothing;
    tr.appendChild(td);
    rows = [tr];
  }
  table.querySelector("tbody").replaceChildren(...rows);
}

function metricOf(id) {
  return catalog.metrics.find((m) => m.id === id) || { id, name: id, unit: "" };
}

async function live() {
  const body = await api("/v1/monitoring/metrics/current-concurrent-viewers/timeseries");
  const points = body.data;
  $("live-now").textContent = points.length ? format(points[points.length - 1][1], "") : "–";
  drawLine($("live-chart"), points, (v) => format(v, ""));
}

async function tiles() {
  const box = $("tiles");
  const cards = await Promise.all(
    TILES.map(async ([id, measurement]) => {
      const m = metricOf(id);
      const body = await api(`/v1/metrics/${id}/overall?` + query({ measurement }));
      const d = body.data;
      const before = d.previous.value;
      let change = "";
      let tone = "";
      if (before) {
        const pct = ((d.value - before) / before) * 100;
        const worse = m.higher_is_worse ? pct > 0 : pct < 0;
        change = (pct >= 0 ? "+" : "") + pct.toFixed(1) + " % vs previous";
        tone = pct === 0 ? "" : worse ? "worse" : "better";
      }
      const card = document.createElement("div");
      card.className = "tile";
      card.dataset.metric = id;
      card.innerHTML = '<div class="name"></div><div class="value"></div><div class="change"></div>';
      card.querySelector(".name").textContent = m.name;
      card.querySelector(".value").textContent = format(d.value, m.unit);
      card.querySelector(".value").dataset.raw = String(d.value);
      const c = card.querySelector(".change");
      c.textContent = change;
      if (tone) c.classList.add(tone);
      return card;
    })
  );
  box.replaceChildren(...cards);
}

async function series() {
  const id = $("series-metric").value;
  const body = await api(`/v1/metrics/${id}/timeseries?` + query());
  drawLine($("series-chart"), body.data, (v) => format(v, metricOf(id).unit));
}

function renderBreakdown() {
  const { key, descending } = breakdownSort;
  const rows = [...breakdownRows].sort((a, b) => {
    const order = typeof a[key] === "string" ? a[key].localeCompare(b[key]) : a[key] - b[key];
    return descending ? -order : order;
  });
  const m = metricOf($("breakdown-metric").value);
  const dimension = $("breakdown-dimension").value;
  const body = $("breakdown").querySelector("tbody");
  body.replaceChildren(
    ...rows.map((r) => {
      const tr = document.createElement("tr");
      const first = document.createElement("td");
      if (r.value === "") {
        first.textContent = "(none)"; // no filter can name an empty value
      } else {
        const pick = document.createElement("button");
        pick.type = "button";
        pick.textContent = r.value;
        pick.addEventListener("click", () => {
          const s = state();
          setState(s.range, [...s.filters, `${dimension}:${r.value}`]);
        });
        first.appendChild(pick);
      }
      const cells = [format(r.metric_value, m.unit), r.views.toLocaleString(), r.negative_impact.toFixed(3)];
      tr.appendChild(first);
      cells.forEach((text) => {
        const td = document.createElement("td");
        td.className = "num";
        td.textContent = text;
        tr.appendChild(td);
      });
      return tr;
    })
  );
}

async function breakdown() {
  const id = $("breakdown-metric").value;
  const dimension = $("breakdown-dimension").value;
  const body = await api(
    `/v1/metrics/${id}/breakdown?` + query({ group_by: dimension, limit: "50" })
  );
  breakdownRows = body.data;
  renderBreakdown();
}

async function errors() {
  const body = await api("/v1/errors?" + query());
  const rows = body.data.map((e) => {
    const tr = document.createElement("tr");
    [e.code, e.views.toLocaleString(), e.fatal.toLocaleString(), e.percentage.toFixed(2) + " %",
      new Date(e.last_seen * 1000).toISOString().replace("T", " ").slice(0, 19)].forEach((text, i) => {
      const td = document.createElement("td");
      if (i > 0 && i < 4) td.className = "num";
      td.textContent = text;
      tr.appendChild(td);
    });
    return tr;
  });
  fillRows($("errors"), rows, 5, "No errors in this range.");
}

function renderFilters() {
  const s = state();
  $("range").value = s.range;
  $("filters").replaceChildren(
    ...s.filters.map((f) => {
      const chip = document.createElement("span");
      chip.className = "filter";
      chip.textContent = f;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.setAttribute("aria-label", "remove filter " + f);
      remove.textContent = "×";
      remove.addEventListener("click", () => setState(s.range, s.filters.filter((x) => x !== f)));
      chip.appendChild(remove);
      return chip;
    })
  );
}

async function refresh() {
  renderFilters();
  const results = await Promise.allSettled([tiles(), series(), breakdown(), errors(), views(), timeline()]);
  results
    .filter((r) => r.status === "rejected")
    .forEach((r) => console.warn("dashboard:", r.reason));
  document.body.dataset.loaded = String(Date.now());
}

function fill(select, items, chosen) {
  select.replaceChildren(
    ...items.map(([value, label]) => {
      const o = document.createElement("option");
      o.value = value;
      o.textContent = label;
      return o;
    })
  );
  select.value = chosen;
}

async function start() {
  $("signin").hidden = true;
  $("app").hidden = false;
  const [metrics, dimensions] = await Promise.all([api("/v1/metrics"), api("/v1/dimensions")]);
  catalog = { metrics: metrics.data, dimensions: dimensions.data };
  $("property").textContent = metrics.meta.property_id;
  const names = catalog.metrics.map((m) => [m.id, m.name]);
  fill($("series-metric"), names, "views");
  fill($("breakdown-metric"), names, "rebuffer_percentage");
  fill($("breakdown-dimension"), catalog.dimensions.map((d) => [d, d]), "country");
  await Promise.all([refresh(), live().catch((e) => console.warn("live:", e))]);
  clearInterval(liveTimer);
  liveTimer = setInterval(() => live().catch((e) => console.warn("live:", e)), 5000);
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearInterval(liveTimer);
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
  $("token").focus();
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    start().catch((e) => ($("signin-error").textContent = String(e.message || e)));
  });
  $("signout").addEventListener("click", () => signOut(""));
  $("range").addEventListener("change", () => setState($("range").value, state().filters));
  $("series-metric").addEventListener("change", () => series().catch(console.warn));
  $("breakdown-metric").addEventListener("change", () => breakdown().catch(console.warn));
  $("breakdown-dimension").addEventListener("change", () => breakdown().catch(console.warn));
  document.querySelectorAll("#breakdown th button").forEach((b) =>
    b.addEventListener("click", () => {
      const key = b.dataset.sort;
      breakdownSort = { key, descending: breakdownSort.key === key ? !breakdownSort.descending : true };
      renderBreakdown();
    })
  );
  $("views-prev").addEventListener("click", () => turnViewsPage(-1));
  $("views-next").addEventListener("click", () => turnViewsPage(1));
  $("timeline-close").addEventListener("click", closeView);
  window.addEventListener("popstate", () => refresh());
  if (sessionStorage.getItem(TOKEN_KEY)) {
    start().catch(() => signOut("Sign in again."));
  } else {
    signOut("");
  }
});
