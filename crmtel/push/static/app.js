// The managers' page. Every stored or received string goes into the page as text (textContent / text
// nodes), never as HTML, so a caller name like <img src=x onerror=...> shows literally.
"use strict";

const $ = (sel) => document.querySelector(sel);

// el("div", {className: "x"}, "text", child, ...): strings become text nodes, never markup.
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node[key] = value;
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(method, path, body) {
  const init = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  let data = null;
  try { data = await res.json(); } catch (_e) { data = null; }
  if (res.status === 401 && path !== "/api/login") showLogin();
  return { ok: res.ok, status: res.status, data };
}

const callUrl = (callId, suffix) => "/api/calls/" + encodeURIComponent(callId) + (suffix || "");
const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString() : "");
const seconds = (s) => (s === null || s === undefined ? "" : Math.round(s) + " s");

// ---- login ---------------------------------------------------------------------------------

let me = null;
let socket = null;
let retryMs = 500;
let retryTimer = null;
let pingTimer = null;

function showLogin() {
  stopSocket();
  me = null;
  $("#main").hidden = true;
  $("#login").hidden = false;
}

async function boot() {
  const res = await api("GET", "/api/me");
  if (res.ok) start(res.data); else showLogin();
}

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#login-error").textContent = "";
  const res = await api("POST", "/api/login", {
    login: $("#login-name").value, password: $("#login-password").value,
  });
  if (res.ok) { $("#login-password").value = ""; start(res.data); }
  else $("#login-error").textContent = (res.data && res.data.error) || "login failed";
});

$("#logout").addEventListener("click", async () => {
  await api("POST", "/api/logout");
  for (const id of [...cards.keys()]) removeCard(id);
  showLogin();
});

function start(manager) {
  me = manager;
  $("#login").hidden = true;
  $("#main").hidden = false;
  const exts = manager.extensions.length ? " · ext " + manager.extensions.join(", ") : "";
  $("#me").textContent = manager.name + exts + (manager.role === "head" ? " · head of sales" : "");
  connect();
  loadHistory();
}

// ---- websocket -------------------------------------------------------------------------------

function setConn(on) {
  const c = $("#conn");
  c.textContent = on ? "live" : "reconnecting…";
  c.className = "conn " + (on ? "on" : "off");
}

function stopSocket() {
  clearTimeout(retryTimer);
  clearInterval(pingTimer);
  if (socket) { socket.onclose = null; socket.close(); socket = null; }
  setConn(false);
}

function connect() {
  stopSocket();
  const proto = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(proto + location.host + "/ws");
  socket = ws;
  ws.onmessage = (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch (_e) { return; }
    handle(msg);
  };
  ws.onopen = () => { retryMs = 500; setConn(true); };
  ws.onclose = async () => {
    setConn(false);
    clearInterval(pingTimer);
    if (socket !== ws) return;
    socket = null;
    const who = await api("GET", "/api/me");
    if (!who.ok) return;
    retryTimer = setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 10000);
  };
  pingTimer = setInterval(() => { if (ws.readyState === WebSocket.OPEN) ws.send("ping"); }, 25000);
}

// ---- call cards ------------------------------------------------------------------------------

// call_id -> {node, state, msg, ext, card}
const cards = new Map();

function handle(msg) {
  switch (msg.type) {
    case "hello":
      // A fresh connection: the server resends everything still live for us.
      for (const id of [...cards.keys()]) if (cards.get(id).state !== "ended") removeCard(id);
      break;
    case "call.ringing": upsert(msg, "ringing"); break;
    case "call.answered": upsert(msg, msg.by_me ? "mine" : "lost"); break;
    case "call.ring_stopped": upsert(msg, "stopped"); break;
    // The call service writes the final record right after it tells us; give it a moment.
    case "call.ended": upsert(msg, "ended"); setTimeout(loadHistory, 1500); break;
    case "call.card": {
      // The CRM facts arrive after the popup when the store was slow.
      const entry = cards.get(msg.call_id);
      if (entry && msg.card) { entry.card = msg.card; renderCard(msg.call_id, entry); }
      break;
    }
    default: break;
  }
}

function statusText(entry) {
  const m = entry.msg;
  switch (entry.state) {
    case "ringing": return "Ringing at " + (entry.exts.join(", ") || m.extension) + (m.queue ? " · queue " + m.queue : "");
    case "mine":
      if (me && me.role === "head") return "In call — answered by " + (m.answered_by_name ? m.answered_by_name + " (" + m.answered_by + ")" : m.answered_by);
      return "In call — answered by you (" + m.answered_by + ")";
    case "lost": return "Answered by " + (m.answered_by_name ? m.answered_by_name + " (" + m.answered_by + ")" : m.answered_by);
    case "stopped": return "Stopped ringing: " + m.reason;
    case "ended":
      if (m.outcome === "answered") return "Ended — talk " + seconds(m.talk_seconds) + (m.answered_by ? " · answered by " + m.answered_by : "");
      return "Missed" + (m.missed_reason ? " — " + m.missed_reason : "");
    default: return "";
  }
}

function upsert(msg, state) {
  let entry = cards.get(msg.call_id);
  if (!entry) {
    if (state === "ended" || state === "stopped") return; // nothing on screen to update
    entry = { node: el("article", { className: "card" }), exts: [], card: null, caller: {} };
    cards.set(msg.call_id, entry);
    $("#popups").prepend(entry.node);
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
  if (msg.card) entry.card = msg.card;
  for (const key of ["caller_number", "caller_name", "direction", "dialled"]) {
    if (msg[key] !== undefined && msg[key] !== null) entry.caller[key] = msg[key];
  }
  entry.node.dataset.callId = msg.call_id;
  entry.node.dataset.state = state;
  renderCard(msg.call_id, entry);
  clearTimeout(entry.timer);
  if (state === "lost" || state === "stopped" || (state === "ended" && msg.outcome !== "answered")) {
    entry.timer = setTimeout(() => removeCard(msg.call_id), 15000);
  }
}

function removeCard(callId) {
  const entry = cards.get(callId);
  if (!entry) return;
  clearTimeout(entry.timer);
  entry.node.remove();
  cards.delete(callId);
}

const KIND = { client: "Client", lead: "Lead", new_lead: "New caller", hidden: "Hidden number",
  internal: "Internal", unavailable: "CRM unavailable" };

function renderCard(callId, entry) {
  const card = entry.card || {};
  const c = entry.caller;
  const number = c.direction === "outbound" ? c.dialled : c.caller_number;
  const title = card.name || (c.caller_name && c.caller_name !== "<unknown>" ? c.caller_name : null) || number || "Unknown caller";
  const node = entry.node;
  node.className = "card " + entry.state;
  const facts = el("dl", {});
  const fact = (label, value) => { if (value) facts.append(el("dt", {}, label), el("dd", {}, value)); };
  fact("Number", card.number || number);
  fact("Caller ID", c.caller_name);
  fact("Company", card.company);
  fact("Contact", card.via_contact);
  fact("Category", card.category);
  fact("Manager", card.manager_name ? card.manager_name + (card.manager_active ? "" : " (inactive)") : null);
  fact("Last month", card.turnover ? card.turnover + (card.turnover_month ? " (" + card.turnover_month.slice(0, 7) + ")" : "") : null);
  fact("Also", card.also && card.also.length ? card.also.join("; ") : null);

  const recent = (card.recent_calls || []).map((r) => el("li", {},
    fmtTime(r.started_at) + " · " + r.direction + " · " + (r.outcome || "?") +
    (r.answered_by ? " · " + r.answered_by : "") + (r.outcome === "answered" ? " · " + seconds(r.talk_seconds) : "") +
    (r.missed_reason ? " · " + r.missed_reason : "")));
  const deals = (card.open_deals || []).map((d) => el("li", {}, d.title + " — " + d.amount + " (" + d.stage + ")"));

  node.replaceChildren(...[
    el("div", { className: "top" },
      el("span", { className: "who" }, title),
      el("button", { className: "close", type: "button", title: "Close", onclick: () => removeCard(callId) }, "×")),
    el("div", {},
      el("span", { className: "kind " + (card.kind || "") }, KIND[card.kind] || "Call"),
      card.stop_list ? el("span", { className: "stop" }, "STOP LIST") : null),
    el("div", { className: "status" }, statusText(entry)),
    facts,
    recent.length ? el("div", {}, "Last calls:", el("ul", {}, recent)) : null,
    deals.length ? el("div", {}, "Open deals:", el("ul", {}, deals)) : null,
    (entry.state === "mine" || entry.state === "ended") ? actions(callId, card) : null,
  ].filter(Boolean));
}

// ---- actions on a call (popup and history detail) -------------------------------------------

function actionForm(legend, fields, submit, open) {
  const msg = el("div", { className: "msg" });
  const inputs = {};
  const form = el("form", { className: "action" });
  for (const [name, label, kind] of fields) {
    inputs[name] = kind === "textarea" ? el("textarea", { name, placeholder: label, rows: 2 })
      : el("input", { name, placeholder: label, type: kind || "text" });
    form.append(inputs[name]);
  }
  form.append(el("button", { type: "submit" }, "Save"), msg);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const values = {};
    for (const [name, input] of Object.entries(inputs)) values[name] = input.value;
    const res = await submit(values);
    msg.textContent = res.ok ? "Saved." : ((res.data && res.data.error) || "Failed (" + res.status + ")");
    if (res.ok) for (const input of Object.values(inputs)) input.value = "";
  });
  return el("details", { className: "action", open: Boolean(open) }, el("summary", {}, legend), form);
}

function actions(callId, card) {
  const box = el("div", { className: "call-actions" });
  box.append(actionForm("Result", [["topic", "Topic"], ["result", "Result"], ["comment", "Comment", "textarea"]],
    (v) => api("POST", callUrl(callId, "/notes"), v), true));
  if (!card || !["client", "hidden", "internal"].includes(card.kind)) {
    // Creates the lead, or fills in the one the call already has (unknown callers get one automatically).
    box.append(actionForm("Lead", [["name", "Name"], ["company", "Company"], ["email", "E-mail", "email"]],
      (v) => api("POST", callUrl(callId, "/lead"), v)));
  }
  box.append(actionForm("Deal", [["title", "Title"], ["amount", "Amount"]],
    (v) => api("POST", callUrl(callId, "/deals"), v)));
  box.append(actionForm("Call back", [["title", "What about"], ["due_minutes", "In minutes", "number"]],
    (v) => api("POST", callUrl(callId, "/tasks"),
      { title: v.title, due_minutes: v.due_minutes ? parseInt(v.due_minutes, 10) : undefined })));
  return box;
}

// ---- history -------------------------------------------------------------------------------

async function loadHistory() {
  if (!me) return;
  const res = await api("GET", "/api/calls?limit=50");
  if (!res.ok) return;
  const body = $("#history tbody");
  body.replaceChildren(...res.data.calls.map((call) => {
    const number = call.direction === "outbound" ? call.dialled : call.caller_number;
    const audio = call.recording && call.ended_at
      ? el("audio", { controls: true, preload: "none", src: callUrl(call.call_id, "/recording"),
          onclick: (ev) => ev.stopPropagation() })
      : "";
    return el("tr", { dataset: { callId: call.call_id }, onclick: () => showDetail(call.call_id) },
      el("td", {}, fmtTime(call.started_at)),
      el("td", {}, call.direction),
      el("td", {}, number || ""),
      el("td", {}, call.party_name || call.caller_name || ""),
      el("td", {}, !call.ended_at ? "in progress"
        : call.outcome === "missed" ? "missed" + (call.missed_reason ? ": " + call.missed_reason : "") : (call.outcome || "")),
      el("td", {}, call.answered_by || call.rang.join(", ")),
      el("td", {}, call.ended_at && call.outcome === "answered" ? seconds(call.talk_seconds) : ""),
      el("td", {}, audio));
  }));
}

async function showDetail(callId) {
  const res = await api("GET", callUrl(callId));
  const box = $("#detail");
  box.hidden = false;
  if (!res.ok) { box.replaceChildren(el("p", { className: "error" }, (res.data && res.data.error) || "not found")); return; }
  const { call, notes, deals, tasks } = res.data;
  box.replaceChildren(...[
    el("h3", {}, (call.party_name || call.caller_name || call.caller_number || "") + " · " + fmtTime(call.started_at)),
    el("ul", {}, notes.map((n) => el("li", {}, fmtTime(n.created_at) + " — " + [n.topic, n.result, n.comment].filter(Boolean).join(" · ")))),
    deals.length ? el("p", {}, "Deals: " + deals.map((d) => d.title + " " + d.amount).join("; ")) : null,
    tasks.length ? el("p", {}, "Callbacks: " + tasks.map((t) => t.title + " by " + fmtTime(t.due_at)).join("; ")) : null,
    actions(callId, call.party_id ? { kind: call.party_kind } : { kind: "new_lead" }),
  ].filter(Boolean));
}

$("#refresh").addEventListener("click", loadHistory);
boot();
