// DOM builders for the wallboard's tiles. Pure: data in, elements out.
//
// Every value from the feed is free text as far as this module is concerned
// (ticket.summary comes straight from callers), so it only ever reaches the
// page as a text node or an attribute value: `el` below is the one way tiles
// are built, and nothing here assigns innerHTML.

const STATE_LABELS = {
  ivr: "语音导航", queued: "排队中", ringing: "振铃中", talking: "通话中",
  held: "保持中", transferring: "转接中", conference: "三方通话",
};
const ROLE_LABELS = { caller: "市民", agent: "坐席", trunk: "中继", desk: "应急专线", local: "本地" };
const LEG_STATE_LABELS = { down: "未接通", dialing: "呼叫中", ringing: "振铃", up: "通话" };
const AGENT_STATUS_LABELS = {
  free: "空闲", busy: "忙碌", ringing: "振铃", paused: "小休",
  unavailable: "不可用", logged_out: "未签入",
};
const TRANSFER_KINDS = { blind_transfer: "一键转接", warm_transfer: "咨询转接" };
const SPY_MODES = [["listen", "监听"], ["whisper", "耳语"], ["barge", "强插"]];
const DEFAULT_SERVICE_LEVEL_S = 15;

/** An element with attributes (`class`, `data-*`, …) and children (strings become text). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, String(value));
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== ""));
  return node;
}

/** A running timer; `tick` rewrites its text from the server clock. */
function timer(since) {
  return since ? el("span", { class: "timer", "data-since": since }, "--:--") : "—";
}

function formatDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const two = (n) => String(n).padStart(2, "0");
  const hms = [Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60];
  return hms[0] ? `${hms[0]}:${two(hms[1])}:${two(hms[2])}` : `${two(hms[1])}:${two(hms[2])}`;
}

function field(label, value, name) {
  return el("div", { class: "field", "data-field": name },
    el("span", { class: "label" }, label), el("span", { class: "value" }, value || "—"));
}

/** Who a leg is, in a word: the agent, else the number, else the channel. */
export function party(leg) {
  // Asterisk says "<unknown>" for a leg with no caller id (a trunk's, a desk's).
  const number = leg.caller_num === "<unknown>" ? "" : leg.caller_num;
  return leg.agent || number || leg.channel;
}

function legRow(call, leg, actions) {
  const hangup = el("button", { type: "button", class: "danger", "data-action": "hangup" }, "挂断");
  hangup.addEventListener("click", () => actions.onHangup(call, leg));
  return el("li", { class: `leg role-${leg.role}`, "data-leg-id": leg.leg_id },
    el("span", { class: "role" }, ROLE_LABELS[leg.role] || leg.role),
    el("span", { class: "party" }, party(leg)),
    el("span", { class: "leg-state" }, LEG_STATE_LABELS[leg.state] || leg.state,
      leg.held ? "·保持" : ""),
    hangup);
}

function transferBlock(transfer) {
  return el("div", { class: "transfer", "data-field": "transfer" },
    el("span", { class: "label" }, "转接中"),
    ` ${TRANSFER_KINDS[transfer.kind] || transfer.kind} → ${transfer.destination} (${transfer.status}) `,
    timer(transfer.initiated_at));
}

function conferenceBlock(call) {
  const byId = new Map(call.legs.map((leg) => [leg.leg_id, leg]));
  const members = call.conference.members.map((id) => {
    const leg = byId.get(id);
    return el("li", {}, leg ? `${ROLE_LABELS[leg.role] || leg.role} ${party(leg)}` : id);
  });
  return el("div", { class: "conference", "data-field": "conference" },
    el("span", { class: "label" }, "三方通话"), " ", timer(call.conference.started_at),
    el("ul", { class: "members" }, members));
}

/**
 * One call's tile. `serviceLevelS` is its queue's level (for the 超时 mark);
 * `actions` has onSpy(call, mode, label) and onHangup(call, leg).
 */
export function callTile(call, { serviceLevelS = DEFAULT_SERVICE_LEVEL_S, actions } = {}) {
  const ticket = call.ticket || {};
  const hasAgent = call.legs.some((leg) => leg.role === "agent");
  const spyButtons = SPY_MODES.map(([mode, label]) => {
    const button = el("button", { type: "button", "data-action": mode, disabled: !hasAgent }, label);
    button.addEventListener("click", () => actions.onSpy(call, mode, label));
    return button;
  });
  // Only a call still in a queue can breach its wait; `tick` sets the class.
  const waiting = call.queue && call.waiting_since;
  return el("article", {
    class: `call state-${call.state}`, "data-call-id": call.call_id,
    "data-waiting-since": waiting ? call.waiting_since : null, "data-sl": serviceLevelS,
  },
  el("header", {},
    el("span", { class: "state", "data-field": "state", "data-state": call.state },
      STATE_LABELS[call.state] || call.state),
    el("span", { class: "breach-label" }, "超时"),
    el("span", { class: "ticket-id" }, ticket.id || call.call_id),
    call.origin !== call.platform ? el("span", { class: "origin" }, `首接 ${call.origin}`) : null,
    timer(call.started_at)),
  el("div", { class: "fields" },
    field("类别", ticket.category, "category"),
    field("回拨号码", ticket.callback, "callback"),
    field("行政区划", ticket.division, "division"),
    field("紧急程度", ticket.urgency, "urgency"),
    field("诉求摘要", ticket.summary, "summary")),
  waiting ? el("div", { class: "waiting" }, `队列 ${call.queue} 等待 `, timer(call.waiting_since)) : null,
  call.transfer ? transferBlock(call.transfer) : null,
  call.conference ? conferenceBlock(call) : null,
  el("ul", { class: "legs" }, call.legs.map((leg) => legRow(call, leg, actions))),
  el("footer", { class: "actions" }, spyButtons));
}

/** A row of the 转接中 panel. */
export function transferRow(call) {
  const t = call.transfer;
  return el("li", { "data-call-id": call.call_id },
    `${(call.ticket || {}).id || call.call_id} ${TRANSFER_KINDS[t.kind] || t.kind} → ${t.destination} `,
    timer(t.initiated_at));
}

/** A row of the 三方通话 panel: the conference and its parties. */
export function conferenceRow(call) {
  return el("li", { "data-call-id": call.call_id },
    `${(call.ticket || {}).id || call.call_id} `, conferenceBlock(call));
}

function percent(ratio) {
  return ratio === null || ratio === undefined ? "—" : `${(ratio * 100).toFixed(1)}%`;
}

export function queueTile(queue) {
  const a = queue.agents;
  const t = queue.today;
  return el("article", {
    class: "queue", "data-queue": queue.name,
    "data-waiting-since": queue.oldest_waiting_since, "data-sl": queue.service_level_s,
  },
  el("header", {}, el("span", { class: "name" }, `队列 ${queue.name}`),
    el("span", { class: "breach-label" }, "超时")),
  el("div", { class: "fields" },
    field("等待", String(queue.waiting), "waiting"),
    el("div", { class: "field", "data-field": "longest" },
      el("span", { class: "label" }, "最长等待"), el("span", { class: "value" },
        timer(queue.oldest_waiting_since))),
    field("坐席 签入/忙/闲", `${a.logged_in} / ${a.busy} / ${a.free}`, "agents"),
    field(`今日 ${queue.service_level_s}秒内接通`, `${t.answered_within_sl} / ${t.answered}`, "within"),
    field("服务水平", percent(t.service_level), "service-level"),
    field("放弃", String(t.abandoned), "abandoned")));
}

/** An agent tile; `pop` is the screen-pop of the call ringing or on it, if any. */
export function agentTile(agent, pop) {
  const ticket = pop && pop.ticket;
  return el("article", { class: `agent status-${agent.status}`, "data-agent": agent.agent },
    el("span", { class: "name" }, agent.agent),
    el("span", { class: "status" }, AGENT_STATUS_LABELS[agent.status] || agent.status,
      agent.paused_reason ? ` (${agent.paused_reason})` : ""),
    ticket ? el("span", { class: "pop" }, `来电 ${ticket.id} ${ticket.category || ""}`) : null);
}

/** Rewrite every running timer and the 超时 marks from the server's clock `now`. */
export function tick(root, now) {
  for (const node of root.querySelectorAll(".timer[data-since]")) {
    node.textContent = formatDuration(now - Number(node.dataset.since));
  }
  for (const tile of root.querySelectorAll("[data-sl]")) {
    const since = Number(tile.dataset.waitingSince);
    tile.classList.toggle("breach", since > 0 && now - since > Number(tile.dataset.sl));
  }
}
