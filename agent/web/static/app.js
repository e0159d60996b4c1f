// The station page: polls /api/live every 2 s; a click on a channel draws its last 24 h.
// Actions (requeue...) appear only when the agent has a [web] token; they send it as a Bearer.
"use strict";
const STATUS = { "00": "measuring", "01": "calibrating", "02": "FAULT" };
let chartChannel = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c === null || c === undefined ? "" : c);
  return node;
}
let ZONE = "UTC";  // the station's timezone (from /api/live): every time is shown in it, with its offset
function when(ms) {
  if (ms === null || ms === undefined) return "never";
  const parts = {};
  for (const p of new Intl.DateTimeFormat("en-GB", { timeZone: ZONE, year: "numeric", month: "2-digit",
    day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    timeZoneName: "shortOffset" }).formatToParts(new Date(ms))) parts[p.type] = p.value;
  // "GMT+7" -> "+07", "GMT-3:30" -> "-03:30", "GMT" -> "+00": as `status` prints the station's zone
  const m = /^GMT(?:([+-])(\d{1,2})(?::(\d\d))?)?$/.exec(parts.timeZoneName || "");
  const zone = m ? (m[1] || "+") + (m[2] || "0").padStart(2, "0") + (m[3] ? ":" + m[3] : "")
    : parts.timeZoneName;
  return parts.year + "-" + parts.month + "-" + parts.day + " " + parts.hour + ":" + parts.minute +
    ":" + parts.second + " " + zone;
}
function age(s) {
  if (s === null || s === undefined) return "-";
  if (s < 120) return Math.round(s) + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}
function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + units[i];
}
function value(v) {
  if (v === null || v === undefined) return "—";
  return typeof v === "number" && !Number.isInteger(v) ? v.toFixed(2) : String(v);
}

function counts(d) {
  if (d.requests === null || d.requests === undefined) return "";
  const kinds = Object.entries(d.request_errors).map(([k, n]) => k + " " + n).join(", ");
  return "; requests " + d.requests + ", failed " + (kinds || "none");
}

// A device's state in the words `status` uses (agent/status/sections/devices.py), and the
// colour the page gives it.
function condition(state) {
  if (state === "ok" || state === "FAULT") return state.toLowerCase();
  return state === "never polled" ? "waiting" : "partial";  // "partly failing: A, B"
}

// When the buffer last recorded a poll of the device (before this agent's first poll of it).
function lastPoll(d) {
  return Math.max(d.last_good_ms || 0, d.last_error_at_ms || 0) || null;
}

function device(d) {
  const raw = d.channels.some((c) => c.raw !== null && c.raw !== undefined);
  const head = el("h3", {}, el("span", {}, d.name + " (" + d.driver + ")"),
    el("span", { class: "muted" }, d.state === "never polled" ? "waiting for the first poll"
      : d.state + " · " + when(d.time_ms ?? lastPoll(d))));
  const body = el("tbody");
  for (const c of d.channels) {
    const row = el("tr", { class: "channel s" + (c.status || ""), "data-param": c.param,
      "data-period": c.period || "" },
      el("td", {}, c.param), el("td", { class: "period muted" }, c.period || ""),
      el("td", { class: "num value" }, value(c.value)),
      el("td", {}, c.unit), el("td", { class: "status" }, STATUS[c.status] || "—"),
      el("td", { class: "muted" }, c.error && c.error !== d.error ? c.error : ""),
      el("td", { class: "muted time" }, c.period && c.time_ms ? when(c.time_ms) : ""));
    if (raw) row.append(el("td", { class: "raw", title: "raw registers of the last answer" }, c.raw || "—"));
    row.addEventListener("click", () => { chartChannel = [d.name, c.param, c.unit]; chart(); });
    body.append(row);
  }
  const box = el("div", { class: "device " + condition(d.state), id: "device-" + d.name,
    "data-state": condition(d.state) },
    head, el("table", {}, body));
  if (d.error) box.append(el("div", { class: "error" }, d.error));
  else if (d.last_error) {
    box.append(el("div", { class: "muted", style: "padding:0 0.6rem 0.4rem" },
      "last error " + when(d.last_error_at_ms) + ": " + d.last_error));
  }
  box.append(el("div", { class: "muted", style: "padding:0 0.6rem 0.4rem" },
    "polls " + d.polls + ", faults " + d.faults + ", last good " + when(d.last_good_ms) + counts(d)));
  return box;
}

function button(label, action, args) {
  const b = el("button", { type: "button", class: "action", "data-action": action }, label);
  b.addEventListener("click", () => act(action, args, b));
  return b;
}

async function act(action, args, b) {
  const out = document.getElementById("action-result");
  const token = document.getElementById("token").value.trim();
  if (!token) { out.textContent = "enter the token first"; return; }
  b.disabled = true;
  try {
    const r = await fetch("/api/action/" + action, { method: "POST", cache: "no-store",
      headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
      body: JSON.stringify(args) });
    const answer = await r.json();
    out.textContent = r.ok ? action + ": " + JSON.stringify(answer) : "refused (" + r.status + "): " + answer.error;
    out.className = r.ok ? "ok" : "bad";
    if (r.ok) sessionStorage.setItem("token", token);
  } catch (e) {
    out.textContent = action + " failed: " + e.message;
  } finally {
    b.disabled = false;
    refresh();
  }
}

function transport(t, now, actions) {
  const oldest = t.oldest_unacked_reading_at_ms ? (now - t.oldest_unacked_reading_at_ms) / 1000 : null;
  const failing = t.failing_since_ms !== null && t.failing_since_ms !== undefined;
  const state = failing ? "FAILING since " + when(t.failing_since_ms) + ": " + (t.last_error || "offline")
    : "ok";
  return el("tr", { class: failing ? "s02" : "s00", id: "transport-" + t.name },
    el("td", {}, t.name + " (" + t.type + ")"),
    el("td", { class: "num" }, t.backlog_readings === undefined ? "-" : t.backlog_readings + " readings"),
    el("td", { class: "num" }, age(oldest)),
    el("td", {}, t.last_acked_seq ? "seq " + t.last_acked_seq + " at " + when(t.last_acked_at_ms) : "never"),
    el("td", { class: "status" }, state),
    el("td", { class: t.quarantined_count ? "bad" : "muted" }, quarantined(t, actions)));
}

function quarantined(t, actions) {
  if (!t.quarantined_count) return "none";
  const box = el("span", {}, t.quarantined_count + " (seq " + t.quarantined.map((q) => q.seq).join(", ") +
    (t.quarantined_count > t.quarantined.length ? ", …" : "") + ") ");
  if (actions) box.append(button("requeue", "requeue", { transport: t.name }));
  return box;
}

function clock(c) {
  const node = document.getElementById("clock");
  node.className = c.synchronized === false ? "badge bad" : "badge";
  node.dataset.synchronized = String(c.synchronized);
  node.textContent = c.synchronized === null ? "clock sync unknown"
    : c.synchronized ? "clock synchronized (±" + c.max_error_s + " s)"
      : "CLOCK NOT SYNCHRONIZED (max error " + c.max_error_s + " s): readings carry a clock no time service checks";
}

function maintenance(section) {  // the same section `status` shows: active, recently ended
  const box = document.getElementById("maintenance");
  if (section === null || section === undefined) {
    box.replaceChildren(el("p", { class: "muted" }, "no maintenance windows kept by this agent"));
    return;
  }
  const rows = [...section.active.map((w) => [w, true]), ...section.recently_ended.map((w) => [w, false])];
  if (!rows.length) { box.replaceChildren(el("p", { class: "muted" }, "none now or in the last 24 h")); return; }
  box.replaceChildren(el("table", {}, el("tbody", {}, ...rows.map(([w, active]) =>
    el("tr", { class: active ? "s01 window active" : "window ended" },
      el("td", { class: "status" }, active ? "IN MAINTENANCE" : "ended"),
      el("td", {}, w.line || ((w.device || "whole station") + ": " + (w.reason || ""))))))));
}

function signing(s) {  // status --json's signing_key and descriptor sections
  const k = s.signing_key, lines = [el("p", { id: "kid" }, "key in force: " + (k.kid || "unknown"))];
  if (k.file_kid && k.kid && k.file_kid !== k.kid) {
    lines.push(el("p", { class: "bad" }, "KEY FILE HOLDS " + k.file_kid + ", NOT THE KEY THE CHAIN NAMES"));
  }
  const r = k.rotation_request;
  if (r && r.state !== "sealed") {
    lines.push(el("p", { class: r.state === "failed" ? "bad" : "" }, "key rotation " + r.state +
      (r.error ? ": " + r.error : "")));
  }
  for (const old of k.old_keys_kept) {
    lines.push(el("p", { class: "muted" }, "old key " + old.kid + " kept until acknowledged by " +
      (old.owed_by.length ? old.owed_by.join(", ") : "(retiring)")));
  }
  const d = s.descriptor;
  lines.push(el("p", { id: "descriptor" }, d ? "station descriptor: seq " + d.seq +
    (d.sealed_at_ms ? ", sealed " + when(d.sealed_at_ms) : "") : "no station descriptor sealed yet"));
  const c = s.config;  // agent/status/config_state.py, as status shows it
  if (c) {
    lines.push(el("p", { id: "config" }, "configuration: " +
      (c.source === "remote" ? "remote version " + c.remote_version : "local file") +
      ", digest " + String(c.digest).slice(0, 12) +
      (c.file_digest && c.file_digest !== c.digest ? " (file on disk: " + c.file_digest.slice(0, 12) + ")" : "") +
      (c.pinned ? ", PINNED to the local file" : "")));
  }
  document.getElementById("signing").replaceChildren(...lines);
}

async function refresh() {
  try {
    const r = await fetch("/api/live", { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    const live = await r.json();
    ZONE = live.timezone || "UTC";
    document.getElementById("station").textContent =
      "Station " + live.station + (live.station_name ? " — " + live.station_name : "");
    document.getElementById("updated").textContent = "updated " + when(live.now_ms);
    document.getElementById("devices").replaceChildren(...live.devices.map(device));
    document.querySelector("#transports tbody")
      .replaceChildren(...live.transports.map((t) => transport(t, live.now_ms, live.actions)));
    document.getElementById("actions-box").hidden = !live.actions;
    clock(live.clock);
    maintenance(live.maintenance);
    signing(live.signing);
    const d = live.disk;
    document.getElementById("disk").textContent = "buffer " + bytes(d.buffer_bytes) + "; free " +
      bytes(d.free_bytes) + " of " + bytes(d.total_bytes) + " (" + d.path + ")";
    const problem = document.getElementById("problem");
    problem.hidden = !live.storage_error;
    problem.textContent = live.storage_error ? "BUFFER CANNOT STORE: " + live.storage_error : "";
  } catch (e) {
    document.getElementById("updated").textContent = "agent not reachable (" + e.message + ")";
  }
}

async function chart() {
  if (!chartChannel) return;
  const [dev, param, unit] = chartChannel;
  const q = new URLSearchParams({ device: dev, param: param, unit: unit });
  const data = await (await fetch("/api/chart?" + q, { cache: "no-store" })).json();
  document.getElementById("chart-box").hidden = false;
  document.getElementById("chart-title").textContent = "Last 24 h: " + dev + " " + param + " (" + unit + ")";
  const canvas = document.getElementById("chart");
  const g = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, pad = 40;
  g.clearRect(0, 0, W, H);
  const ys = data.points.map((p) => p[1]);
  const lo = ys.length ? Math.min(...ys) : 0, hi = ys.length ? Math.max(...ys) : 1;
  const span = hi - lo || 1;
  const x = (t) => pad + ((t - data.from_ms) / (data.to_ms - data.from_ms)) * (W - pad - 10);
  const y = (v) => H - pad / 2 - ((v - lo) / span) * (H - pad);
  g.strokeStyle = "#ccc"; g.fillStyle = "#666"; g.font = "12px sans-serif";
  g.fillText(value(hi), 2, y(hi) + 10);
  if (hi !== lo) g.fillText(value(lo), 2, y(lo));
  g.fillText("-24 h", pad, H - 4); g.fillText("now", W - 34, H - 4);
  g.strokeStyle = "#1b5fb3"; g.lineWidth = 2; g.beginPath();
  data.points.forEach((p, i) => {
    const gap = i && p[0] - data.points[i - 1][0] > 3 * data.slice_ms;  // no data: no line
    (i && !gap ? g.lineTo : g.moveTo).call(g, x(p[0]), y(p[1]));
  });
  g.stroke();
  g.fillStyle = "#1b5fb3";
  if (data.points.length < 50) for (const p of data.points) g.fillRect(x(p[0]) - 2, y(p[1]) - 2, 4, 4);
  g.fillStyle = "#b3261e";
  for (const t of data.fault_ms) g.fillRect(x(t) - 1, H - pad / 2, 3, 6);
}

document.getElementById("token").value = sessionStorage.getItem("token") || "";
refresh();
setInterval(refresh, 2000);
setInterval(chart, 30000);
