// Live call cards. A card is built once per call; each websocket message updates only its status and
// facts, so the forms (and whatever the manager typed or opened in them) live through
// ringing → answered → ended.
import { callActions } from "./actions.js";
import { api, callUrl } from "./api.js";
import { $, el, setText } from "./dom.js";
import { fmtClock, fmtDateTime, fmtDuration, fmtMoney, fmtMonth, fmtTime, t } from "./i18n.js";
import { timeline } from "./party.js";
import { formatPhone, phone } from "./phone.js";
import { resultPicker } from "./results.js";
import * as words from "./words.js";

const FADE_MS = 15000;
const cards = new Map(); // call_id -> entry
let skewMs = 0; // the server's clock minus this browser's (from the hello)
let me = null;
let box = null;

export function mountCards(container, manager) {
  box = container;
  me = manager;
  if (!box.querySelector(".popups-hint")) {
    // Shown on a desk while no phone rings, so the empty column says what it is for.
    box.append(el("p", { className: "popups-hint", testid: "popups-hint", i18n: "page.popups.hint" }));
  }
  box.addEventListener("keydown", (ev) => {
    if (ev.key !== "Escape") return;
    const node = ev.target.closest(".card");
    if (node) { ev.preventDefault(); closeCard(node.dataset.callId, true); }
  });
}

export function clearCards() {
  for (const id of [...cards.keys()]) removeCard(id);
}

export function handleMessage(msg) {
  switch (msg.type) {
    case "hello": resync(msg); break;
    case "call.ringing": upsert(msg, "ringing"); break;
    case "call.answered": upsert(msg, msg.by_me ? "mine" : "lost"); break;
    case "call.ring_stopped": upsert(msg, "stopped"); break;
    case "call.ended": upsert(msg, "ended"); break;
    case "call.card": {
      // The CRM facts arrive after the popup when the store was slow.
      const entry = cards.get(msg.call_id);
      if (entry && msg.card) { entry.card = msg.card; update(entry); }
      break;
    }
    case "call.result": {
      // Picked in another tab of ours (or this one): every card of the call shows it.
      const entry = cards.get(msg.call_id);
      if (entry) { entry.resultRead = true; entry.result.set(msg.result); }
      break;
    }
    default: break;
  }
}

// A fresh connection (first, or after a restart, a drop or a sleep): the server resends every call live
// for us right after the hello, which lists them. Cards of calls still live are kept as they are (what the
// manager typed stays; the resent messages only update them); a card whose call ended meanwhile is closed,
// unless the manager was writing in it — then it is shown ended, with the stored call's outcome (or kept as
// it is while the store says the call goes on).
function resync(hello) {
  if (hello.now) skewMs = Date.parse(hello.now) - Date.now();
  const live = new Set(hello.live || []);
  for (const [id, entry] of [...cards]) {
    if (entry.state === "ended" || live.has(id)) continue;
    if (!hasDraft(entry)) { removeCard(id); continue; }
    api("GET", callUrl(id)).then((res) => {
      if (cards.get(id) !== entry || entry.state === "ended") return;
      const call = res.ok && res.data && res.data.call ? res.data.call : null;
      // Stored as still going on (crmtel restarted mid-call and follows it again): the card stays as it is,
      // and the call's end reaches it like any other.
      if (call && !call.ended_at) return;
      upsert({ ...(call || {}), type: "call.ended", call_id: id, at: (call && call.ended_at) || new Date().toISOString() }, "ended");
    });
  }
}

export function relabelCards() {
  for (const entry of cards.values()) update(entry);
}

// Something typed, or the manager is in one of the card's fields right now (about to type).
function hasDraft(entry) {
  return entry.node.contains(document.activeElement) && document.activeElement !== entry.node
    || [...entry.node.querySelectorAll("input, textarea")].some((i) => i.value.trim() !== "");
}

// A faded card goes, unless the manager is writing in it: then it waits for them.
function fade(entry) {
  if (cards.get(entry.node.dataset.callId) !== entry) return;
  if (hasDraft(entry)) { entry.timer = setTimeout(() => fade(entry), FADE_MS); return; }
  removeCard(entry.node.dataset.callId);
}

function closeCard(callId, focusNext) {
  removeCard(callId);
  if (focusNext) {
    const next = box.querySelector(".card .close");
    (next || document.querySelector("main") || document.body).focus();
  }
}

function removeCard(callId) {
  const entry = cards.get(callId);
  if (!entry) return;
  clearTimeout(entry.timer);
  entry.node.remove();
  cards.delete(callId);
}

function create(msg) {
  const parts = {
    who: el("h2", { className: "who", testid: "card-name" }),
    number: el("span", { className: "card-number" }),
    kind: el("span", { className: "badge kind", testid: "card-kind" }),
    stop: el("span", { className: "badge stop", testid: "card-stop", i18n: "page.card.stop_list", hidden: true }),
    time: el("time", { className: "card-time", testid: "card-time" }),
    status: el("p", { className: "status", testid: "card-status", attrs: { role: "status" } }),
    // The ring time, then the talk time counting from the PBX's answer (server clock): the same in every tab.
    clock: el("span", { className: "card-clock", testid: "card-clock", hidden: true },
      el("span", { className: "ring", testid: "ring-clock" },
        el("span", { className: "label", i18n: "page.card.ring" }), " ",
        el("time", { className: "value", testid: "ring-time" })),
      el("span", { className: "talk", testid: "talk-clock" },
        el("span", { className: "label", i18n: "page.card.talk" }), " ",
        el("time", { className: "value", testid: "talk-time" }))),
    facts: el("dl", { className: "facts", testid: "card-facts" }),
    recent: el("section", { className: "recent", hidden: true }),
    deals: el("section", { className: "open-deals", hidden: true }),
    // The client's or lead's timeline (calls with their notes, notes, deals, tasks), read from the CRM.
    history: el("section", { className: "card-timeline", testid: "card-timeline", hidden: true }),
  };
  const actions = callActions(msg.call_id);
  const result = resultPicker(msg.call_id);
  const close = el("button", { type: "button", className: "close icon-btn", testid: "card-close",
    i18nAttrs: { "aria-label": "page.card.close", title: "page.card.close" }, onclick: () => closeCard(msg.call_id, true) }, "×");
  const node = el("article", { className: "card", testid: "call-card", dataset: { callId: msg.call_id } },
    el("header", { className: "card-head" },
      el("div", { className: "card-title" }, parts.who,
        el("div", { className: "card-sub" }, parts.number, parts.kind, parts.stop)),
      el("div", { className: "card-tools" }, parts.time, close)),
    // Who it is, the open deals and the history first (above the fold on a desk), then what to do.
    el("div", { className: "status-row" }, parts.status, parts.clock), result.node, parts.facts, parts.deals, parts.history, parts.recent, actions.node);
  return { node, parts, actions, result, exts: [], card: null, caller: {}, state: null, msg };
}

function upsert(msg, state) {
  let entry = cards.get(msg.call_id);
  if (!entry) {
    if (state === "ended" || state === "stopped") return; // nothing on screen to update
    entry = create(msg);
    entry.startedAt = msg.at;
    cards.set(msg.call_id, entry);
    box.prepend(entry.node);
  }
  if (state === "ringing" && entry.state && entry.state !== "ringing" && entry.state !== "stopped") return;
  if (state === "stopped" && entry.exts.length > 1) {
    entry.exts = entry.exts.filter((x) => x !== msg.extension);
    state = "ringing";
  } else if (state === "ringing" && !entry.exts.includes(msg.extension)) {
    entry.exts.push(msg.extension);
  }
  if (state === "lost" && entry.state === "mine") return; // one of our own phones won
  if (state === "ended" && entry.state === "lost") return; // keep saying who answered until it fades
  entry.state = state;
  entry.msg = msg;
  if (state === "ringing" && !entry.ringAt) entry.ringAt = msg.at;
  if (state === "mine" && msg.at) entry.answeredAt = msg.at;
  if (msg.card) entry.card = msg.card;
  for (const key of ["caller_number", "caller_name", "direction", "dialled"]) {
    if (msg[key] !== undefined && msg[key] !== null) entry.caller[key] = msg[key];
  }
  update(entry);
  clearTimeout(entry.timer);
  if (state === "lost" || state === "stopped" || (state === "ended" && msg.outcome !== "answered")) {
    // A card the manager has started writing in stays until they close it.
    entry.timer = setTimeout(() => fade(entry), FADE_MS);
  }
}

function seconds(fromIso, toMs) {
  return Math.max(0, ((toMs === undefined ? Date.now() + skewMs : toMs) - Date.parse(fromIso)) / 1000);
}

// Live: the ringing time while it rings, the talk time while it lasts; the record's own figures
// once it ended.
function drawClock(entry) {
  const { clock } = entry.parts;
  const ring = clock.querySelector(".ring");
  const talk = clock.querySelector(".talk");
  const ringTime = clock.querySelector("[data-testid=ring-time]");
  const talkTime = clock.querySelector("[data-testid=talk-time]");
  let ringS = null;
  let talkS = null;
  if (entry.state === "ringing" && entry.ringAt) ringS = seconds(entry.ringAt);
  else if (entry.state === "mine" && entry.answeredAt) {
    talkS = seconds(entry.answeredAt);
    if (entry.ringAt) ringS = seconds(entry.ringAt, Date.parse(entry.answeredAt));
    talkTime.dateTime = entry.answeredAt;
  } else if (entry.state === "ended" && entry.msg.outcome === "answered") {
    talkS = entry.msg.talk_seconds;
    ringS = entry.msg.ring_seconds;
  }
  clock.hidden = ringS === null && talkS === null;
  ring.hidden = ringS === null;
  talk.hidden = talkS === null;
  // Rounded, and redrawn four times a second: the clock is never more than ¾ s off the PBX's.
  if (ringS !== null) setText(ringTime, fmtClock(Math.round(ringS)));
  if (talkS !== null) {
    setText(talkTime, fmtClock(Math.round(talkS)));
    talkTime.dataset.seconds = String(Math.round(talkS));
  }
}

setInterval(() => {
  for (const entry of cards.values()) if (entry.state === "ringing" || entry.state === "mine") drawClock(entry);
}, 250);

function statusText(entry) {
  const m = entry.msg;
  const outbound = entry.caller.direction === "outbound";
  switch (entry.state) {
    case "ringing": {
      const ext = entry.exts.join(", ") || m.extension;
      if (outbound) return t("page.card.dialling", { ext });
      return m.queue ? t("page.card.ringing_queue", { ext, queue: m.queue }) : t("page.card.ringing", { ext });
    }
    case "mine":
      if (me && me.role === "head") return t("page.card.in_call_by", { who: words.who(m.answered_by_name, m.answered_by) });
      return t(outbound ? "page.card.in_call_out" : "page.card.in_call_you", { ext: m.answered_by });
    case "lost": return t("page.card.answered_by", { who: words.who(m.answered_by_name, m.answered_by) });
    case "stopped": return t("page.card.stopped", { reason: words.reason(m.reason) });
    case "ended":
      if (m.outcome === "answered") return t("page.card.ended", { talk: fmtDuration(m.talk_seconds) });
      if (!m.outcome) return t("page.card.over");
      return m.missed_reason ? t("page.card.missed_because", { reason: words.reason(m.missed_reason) }) : t("page.card.missed");
    default: return "";
  }
}

function update(entry) {
  const { parts, node } = entry;
  const card = entry.card || {};
  const c = entry.caller;
  const number = c.direction === "outbound" ? c.dialled : c.caller_number;
  // An outbound call's caller name is our own manager's (as in the history): only the CRM knows who was called.
  const callerName = c.direction !== "outbound" && c.caller_name && c.caller_name !== "<unknown>" ? c.caller_name : null;
  node.className = "card state-" + entry.state + (card.stop_list ? " stop-listed" : "");
  node.dataset.state = entry.state;
  node.dataset.direction = c.direction || "inbound";
  setText(parts.who, card.name || callerName || formatPhone(number) || t("page.card.unknown"));
  node.setAttribute("aria-label", parts.who.textContent);
  parts.number.replaceChildren(phone(card.number || number, { where: "card", callId: node.dataset.callId }) || "");
  setText(parts.kind, words.kind(card.kind));
  parts.kind.dataset.kind = card.kind || "call";
  parts.stop.hidden = !card.stop_list;
  if (entry.startedAt) {
    parts.time.dateTime = entry.startedAt;
    setText(parts.time, fmtTime(entry.startedAt));
  }
  setText(parts.status, statusText(entry));
  drawClock(entry);
  // The result is asked once the call is no longer only ringing here (answered, or over).
  entry.result.node.hidden = !["mine", "ended", "stopped"].includes(entry.state);
  entry.result.relabel();
  if (!entry.result.node.hidden && !entry.resultRead) {
    // Chosen earlier (another tab, before a reload): show it.
    entry.resultRead = true;
    api("GET", callUrl(node.dataset.callId)).then((res) => {
      if (res.ok && res.data && res.data.call && res.data.call.result) entry.result.set(res.data.call.result);
    });
  }
  entry.actions.setKind(card.kind);

  const facts = [];
  const fact = (key, value) => { if (value) facts.push(el("dt", { i18n: key }), el("dd", {}, value)); };
  fact("page.fact.company", card.company);
  fact("page.fact.contact", card.via_contact);
  fact("page.fact.category", card.category ? words.category(card.category) : null);
  fact("page.fact.manager", card.manager_name
    ? card.manager_name + (card.manager_active ? "" : " " + t("page.fact.inactive")) : null);
  fact("page.fact.turnover", card.turnover
    ? fmtMoney(card.turnover) + (card.turnover_month ? " · " + fmtMonth(card.turnover_month) : "") : null);
  // The caller ID name only when it says something the CRM did not (it is often the contact's own name).
  const said = [card.name, card.via_contact, card.company, parts.who.textContent];
  fact("page.fact.caller_id", callerName && !said.includes(callerName) ? callerName : null);
  fact("page.fact.also", card.also && card.also.length ? card.also.join("; ") : null);
  parts.facts.replaceChildren(...facts);
  parts.facts.hidden = facts.length === 0;

  const party = card.party_id && (card.kind === "client" || card.kind === "lead") ? card.kind + "/" + card.party_id : null;
  // Loaded again once the call has ended, so its own entry shows how it went instead of «Идёт».
  const ended = entry.state === "ended";
  if (party && (entry.historyFor !== party || (ended && !entry.historyEnded))) {
    entry.historyFor = party;
    entry.historyEnded = ended;
    const box = el("div", {});
    parts.history.replaceChildren(el("h3", {},
      el("a", { href: "#clients/" + party, i18n: "page.card.history" })), box);
    parts.history.hidden = false;
    // A record that is not this manager's to open (another manager's client ringing in a queue): the
    // card keeps its last calls instead.
    timeline(box, card.kind, card.party_id, { limit: 6, compact: true, settle: ended ? { call: node.dataset.callId, ended: true } : null }).then((ok) => {
      entry.historyOk = ok;
      if (!ok) { parts.history.hidden = true; update(entry); }
    });
  }
  const recent = party && entry.historyOk !== false ? [] : card.recent_calls || [];
  parts.recent.hidden = recent.length === 0;
  parts.recent.replaceChildren(el("h3", { i18n: "page.card.recent" }),
    el("ul", {}, recent.map((r) => el("li", {},
      el("time", { dateTime: r.started_at }, fmtDateTime(r.started_at, { always: true })), " · ",
      words.direction(r.direction), " · ",
      r.outcome === "answered" ? t("page.card.recent_talk", { talk: fmtDuration(r.talk_seconds) })
        : words.outcome(r.outcome) + (r.missed_reason ? " (" + words.reason(r.missed_reason) + ")" : ""),
      r.answered_by ? " · " + r.answered_by : ""))));

  const deals = card.open_deals || [];
  parts.deals.hidden = deals.length === 0;
  parts.deals.replaceChildren(el("h3", { i18n: "page.card.open_deals" }),
    el("ul", {}, deals.map((d) => el("li", {},
      el("span", { className: "deal-title" }, d.title), " ",
      el("span", { className: "money" }, fmtMoney(d.amount)),
      d.stage ? el("span", { className: "muted" }, " · " + words.stage(d.stage)) : null))));
}

export const cardCount = () => cards.size;
export const cardsBox = () => box || $("#popups");
