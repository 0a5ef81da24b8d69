// The chat monitor page: a live feed of the server's event records over WebSocket, with
// filters, a stats panel and a chart of messages per second. No libraries, no build step.
"use strict";

const MAX_ROWS = 5000;          // rows kept in the page
const CHART_SECONDS = 300;      // the chart's window
const STATS_EVERY_MS = 2000;    // how often /stats is asked
const LONG_TEXT = 400;          // characters from which a text is shown folded to six lines
const MAX_TITLE = 2000;         // characters of a folded text in its tooltip

// The token comes from the page's own address; it is sent only back to this server (the
// feed's address, the Authorization header of /stats), and the server's
// Referrer-Policy: no-referrer keeps it out of any other request.
const token = new URLSearchParams(location.search).get("token") || "";

const $ = (id) => document.getElementById(id);
const feed = $("feed");
const tbody = $("events");
const stateEl = $("state");
const liveButton = $("live");

// ----- filters -----
const filters = { kinds: new Set(), nick: "", text: "" };
function readFilters() {
  filters.kinds = new Set([...document.querySelectorAll("#kinds input:checked")].map((i) => i.value));
  filters.nick = $("nick-filter").value.trim().toLowerCase();
  filters.text = $("text-filter").value.trim().toLowerCase();
}
function visible(row) {
  if (row.dataset.group === "gap") return true;
  const r = row.record;
  if (!filters.kinds.has(row.dataset.group)) return false;
  if (filters.nick && !row.nicks.some((n) => n.toLowerCase().includes(filters.nick))) return false;
  if (filters.text && !row.textContent.toLowerCase().includes(filters.text)) return false;
  return r !== undefined;
}
function applyFilters() {
  readFilters();
  for (const row of tbody.rows) row.hidden = !visible(row);
  if (following) scrollToBottom();
}
$("filters").addEventListener("input", applyFilters);
readFilters();

// ----- auto-scroll: follows the newest rows unless the user scrolled up -----
let following = true;
function atBottom() { return feed.scrollHeight - feed.scrollTop - feed.clientHeight < 40; }
function scrollToBottom() { feed.scrollTop = feed.scrollHeight; }
feed.addEventListener("scroll", () => {
  following = atBottom();
  if (following) liveButton.hidden = true;
});
liveButton.addEventListener("click", () => { following = true; liveButton.hidden = true; scrollToBottom(); });

// A folded text opens (and closes) with a click; selecting text in it does not toggle it.
tbody.addEventListener("click", (e) => {
  const div = e.target.closest("td.text div.long");
  if (div && !String(getSelection())) div.classList.toggle("open");
});

// ----- rendering one record -----
function fmtTime(ts) {
  const d = new Date(ts);
  return isNaN(d) ? ts : d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}
function fmtSize(n) {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return i ? `${n.toFixed(1)} ${units[i]}` : `${n} B`;
}
function describe(r) {
  // [group, kind label, from, to, text, nicks, css class]
  switch (r.kind) {
    case "message":
      if (r.to && r.to.length) {
        return ["private", "private", r.from, "→ " + r.to.join(", "), r.action ? `* ${r.from} ${r.text}` : r.text, [r.from, ...r.to], "private"];
      }
      return ["message", "message", r.from, "#" + (r.room || ""), r.action ? `* ${r.from} ${r.text}` : r.text, [r.from], ""];
    case "join":
      return ["join", "join", r.nick, "", `${r.relayed ? "relayed guest " : ""}from ${r.addr} (${r.client})`, [r.nick], "system"];
    case "leave":
      return ["leave", "leave", r.nick, "", r.message ? `quit: ${r.message}` : "quit", [r.nick], "system"];
    case "nick_changed":
      return ["nick_changed", "rename", r.requested, r.nick, `${r.requested} → ${r.nick} (${r.reason})`, [r.requested, r.nick], "system"];
    case "disconnect":
      return ["disconnect", "disconnect", r.nick, "", `${r.reason}${r.message ? ": " + r.message : ""} (${r.addr})`, [r.nick], "problem"];
    case "rejected":
      return ["rejected", "refused", r.nick || "", "", `${r.reason} (${r.addr})`, r.nick ? [r.nick] : [], "problem"];
    case "rate_limited":
      return ["rate_limited", "rate-limited", r.nick, "", `muted for ${(r.retry_after_ms / 1000).toFixed(1)} s (${r.addr})`, [r.nick], "problem"];
    case "stats":
      return ["stats", "stats", "", "", `${r.clients_now} online, ${r.messages_in} messages, ${r.deliveries} deliveries`, [], "system"];
    case "room_join":
      return ["join", "join", r.nick, "#" + r.room, `entered #${r.room}`, [r.nick], "system"];
    case "room_part":
      return ["leave", "part", r.nick, "#" + r.room, `left #${r.room}`, [r.nick], "system"];
    case "topic":
      return ["message", "topic", r.nick, "#" + r.room, r.topic ? `topic: ${r.topic}` : "topic cleared", [r.nick], "system"];
    case "account":
      return ["join", "account", r.nick, "", r.change, [r.nick], "system"];
    case "moderation": {
      const what = r.action.replace("_", " ");
      const where = r.room ? ` in #${r.room}` : (r.action === "kick" ? " off the server" : "");
      const until = r.until ? ` until ${fmtTime(r.until)}` : "";
      const why = r.reason ? ` (${r.reason})` : "";
      return ["moderation", what, r.by, r.target, `${what} ${r.target}${where}${until}${why}`, [r.by, r.target], "problem"];
    }
    case "deleted":
      if (!r.by) {
        // An expiring message, deleted by the server when it expired.
        return ["message", "expired", r.from, r.room ? "#" + r.room : "private", `message ${r.id} from ${r.from} expired`, [r.from], "system"];
      }
      return ["moderation", "delete", r.by, r.room ? "#" + r.room : "private", `deleted message ${r.id} from ${r.from}`, [r.by, r.from], "problem"];
    case "edited":
      return ["message", "edit", r.by, r.room ? "#" + r.room : "private", `message ${r.id}${r.by === r.from ? "" : " from " + r.from} now reads: ${r.text}`, [r.by, r.from], r.room ? "" : "private"];
    case "reacted":
      return ["message", "reaction", r.by, r.room ? "#" + r.room : "private", `${r.added ? "reacted" : "took back"} ${r.emoji} ${r.added ? "to" : "on"} message ${r.id} from ${r.from}`, [r.by, r.from], r.room ? "" : "private"];
    case "renamed":
      return ["nick_changed", "rename", r.old, r.new, `${r.old} is now ${r.new}`, [r.old, r.new], "system"];
    case "away":
      return ["join", "away", r.nick, "", r.message ? `away: ${r.message}` : "back", [r.nick], "system"];
    case "file": {
      // Names, sizes and hashes only: the server never sees a file's content.
      const what = `${r.name} (${fmtSize(r.size)}, sha256 ${r.sha256.slice(0, 16)}…)`;
      const how = { offer: "offered", done: "received and verified", cancelled: `cancelled ${r.reason || ""}` }[r.action] || r.action;
      return ["file", "file", r.from, "→ " + r.to, `${how}: ${what}`, [r.from, r.to], r.action === "cancelled" || r.action === "declined" ? "problem" : "private"];
    }
    default:
      return ["stats", r.kind, "", "", JSON.stringify(r), [], "system"];
  }
}
// Bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069) shown as U+FFFD, as the
// terminal clients show them: a message cannot reverse how its own text reads.
const BIDI = /[\u202A-\u202E\u2066-\u2069]/g;
function shown(v) { return String(v).replace(BIDI, "\uFFFD"); }
function addRecord(r) {
  const [group, label, ...rest] = describe(r);
  const [from, to, text] = rest.slice(0, 3).map(shown);
  const [nicks, cls] = rest.slice(3);
  const row = tbody.insertRow();
  row.record = r;
  row.nicks = nicks;
  row.dataset.group = group;
  row.dataset.seq = r.seq;
  if (cls) row.className = cls;
  for (const [c, v] of [["time", fmtTime(r.ts)], ["kind", label], ["from", from], ["to", to]]) {
    const cell = row.insertCell();
    cell.className = c;
    cell.textContent = v; // never innerHTML: the text comes from chat users
    if (c !== "time" && v) cell.title = v; // whole, where the cell cuts it short
  }
  const cell = row.insertCell();
  cell.className = "text";
  const div = cell.appendChild(document.createElement("div"));
  div.textContent = text;
  if (text.length > LONG_TEXT || text.split("\n").length > 6) {
    div.className = "long"; // six lines shown; a click shows the rest
    cell.title = text.length > MAX_TITLE ? text.slice(0, MAX_TITLE) + "…" : text;
  }
  row.hidden = !visible(row);
  while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(0);
  if (r.kind === "message") countMessage(r.ts);
}

function addGap(missed) {
  const row = tbody.insertRow();
  row.className = "gap";
  row.dataset.group = "gap";
  row.nicks = [];
  const cell = row.insertCell();
  cell.colSpan = 5;
  cell.textContent = `— ${missed} record(s) missed while disconnected —`;
}

// ----- the feed, with automatic reconnection -----
let lastSeq = 0, lastTs = "";
let retry = 1000;
let refused = false; // the server no longer accepts this page's token: nothing is retried
function setState(cls, text) { stateEl.className = "state " + cls; stateEl.textContent = text; }
function tokenRefused() {
  refused = true;
  setState("down", "the token was refused: open the new link from the server's console");
}
// The numbers of the moment; also how the page learns whether its token is still accepted.
function askStats() {
  return fetch("stats", { cache: "no-store", headers: { Authorization: `Bearer ${token}` } });
}
// A WebSocket that fails does not say why; /stats does (401 for a token it does not know).
async function tokenStillAccepted() {
  try {
    const res = await askStats();
    return res.status !== 401;
  } catch (e) { return true; } // the server is away: try again later
}
function connect() {
  if (!token) { setState("down", "no token: open the URL chat-server printed"); return; }
  if (refused) return;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/ws?token=${encodeURIComponent(token)}`);
  setState("connecting", "connecting…");
  let fresh = true; // the first record of this connection
  ws.onopen = () => { setState("live", "live"); retry = 1000; };
  ws.onmessage = (m) => {
    let r;
    try { r = JSON.parse(m.data); } catch { return; }
    // After a reconnect the backlog repeats what is already shown; a restarted server counts
    // from 1 again, recognisable by its later timestamps.
    if (r.seq <= lastSeq && r.ts <= lastTs) return;
    if (fresh && lastSeq && r.seq > lastSeq + 1 && r.ts >= lastTs) addGap(r.seq - lastSeq - 1);
    fresh = false;
    lastSeq = r.seq; lastTs = r.ts;
    const follow = following;
    addRecord(r);
    if (follow) scrollToBottom(); else liveButton.hidden = false;
  };
  ws.onclose = async (e) => {
    if (!(await tokenStillAccepted())) { tokenRefused(); return; }
    const why = e.reason ? ` (${e.reason})` : "";
    setState("down", `disconnected${why} — reconnecting in ${Math.round(retry / 1000)} s`);
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 30000);
  };
}
connect();

// ----- stats and the chart -----
const perSecond = new Map(); // unix second -> messages seen in the feed
function countMessage(ts) {
  const s = Math.floor(new Date(ts).getTime() / 1000);
  perSecond.set(s, (perSecond.get(s) || 0) + 1);
}
let lastTotal = null, lastTime = null;
async function pollStats() {
  if (refused) return;
  try {
    const res = await askStats();
    if (res.status === 401) { tokenRefused(); return; }
    if (!res.ok) throw new Error(res.status);
    const s = await res.json();
    const now = Date.now();
    if (lastTotal !== null && now > lastTime) {
      $("s-rate").textContent = ((s.messages_in - lastTotal) * 1000 / (now - lastTime)).toFixed(1);
    }
    lastTotal = s.messages_in; lastTime = now;
    $("s-clients").textContent = s.clients_now;
    $("s-messages").textContent = s.messages_in;
    $("s-deliveries").textContent = s.deliveries;
    $("s-limited").textContent = s.rate_limited;
    $("s-connections").textContent = s.connections_total;
    $("s-viewers").textContent = s.monitor_viewers;
  } catch (e) { /* the feed's state already says when the server is away */ }
}
function drawChart() {
  const canvas = $("chart");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  const now = Math.floor(Date.now() / 1000);
  const values = [];
  for (let s = now - CHART_SECONDS + 1; s <= now; s++) values.push(perSecond.get(s) || 0);
  for (const s of perSecond.keys()) if (s < now - CHART_SECONDS) perSecond.delete(s);
  const max = Math.max(1, ...values);
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#e2e2e6"; ctx.beginPath();
  for (let i = 1; i < 4; i++) { const y = Math.round(h * i / 4) + .5; ctx.moveTo(0, y); ctx.lineTo(w, y); }
  ctx.stroke();
  ctx.fillStyle = "rgba(43, 95, 217, .15)"; ctx.strokeStyle = "#2b5fd9"; ctx.lineWidth = 1.5;
  ctx.beginPath(); ctx.moveTo(0, h);
  values.forEach((v, i) => ctx.lineTo(i * w / (values.length - 1), h - 4 - (v / max) * (h - 18)));
  ctx.lineTo(w, h); ctx.closePath(); ctx.fill();
  ctx.beginPath();
  values.forEach((v, i) => { const x = i * w / (values.length - 1), y = h - 4 - (v / max) * (h - 18); i ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
  ctx.stroke();
  ctx.fillStyle = "#6b6b70"; ctx.font = "11px system-ui, sans-serif";
  ctx.fillText(`max ${max}/s`, 4, 12);
}
pollStats(); drawChart();
setInterval(pollStats, STATS_EVERY_MS);
setInterval(drawChart, 1000);
