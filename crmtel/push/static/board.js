// The heads' live board: queues with their waiting callers, who is on a call, today's counts.
// The server sends the whole board as `board.state` on every change; durations tick here every second
// from the `since` instants, corrected by the server's clock (`at`) so a wrong PC clock shows no wrong wait.
import { api, onUnauthorized } from "./api.js";
import { $, el, setText } from "./dom.js";
import { configure, fmtDuration, fmtNumber, onLanguage, setLanguage, t } from "./i18n.js";
import { formatPhone } from "./phone.js";
import * as socket from "./socket.js";

let board = null;
let skewMs = 0; // server clock minus this browser's clock

const secondsSince = (iso) => Math.max(0, (Date.now() + skewMs - Date.parse(iso)) / 1000);

function caller(c) {
  return c.name || formatPhone(c.number) || t("board.hidden_number");
}

function drawToday(today) {
  const box = $("#board-today");
  const figures = [
    ["answered", "board.answered", today.answered],
    ["missed", "board.missed", today.missed],
    ["called-back", "board.called_back", today.called_back],
  ];
  box.replaceChildren(...figures.map(([cls, key, value]) =>
    el("div", { className: "board-figure " + cls, testid: "today-" + cls },
      el("span", { className: "value", testid: "today-" + cls + "-value" }, fmtNumber(value)),
      el("span", { className: "label", i18n: key }))));
}

function drawQueues(queues) {
  const box = $("#board-queues");
  const items = queues.map((q) => el("article",
    { className: "board-queue" + (q.waiting ? " has-waiting" : ""), testid: "board-queue", dataset: { queue: q.queue } },
    el("div", { className: "name" }, q.queue),
    el("div", { className: "count", testid: "queue-waiting", dataset: { count: String(q.waiting) } },
      q.waiting ? t("board.waiting", { count: q.waiting }) : t("board.nobody_waiting")),
    q.longest_since ? el("div", { className: "longest", testid: "queue-longest" },
      el("span", { i18n: "board.longest" }), " ", el("span", { className: "since", dataset: { since: q.longest_since } })) : null,
    el("ul", {}, q.callers.map((c) => el("li", { className: "board-caller", testid: "waiting-caller", dataset: { callId: c.call_id } },
      el("span", {}, caller(c)), el("span", { className: "since", dataset: { since: c.since } }))))));
  box.replaceChildren(el("h2", { i18n: "board.queues" }),
    ...(items.length ? items : [el("p", { className: "muted", testid: "no-queues", i18n: "board.nobody_waiting" })]));
}

function drawTalking(talking) {
  const box = $("#board-talking");
  const rows = talking.map((c) => el("li", { className: "board-call", testid: "talking-call", dataset: { callId: c.call_id, extension: c.extension } },
    el("span", { className: "who" }, c.manager ? c.manager + " (" + c.extension + ")" : c.extension),
    el("span", {}, caller(c) + (c.queue ? " · " + c.queue : "")),
    el("span", { className: "since", dataset: { since: c.since } })));
  box.replaceChildren(el("h2", { i18n: "board.talking" }),
    rows.length ? el("ul", {}, rows) : el("p", { className: "muted", testid: "nobody-talking", i18n: "board.nobody_talking" }));
}

function tick() {
  for (const node of document.querySelectorAll("#board .since[data-since]")) {
    setText(node, fmtDuration(secondsSince(node.dataset.since)));
  }
}

function draw() {
  if (!board) return;
  drawToday(board.today);
  drawQueues(board.queues);
  drawTalking(board.talking);
  tick();
}

// While the socket is down the figures are old: the board says so and greys them out until the server's
// fresh state arrives on the new connection (its `board.state` greeting).
function setConn(state) {
  const live = state === "live";
  const conn = $("#board-conn");
  conn.className = "board-conn " + (live ? "on" : "off");
  setText(conn, t(live ? "board.live" : "board.offline"));
  conn.dataset.state = live ? "live" : "offline";
  if (!live) $("#board").classList.add("stale");
}

socket.onMessage((msg) => {
  if (msg.type !== "board.state") return;
  board = msg;
  $("#board").classList.remove("stale");
  if (msg.at) skewMs = Date.parse(msg.at) - Date.now();
  draw();
});
socket.onStatus(setConn);
onLanguage(draw);
onUnauthorized(() => { socket.disconnect(); location.assign("/"); });

async function start() {
  const me = await api("GET", "/api/me");
  if (!me.ok) { location.assign("/"); return; }
  configure(me.data);
  await setLanguage(me.data.locale || document.documentElement.lang);
  const first = await api("GET", "/api/board");
  if (first.ok) { board = first.data; if (board.at) skewMs = Date.parse(board.at) - Date.now(); draw(); }
  setConn("connecting");
  socket.connect();
  setInterval(tick, 1000);
}

start();
