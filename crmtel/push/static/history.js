// Call history: a list that is a table on a desk and stacked rows on a phone; a click opens the call's
// detail as a dialog over the list, so it is where the manager is looking.
import { callActions } from "./actions.js";
import { api, callUrl } from "./api.js";
import { $, el } from "./dom.js";
import { fmtDateTime, fmtDuration, fmtFull, fmtMoney, t } from "./i18n.js";
import { phone } from "./phone.js";
import { registerView } from "./views.js";
import * as words from "./words.js";

const PAGE = 50;
let list = null;
let more = null;
let empty = null;
let dialog = null;
let lastCalls = [];
const drafts = new Map(); // call_id -> the detail's action forms, so a reopened call keeps what was typed

const otherNumber = (call) => (call.direction === "outbound" ? call.dialled : call.caller_number);

function outcomeText(call) {
  if (!call.ended_at) return t("page.outcome.in_progress");
  if (call.outcome === "missed") return words.outcome("missed");
  return words.outcome(call.outcome);
}

function recordingControl(call) {
  if (!call.recording || !call.ended_at) return null;
  const play = el("button", { type: "button", className: "btn small play", testid: "history-play",
    i18nAttrs: { "aria-label": "page.history.play" }, onclick: (ev) => {
      ev.stopPropagation();
      const audio = el("audio", { controls: true, autoplay: true, preload: "auto", src: call.recording,
        testid: "history-audio", i18nAttrs: { "aria-label": "page.history.recording" } });
      play.replaceWith(audio);
    } }, el("span", { attrs: { "aria-hidden": "true" } }, "▶ "), el("span", { i18n: "page.history.listen" }));
  return play;
}

function row(call) {
  const number = otherNumber(call);
  // An outbound call's caller name is our own manager's: only the CRM knows who was called.
  const callerName = call.direction !== "outbound" && call.caller_name && call.caller_name !== "<unknown>"
    ? call.caller_name : "";
  const name = call.party_name || callerName;
  const open = el("button", { type: "button", className: "link party-name", testid: "history-open",
    attrs: { "aria-haspopup": "dialog" }, onclick: () => openDetail(call.call_id) },
    name || number || t("page.card.unknown"));
  const state = !call.ended_at ? "live" : call.outcome || "unknown";
  const node = el("li", { className: "call-row", testid: "history-row",
    dataset: { callId: call.call_id, outcome: state, direction: call.direction } },
    el("span", { className: "c-time" }, el("time", { dateTime: call.started_at, title: fmtFull(call.started_at),
      testid: "history-time" }, fmtDateTime(call.started_at))),
    el("span", { className: "c-dir badge", dataset: { direction: call.direction } }, words.direction(call.direction)),
    el("span", { className: "c-party" }, open, name ? phone(number, { where: "history", callId: call.call_id }) : null),
    el("span", { className: "c-outcome badge", dataset: { outcome: state } }, outcomeText(call)),
    el("span", { className: "c-who" }, call.answered_by || call.rang.join(", ")),
    el("span", { className: "c-talk" }, call.ended_at && call.outcome === "answered" ? fmtDuration(call.talk_seconds) : ""),
    el("span", { className: "c-rec" }, recordingControl(call)));
  // The whole row opens the detail by mouse; the name button is the keyboard's way in.
  node.addEventListener("click", (ev) => {
    if (ev.target.closest("button, a, audio, input")) return;
    openDetail(call.call_id);
  });
  node.dataset.sig = JSON.stringify(call);
  return node;
}

function render(calls) {
  const old = new Map([...list.children].map((li) => [li.dataset.callId, li]));
  list.replaceChildren(...calls.map((call) => {
    const prev = old.get(call.call_id);
    // An unchanged row is kept as it is (a recording being played keeps playing).
    return prev && prev.dataset.sig === JSON.stringify(call) ? prev : row(call);
  }));
  empty.hidden = calls.length > 0;
}

export async function loadHistory() {
  const res = await api("GET", "/api/calls?limit=" + PAGE);
  if (!res.ok || !res.data) return;
  lastCalls = res.data.calls;
  render(lastCalls);
  more.hidden = lastCalls.length < PAGE;
}

async function loadMore() {
  const last = lastCalls[lastCalls.length - 1];
  if (!last) return;
  const res = await api("GET", "/api/calls?limit=" + PAGE + "&before=" + encodeURIComponent(last.id));
  if (!res.ok || !res.data) return;
  lastCalls = lastCalls.concat(res.data.calls);
  render(lastCalls);
  more.hidden = res.data.calls.length < PAGE;
}

function detailFacts(call) {
  const rows = [];
  const fact = (key, value) => { if (value) rows.push(el("dt", { i18n: key }), el("dd", {}, value)); };
  fact("page.fact.when", fmtFull(call.started_at));
  fact("page.fact.direction", words.direction(call.direction));
  fact("page.fact.outcome", outcomeText(call) + (call.missed_reason ? " — " + words.reason(call.missed_reason) : ""));
  // An outbound call "rings" only at the phone that placed it: nothing to say there.
  if (call.direction !== "outbound") fact("page.fact.rang", call.rang.join(", "));
  fact("page.fact.answered_by", call.answered_by);
  fact("page.fact.queue", call.queue);
  fact("page.fact.ring_time", call.ended_at ? fmtDuration(call.ring_seconds) : null);
  fact("page.fact.talk_time", call.ended_at && call.outcome === "answered" ? fmtDuration(call.talk_seconds) : null);
  return el("dl", { className: "facts" }, rows);
}

function listSection(key, items, render) {
  if (!items.length) return null;
  return el("section", { className: "detail-list" }, el("h3", { i18n: key }), el("ul", {}, items.map(render)));
}

async function openDetail(callId) {
  const res = await api("GET", callUrl(callId));
  const body = $("#detail-body");
  if (!res.ok || !res.data) {
    body.replaceChildren(el("p", { className: "error", attrs: { role: "alert" } },
      (res.data && res.data.error) || t("page.detail.not_found")));
  } else {
    const { call, notes, deals, tasks } = res.data;
    const number = otherNumber(call);
    let actions = drafts.get(callId);
    if (!actions) {
      actions = callActions(callId, { openNote: true });
      drafts.set(callId, actions);
    }
    actions.setKind(call.party_id ? call.party_kind : "new_lead");
    const audio = call.recording && call.ended_at
      ? el("audio", { controls: true, preload: "none", src: call.recording, testid: "detail-audio",
          i18nAttrs: { "aria-label": "page.history.recording" } }) : null;
    body.replaceChildren(...[
      el("h2", { id: "detail-title", testid: "detail-title" },
        call.party_name || (call.direction !== "outbound" && call.caller_name) || number || t("page.card.unknown")),
      el("p", { className: "card-sub" }, phone(number, { where: "detail", callId })),
      detailFacts(call),
      audio,
      listSection("page.detail.notes", notes, (n) => el("li", {},
        el("time", { dateTime: n.created_at, className: "muted" }, fmtDateTime(n.created_at)), " ",
        [n.topic, n.result, n.comment].filter(Boolean).join(" · "))),
      listSection("page.detail.deals", deals, (d) => el("li", {}, d.title, " ",
        el("span", { className: "money" }, fmtMoney(d.amount)))),
      listSection("page.detail.callbacks", tasks, (task) => el("li", {}, task.title, " · ",
        t("page.detail.due", { when: fmtDateTime(task.due_at, { always: true }) }))),
      actions.node,
    ].filter(Boolean));
  }
  if (!dialog.open) dialog.showModal();
}

function mount(section) {
  list = el("ol", { id: "history", className: "history", testid: "history-list", attrs: { "aria-labelledby": "history-title" } });
  empty = el("p", { className: "empty", testid: "history-empty", i18n: "page.history.empty", hidden: true });
  more = el("button", { type: "button", className: "btn", testid: "history-more", i18n: "page.history.more",
    hidden: true, onclick: loadMore });
  const head = el("div", { className: "history-head" },
    el("div", { className: "history-cols", attrs: { "aria-hidden": "true" } },
      ["time", "direction", "party", "outcome", "who", "talk", "recording"].map((c) =>
        el("span", { className: "c-" + c, i18n: "page.history.col." + c }))));
  section.append(
    el("div", { className: "section-head" },
      el("h1", { id: "history-title", i18n: "page.history.title" }),
      el("button", { type: "button", id: "refresh", className: "btn", testid: "history-refresh",
        i18n: "page.history.refresh", onclick: loadHistory })),
    head, list, empty, more);
  dialog = el("dialog", { id: "detail", className: "detail", testid: "call-detail",
    attrs: { "aria-labelledby": "detail-title" } },
    el("div", { className: "detail-bar" },
      el("button", { type: "button", className: "close icon-btn", testid: "detail-close",
        i18nAttrs: { "aria-label": "page.detail.close", title: "page.detail.close" },
        onclick: () => dialog.close() }, "×")),
    el("div", { id: "detail-body" }));
  // A click on the backdrop (outside the dialog's box) closes it; Esc does so natively.
  dialog.addEventListener("click", (ev) => { if (ev.target === dialog) dialog.close(); });
  document.body.append(dialog);
}

registerView({
  id: "calls",
  labelKey: "page.nav.calls",
  order: 10,
  mount,
  show: loadHistory,
  onMessage(msg) {
    // A ringing phone comes first: the detail (a modal that would cover the card) steps aside; what was
    // typed in it is kept for when it is opened again.
    if (msg.type === "call.ringing" && dialog && dialog.open) dialog.close();
    // The call service writes the final record right after it tells us; give it a moment.
    if (msg.type === "call.ended") setTimeout(loadHistory, 1500);
  },
  onLanguage() { if (list) { list.replaceChildren(); loadHistory(); } },
});
