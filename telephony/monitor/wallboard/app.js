// The supervisor wallboard: the token, the board's state from the feed, and
// the spy / hang-up buttons (the control API). Tiles come from render.js, the
// connection from feed.js; the message schema is docs/monitor.md.

import { Feed } from "./feed.js";
import { agentTile, callTile, conferenceRow, el, party, queueTile, tick, transferRow } from "./render.js";

const TOKEN_KEY = "hotline.wallboard.token";
const API = "/api/v1";
const CONN_LABELS = {
  connecting: "连接中", live: "实时", retrying: "连接中断，重连中", unauthorized: "令牌无效",
};

const $ = (selector) => document.querySelector(selector);

const board = {
  calls: new Map(), queues: new Map(), agents: new Map(),
  pops: new Map(), // agent -> its latest screen_pop message
  tiles: new Map(), // call_id -> its tile
  offset: 0, // client clock minus the server's, in seconds (from the snapshot's `now`)
  synced: false, // a snapshot arrived: the board shows the server's state
};
let token = null;
let feed = null;

const serverNow = () => Date.now() / 1000 - board.offset;

// -- token ---------------------------------------------------------------------
function takeToken() {
  const fromUrl = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    // Out of the address bar (and history, screenshots) once it is kept.
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

/** False only when the server says 401; an unreachable server is not a bad token. */
async function tokenAccepted() {
  try {
    const resp = await fetch(`${API}/queues`, { headers: { Authorization: `Bearer ${token}` } });
    return resp.status !== 401;
  } catch {
    return true;
  }
}

function showLogin(error) {
  sessionStorage.removeItem(TOKEN_KEY);
  $("#board").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = error;
}

// -- connection ----------------------------------------------------------------
function setConn(feedState, transport) {
  const state = feedState === "open" ? (board.synced ? "live" : "connecting") : feedState;
  const conn = $("#conn");
  conn.dataset.state = state;
  conn.dataset.transport = transport;
  const via = transport === "ws" ? "WebSocket" : "SSE";
  conn.textContent = state === "live" ? `${CONN_LABELS.live} (${via})` : CONN_LABELS[state];
  // What is on screen is only as fresh as the last message while the feed is down.
  document.body.classList.toggle("stale", state !== "live");
  if (state === "unauthorized") showLogin("令牌无效或已过期，请重新输入");
}

function onMessage(msg) {
  switch (msg.type) {
    case "snapshot": applySnapshot(msg); break;
    case "call":
      if (msg.op === "remove") removeCall(msg.call_id);
      else upsertCall(msg.call);
      renderPanels();
      break;
    case "queue": upsertQueue(msg.queue); break;
    case "agent": upsertAgent(msg.agent); break;
    case "screen_pop":
      board.pops.set(msg.agent, msg);
      if (board.agents.has(msg.agent)) upsertAgent(board.agents.get(msg.agent));
      break;
    case "reset": // the service restarted under us: what we hold may be stale
      board.synced = false;
      feed.restart();
      return;
    default: return; // a newer schema's message: not ours to show
  }
  tick(document.body, serverNow());
}

// -- state and rendering --------------------------------------------------------
function applySnapshot(msg) {
  board.offset = Date.now() / 1000 - msg.now;
  $("#platform").textContent = msg.platform;
  for (const key of ["calls", "queues", "agents", "pops", "tiles"]) board[key].clear();
  $("#calls").replaceChildren(platformSection(msg.platform));
  $("#queues .tiles").replaceChildren();
  $("#agents .tiles").replaceChildren();
  msg.queues.forEach(upsertQueue);
  msg.calls.forEach(upsertCall);
  msg.agents.forEach(upsertAgent);
  renderPanels();
  board.synced = true;
  setConn("open", feed.transport);
}

function platformSection(platform) {
  return el("section", { class: "platform", "data-platform": platform },
    el("h2", {}, `${platform} 在线通话 `, el("span", { class: "count" }, "0")),
    el("div", { class: "tiles" }));
}

function platformTiles(platform) {
  let section = $(`#calls [data-platform="${CSS.escape(platform)}"]`);
  if (!section) section = $("#calls").appendChild(platformSection(platform));
  return section.querySelector(".tiles");
}

const callPath = (call) => `${API}/calls/${encodeURIComponent(call.call_id)}`;
const actions = {
  onSpy: (call, mode, label) => post(`${callPath(call)}/spy`, { mode }, `${label} ${ticketOf(call)}`),
  onHangup: (call, leg) => {
    // Hanging up a citizen cannot be undone: ask first.
    if (!confirm(`挂断 ${party(leg)}？`)) return;
    post(`${callPath(call)}/legs/${encodeURIComponent(leg.leg_id)}/hangup`, {}, `挂断 ${party(leg)}`);
  },
};

function upsertCall(call) {
  board.calls.set(call.call_id, call);
  const serviceLevelS = board.queues.get(call.queue || call.home_queue)?.service_level_s;
  const tile = callTile(call, { serviceLevelS, actions });
  const old = board.tiles.get(call.call_id);
  if (old) {
    old.replaceWith(tile);
  } else { // oldest first, like the read API
    const tiles = platformTiles(call.platform);
    const later = [...tiles.children].find(
      (t) => board.calls.get(t.dataset.callId).started_at > call.started_at);
    tiles.insertBefore(tile, later || null);
  }
  board.tiles.set(call.call_id, tile);
}

function removeCall(callId) {
  board.tiles.get(callId)?.remove();
  board.tiles.delete(callId);
  board.calls.delete(callId);
}

function renderPanels() {
  const calls = [...board.calls.values()];
  $("#transfers .rows").replaceChildren(...calls.filter((c) => c.transfer).map(transferRow));
  $("#conferences .rows").replaceChildren(...calls.filter((c) => c.conference).map(conferenceRow));
  for (const section of document.querySelectorAll("#calls .platform")) {
    const count = section.querySelector(".tiles").children.length;
    section.querySelector(".count").textContent = String(count);
  }
}

/** Replace (or add, in name order) the tile keyed `attr`=`key` in `container`. */
function place(container, attr, key, tile) {
  const tiles = [...container.children];
  const old = tiles.find((t) => t.getAttribute(attr) === key);
  if (old) old.replaceWith(tile);
  else container.insertBefore(tile, tiles.find((t) => t.getAttribute(attr) > key) || null);
}

function upsertQueue(queue) {
  board.queues.set(queue.name, queue);
  place($("#queues .tiles"), "data-queue", queue.name, queueTile(queue));
}

function upsertAgent(agent) {
  board.agents.set(agent.agent, agent);
  // A screen-pop shows while its call is the agent's call; then it is spent.
  const pop = board.pops.get(agent.agent);
  const current = pop && agent.call_id === pop.call.call_id ? pop : null;
  if (!current) board.pops.delete(agent.agent);
  place($("#agents .tiles"), "data-agent", agent.agent, agentTile(agent, current));
}

// -- control API -----------------------------------------------------------------
function ticketOf(call) {
  return (call.ticket && call.ticket.id) || call.call_id;
}

function status(text, kind) {
  const line = $("#status");
  line.textContent = text;
  line.dataset.kind = kind;
}

async function post(path, body, what) {
  status(`${what}：请求中…`, "pending");
  try {
    const resp = await fetch(path, {
      method: "POST", body: JSON.stringify(body),
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    });
    const data = await resp.json().catch(() => ({}));
    if (resp.ok) {
      status(`${what}：已受理 ${data.op_id || ""} ${data.state || ""}`, "ok");
    } else {
      const error = data.error || {};
      status(`${what}：失败 ${error.code || resp.status} ${error.message || ""}`, "error");
    }
  } catch (err) {
    status(`${what}：失败 ${err.message}`, "error");
  }
}

// -- start -----------------------------------------------------------------------
function start() {
  $("#login").hidden = true;
  $("#board").hidden = false;
  feed = new Feed({ path: `${API}/monitor`, token, onMessage, onState: setConn,
    checkToken: tokenAccepted });
  feed.start();
}

setInterval(() => {
  const now = serverNow();
  $("#clock").textContent = new Date(now * 1000).toLocaleTimeString("zh-CN", { hour12: false });
  tick(document.body, now);
}, 1000);

$("#login").addEventListener("submit", (event) => {
  event.preventDefault();
  token = new FormData(event.target).get("token").trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  start();
});

token = takeToken();
if (token) start();
else showLogin("");
