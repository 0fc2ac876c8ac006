// funding-arb dashboard: plain JS, no build step. Data from the bot's JSON API; live updates
// from /api/stream (server-sent events). Auth is the HttpOnly cookie set by /?token=...
"use strict";

const $ = (sel) => document.querySelector(sel);
const MAX_EVENTS = 200;
const HEADERS = { "X-Requested-With": "funding-arb", "Content-Type": "application/json" };

function text(el, value) { el.textContent = value; }
function money(v) {
  if (v === null || v === undefined) return "–";
  const n = Number(v);
  return (n < 0 ? "-$" : "$") + Math.abs(n).toFixed(2);
}
function signClass(v) { return v === null || v === undefined ? "" : (Number(v) < 0 ? "neg" : "pos"); }
function cell(row, value, cls) {
  const td = document.createElement("td");
  td.textContent = value === null || value === undefined ? "–" : String(value);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}
async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  if (response.status === 401) {
    text($("#live"), "not authorised: open the URL printed at start-up (…/?token=…)");
    $("#live").className = "pill bad";
    throw new Error("unauthorised");
  }
  if (!response.ok) throw new Error(path + ": HTTP " + response.status);
  return response.json();
}

// ------------------------------------------------------------------ status
function renderStatus(s) {
  text($("#bot-state"), "bot: " + s.bot_state);
  text($("#trading-state"), "trading: " + s.trading_state);
  $("#trading-state").className = "pill " + (s.trading_state === "active" ? "ok" : "bad");
  text($("#clock"), s.now.slice(0, 19).replace("T", " ") + "Z");
  text($("#open-count"), s.open_positions + " / " + s.max_positions);
  text($("#funding"), money(s.funding_usd));
  text($("#fees"), money(s.fees_usd));
  text($("#net"), money(s.net_usd));
  $("#net").className = "value " + signClass(s.net_usd);
  const breakers = $("#breakers tbody");
  breakers.replaceChildren();
  for (const b of s.breakers) {
    const row = document.createElement("tr");
    cell(row, b.name);
    cell(row, b.state, b.state === "closed" ? "pos" : "neg");
    cell(row, b.reason);
    breakers.appendChild(row);
  }
  const venues = $("#venues tbody");
  venues.replaceChildren();
  for (const v of s.venues) {
    const row = document.createElement("tr");
    cell(row, v.venue);
    cell(row, v.healthy ? "ok" : v.open_breakers.join("; "), v.healthy ? "pos" : "neg");
    cell(row, v.data_age_seconds === null ? "never" : v.data_age_seconds.toFixed(0) + " s", "num");
    venues.appendChild(row);
  }
}

// ------------------------------------------------------------------ positions
function legText(leg) { return leg.venue + " " + leg.size_base; }
async function loadPositions() {
  const data = await api("/api/positions");
  const open = $("#open-positions tbody");
  const closed = $("#closed-positions tbody");
  open.replaceChildren();
  closed.replaceChildren();
  let openCount = 0;
  for (const p of data.positions) {
    const row = document.createElement("tr");
    row.className = "clickable";
    row.dataset.id = p.id;
    row.addEventListener("click", () => showPostmortem(p.id));
    if (p.state !== "closed") {
      openCount += 1;
      cell(row, p.id); cell(row, p.symbol); cell(row, legText(p.legs[0])); cell(row, legText(p.legs[1]));
      cell(row, p.legs[0].size_base, "num"); cell(row, p.state);
      cell(row, p.opened_at ? p.opened_at.slice(0, 16).replace("T", " ") : "–");
      cell(row, money(p.funding_usd), "num"); cell(row, money(p.fees_usd), "num");
      cell(row, money(p.pnl_usd), "num " + signClass(p.pnl_usd));
      open.appendChild(row);
    } else {
      cell(row, p.id); cell(row, p.symbol); cell(row, p.legs[0].venue); cell(row, p.legs[1].venue);
      cell(row, p.closed_at ? p.closed_at.slice(0, 16).replace("T", " ") : "–"); cell(row, p.exit_reason);
      cell(row, money(p.funding_usd), "num"); cell(row, money(p.fees_usd), "num");
      cell(row, money(p.pnl_usd), "num " + signClass(p.pnl_usd));
      closed.appendChild(row);
    }
  }
  $("#no-open").hidden = openCount > 0;
}

async function showPostmortem(id) {
  const doc = await api("/api/positions/" + encodeURIComponent(id));
  text($("#pm-id"), id + " (" + doc.symbol + ", " + doc.state + ")");
  const list = $("#pm-timeline");
  list.replaceChildren();
  for (const e of doc.timeline) {
    const li = document.createElement("li");
    li.textContent = e.at.slice(0, 19) + "  " + e.kind.padEnd(10) + " " + e.summary;
    list.appendChild(li);
  }
  $("#postmortem").hidden = false;
}

// ------------------------------------------------------------------ chart (inline SVG)
const SVG = "http://www.w3.org/2000/svg";
function svgEl(name, attrs) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}
function drawChart(points) {
  const svg = $("#pnl-chart");
  svg.replaceChildren();
  const W = 800, H = 260, PAD = 34;
  if (points.length === 0) {
    const t = svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#8a949e" });
    t.textContent = "no money movements yet";
    svg.appendChild(t);
    return;
  }
  const series = { net: "#58a6ff", funding: "#3fb950", fees: "#f85149" };
  const xs = points.map((p) => p.ts_ms);
  const values = points.flatMap((p) => [Number(p.net_usd), Number(p.funding_usd), -Number(p.fees_usd)]);
  let lo = Math.min(0, ...values), hi = Math.max(0, ...values);
  if (hi - lo < 1e-9) { hi += 1; lo -= 1; }
  const x0 = xs[0], x1 = xs[xs.length - 1] === x0 ? x0 + 1 : xs[xs.length - 1];
  const X = (t) => PAD + (W - 2 * PAD) * (t - x0) / (x1 - x0);
  const Y = (v) => H - PAD - (H - 2 * PAD) * (v - lo) / (hi - lo);
  svg.appendChild(svgEl("line", { x1: PAD, x2: W - PAD, y1: Y(0), y2: Y(0), stroke: "#2a333d" }));
  for (const v of [lo, hi]) {
    const label = svgEl("text", { x: 2, y: Y(v) + 4, fill: "#8a949e", "font-size": "11" });
    label.textContent = money(v);
    svg.appendChild(label);
  }
  const pick = { net: (p) => Number(p.net_usd), funding: (p) => Number(p.funding_usd), fees: (p) => -Number(p.fees_usd) };
  for (const [name, color] of Object.entries(series)) {
    const d = points.map((p, i) => (i ? "L" : "M") + X(p.ts_ms).toFixed(1) + "," + Y(pick[name](p)).toFixed(1)).join(" ");
    svg.appendChild(svgEl("path", { d, fill: "none", stroke: color, "stroke-width": name === "net" ? 2.5 : 1.5,
      "data-series": name }));
  }
}
async function loadPnl() { drawChart((await api("/api/pnl")).points); }

// ------------------------------------------------------------------ events
function describe(e) {
  if (e.type === "transition") {
    return e.machine + " " + e.entity_id + ": " + e.source + " → " + e.dest + " [" + e.trigger + "] " + (e.reason || "");
  }
  return e.kind + ": " + e.message;
}
function addEvent(e) {
  const list = $("#events");
  const li = document.createElement("li");
  li.textContent = (e.at || "").slice(0, 19) + "  " + describe(e);
  li.className = "sev-" + (e.severity || "info");
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastChild.remove();
}

// ------------------------------------------------------------------ controls
function askConfirm(command) {
  const dialog = $("#confirm");
  const prompts = {
    halt: "Halt: no new entries; open positions stay managed (emergency exits only).",
    resume: "Resume: clear the manual halt; the bot may open positions again.",
    flatten: "Flatten: close EVERY position now (reason manual_flatten) and halt until resume.",
  };
  text($("#confirm-text"), prompts[command]);
  $("#confirm-reason").value = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}
async function sendControl(command) {
  if (!(await askConfirm(command))) return;
  const reason = $("#confirm-reason").value.trim() || ("manual " + command + " (web)");
  // The bot records the request as a control_* event, which arrives through the live stream.
  await api("/api/" + command, { method: "POST", headers: HEADERS, body: JSON.stringify({ reason }) });
}
for (const button of document.querySelectorAll(".controls button")) {
  button.addEventListener("click", () => sendControl(button.dataset.command).catch(console.error));
}
$("#pm-close").addEventListener("click", () => { $("#postmortem").hidden = true; });

// ------------------------------------------------------------------ live updates
let refreshPending = false;
function refreshSoon() {
  if (refreshPending) return;
  refreshPending = true;
  setTimeout(() => { refreshPending = false; loadPositions().catch(console.error); loadPnl().catch(console.error); }, 300);
}
function connect() {
  const source = new EventSource("/api/stream");
  source.addEventListener("open", () => { text($("#live"), "live"); $("#live").className = "pill ok"; });
  source.addEventListener("error", () => { text($("#live"), "reconnecting…"); $("#live").className = "pill warn"; });
  source.addEventListener("status", (m) => renderStatus(JSON.parse(m.data)));
  source.addEventListener("journal", (m) => {
    const e = JSON.parse(m.data);
    addEvent(e);
    if (e.type === "transition" || e.kind === "funding") refreshSoon();
  });
}
async function start() {
  renderStatus(await api("/api/status"));
  const history = await api("/api/events?limit=" + MAX_EVENTS);
  for (const e of history.events) addEvent(e);
  await Promise.all([loadPositions(), loadPnl()]);
  document.body.dataset.loaded = "true";
  connect();
  setInterval(() => { loadPositions().catch(console.error); loadPnl().catch(console.error); }, 5000);
}
start().catch(console.error);
