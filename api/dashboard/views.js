// The dashboard's views list and one view's timeline. The open view is in
// the address (?view=…), so a timeline can be shared as a link too.
"use strict";

const VIEWS_PER_PAGE = 20;
let viewsPage = 1;

function cells(tr, values, numeric) {
  values.forEach((text, i) => {
    const td = document.createElement("td");
    if (numeric.includes(i)) td.className = "num";
    td.textContent = text;
    tr.appendChild(td);
  });
}

async function views() {
  const body = await api("/v1/video-views?" + query({ limit: String(VIEWS_PER_PAGE), page: String(viewsPage) }));
  const rows = body.data.map((v) => {
    const tr = document.createElement("tr");
    const first = document.createElement("td");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "open-view";
    open.dataset.view = v.view_id;
    open.textContent = clock(v.view_start, 0);
    open.setAttribute("aria-label", `timeline of view ${v.view_id}`);
    open.addEventListener("click", () => showView(v.view_id));
    first.appendChild(open);
    tr.appendChild(first);
    cells(tr, [
      v.viewer_id, v.video_title || v.video_id, v.player_name, v.country || "–",
      format(v.watch_time_ms, "ms"), v.started ? format(v.startup_time_ms, "ms") : "never started",
      String(v.rebuffer_count), v.error_code ? v.error_code + (v.error_fatal ? " (fatal)" : "") : "",
    ], [4, 5, 6]);
    return tr;
  });
  fillRows($("views"), rows, 9, "No views in this range.");
  const pages = Math.max(1, Math.ceil(body.total_row_count / VIEWS_PER_PAGE));
  $("views-page").textContent = `page ${viewsPage} of ${pages} · ${body.total_row_count.toLocaleString()} views`;
  $("views-prev").disabled = viewsPage <= 1;
  $("views-next").disabled = viewsPage >= pages;
}

function turnViewsPage(by) {
  viewsPage = Math.max(1, viewsPage + by);
  views().catch((e) => console.warn("views:", e));
}

// Opens view `id`'s timeline and records it in the address.
function showView(id) {
  const q = new URLSearchParams(location.search);
  q.set("view", id);
  history.pushState(null, "", "?" + q.toString());
  timeline().catch((e) => console.warn("timeline:", e));
}

function closeView() {
  const q = new URLSearchParams(location.search);
  q.delete("view");
  history.pushState(null, "", "?" + q.toString());
  $("timeline-panel").hidden = true;
}

// The timeline of the view named in the address, if any.
async function timeline() {
  const id = new URLSearchParams(location.search).get("view");
  const panel = $("timeline-panel");
  if (!id) {
    panel.hidden = true;
    return;
  }
  const body = await api(`/v1/video-views/${encodeURIComponent(id)}`);
  const { view, events } = body.data;
  panel.hidden = false;
  $("timeline-title").textContent = `View ${view.view_id}`;
  const facts = [
    ["Viewer", view.viewer_id], ["Video", view.video_title || view.video_id],
    ["Player", view.player_name], ["CDN", view.cdn], ["Country", view.country || "–"],
    ["Device", view.device_type], ["Watch time", format(view.watch_time_ms, "ms")],
    ["Startup", view.started ? format(view.startup_time_ms, "ms") : "never started"],
    ["Rebuffers", `${view.rebuffer_count} (${format(view.rebuffer_duration_ms, "ms")})`],
    ["Average bitrate", `${view.avg_bitrate_kbps.toLocaleString()} kbps`],
    ["Error", view.error_code ? view.error_code + (view.error_fatal ? " (fatal)" : "") : "none"],
  ];
  $("timeline-facts").replaceChildren(
    ...facts.flatMap(([k, v]) => {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = v;
      return [dt, dd];
    })
  );
  drawTimeline($("timeline-chart"), view, events);
  const rows = events.map((e) => {
    const tr = document.createElement("tr");
    tr.dataset.event = e.event;
    cells(tr, [
      `+${e.ts - view.view_start} s`, e.event, e.state, e.bitrate_kbps ? e.bitrate_kbps.toLocaleString() : "",
      format(e.playhead_ms, "ms"), format(e.buffer_length_ms, "ms"), e.error_code,
    ], [0, 3, 4, 5]);
    return tr;
  });
  $("timeline-events").querySelector("tbody").replaceChildren(...rows);
  panel.dataset.view = view.view_id;
  $("timeline-title").focus();
}
