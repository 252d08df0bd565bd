// Call history: a list that is a table on a desk and stacked rows on a phone; a click opens the call's
// detail as a dialog over the list, so it is where the manager is looking.
import { callActions } from "./actions.js";
import { api, callUrl } from "./api.js";
import { field, isHead, managerSelect, managers, zonedInstant } from "./crm.js";
import { $, el } from "./dom.js";
import { fmtDateTime, fmtDuration, fmtFull, fmtMoney, t } from "./i18n.js";
import { formatPhone, phone } from "./phone.js";
import { registerView } from "./views.js";
import * as words from "./words.js";

const PAGE = 50;
let me = null;
const filters = {}; // the filter form's inputs
let list = null;
let more = null;
let empty = null;
let dialog = null;
let lastCalls = [];
let downloads = null; // the CSV links, kept to the filters the list shows
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

// A call blindly transferred to an outside number stays its manager's; the row says where it went on to, the
// number written and called like every other.
function transferMarker(call) {
  if (!call.transferred_to) return null;
  return el("span", { className: "c-transfer", testid: "history-transferred" },
    el("span", { attrs: { "aria-hidden": "true" } }, "↪ "), el("span", { i18n: "page.fact.transferred_to" }), " ",
    phone(call.transferred_to, { where: "history", callId: call.call_id }));
}

function row(call) {
  const number = otherNumber(call);
  // An outbound call's caller name is our own manager's: only the CRM knows who was called.
  const callerName = call.direction !== "outbound" && call.caller_name && call.caller_name !== "<unknown>"
    ? call.caller_name : "";
  const name = call.party_name || callerName;
  const open = el("button", { type: "button", className: "link party-name", testid: "history-open",
    attrs: { "aria-haspopup": "dialog" }, onclick: () => openDetail(call.call_id) },
    name || formatPhone(number) || t("page.card.unknown"));
  const state = !call.ended_at ? "live" : call.outcome || "unknown";
  const node = el("li", { className: "call-row", testid: "history-row",
    dataset: { callId: call.call_id, outcome: state, direction: call.direction } },
    el("span", { className: "c-time" }, el("time", { dateTime: call.started_at, title: fmtFull(call.started_at),
      testid: "history-time" }, fmtDateTime(call.started_at))),
    el("span", { className: "c-dir badge", dataset: { direction: call.direction } }, words.direction(call.direction)),
    el("span", { className: "c-party" }, open, name ? phone(number, { where: "history", callId: call.call_id }) : null,
      transferMarker(call)),
    el("span", { className: "c-outcome badge", dataset: { outcome: state } }, outcomeText(call),
      call.result ? el("span", { className: "c-result", testid: "history-result" }, " · " + words.result(call.result)) : null),
    el("span", { className: "c-who" }, call.answered_by
      ? words.who(call.answered_by_name, call.answered_by)
      : call.rang.map((ext, i) => words.who((call.rang_names || [])[i], ext)).join(", ")),
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

const shiftDay = (date, n) => {
  const [y, m, d] = date.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
};

// The filters as the API's query (dates are local days in the configured zone, [from, to)).
function filterQuery() {
  const p = new URLSearchParams();
  if (!filters.from) return p;
  if (filters.manager && filters.manager.value) p.set("manager", filters.manager.value);
  if (filters.from.value) p.set("from", zonedInstant(filters.from.value, "00:00"));
  // "To" is the last day included, as people say it; the API takes the instant after it.
  if (filters.to.value) p.set("to", zonedInstant(shiftDay(filters.to.value, 1), "00:00"));
  for (const name of ["direction", "outcome", "number"]) if (filters[name].value.trim()) p.set(name, filters[name].value.trim());
  if (filters.recording.checked) p.set("recording", "yes");
  return p;
}

// The CSV links ask for what the list shows: the same filters (every matching call, not only this page).
function pointDownloads() {
  if (!downloads) return;
  const q = filterQuery().toString();
  downloads.querySelector("[data-testid=calls-csv]").href = "/api/calls.csv" + (q ? "?" + q : "");
  downloads.querySelector("[data-testid=calls-csv-comma]").href = "/api/calls.csv?" + (q ? q + "&" : "") + "sep=comma";
}

export async function loadHistory() {
  pointDownloads();
  const q = filterQuery();
  q.set("limit", String(PAGE));
  const res = await api("GET", "/api/calls?" + q.toString());
  if (!res.ok || !res.data) return;
  lastCalls = res.data.calls;
  render(lastCalls);
  more.hidden = lastCalls.length < PAGE;
}

async function loadMore() {
  const last = lastCalls[lastCalls.length - 1];
  if (!last) return;
  const q = filterQuery();
  q.set("limit", String(PAGE));
  q.set("before", String(last.id));
  const res = await api("GET", "/api/calls?" + q.toString());
  if (!res.ok || !res.data) return;
  lastCalls = lastCalls.concat(res.data.calls);
  render(lastCalls);
  more.hidden = res.data.calls.length < PAGE;
}

function detailFacts(call) {
  const rows = [];
  const fact = (key, value, testid) => { if (value) rows.push(el("dt", { i18n: key }), el("dd", { testid }, value)); };
  fact("page.fact.when", fmtFull(call.started_at));
  fact("page.fact.direction", words.direction(call.direction));
  fact("page.fact.outcome", outcomeText(call) + (call.missed_reason ? " — " + words.reason(call.missed_reason) : ""));
  // An outbound call "rings" only at the phone that placed it: nothing to say there.
  if (call.direction !== "outbound") fact("page.fact.rang", call.rang.join(", "));
  fact("page.fact.answered_by", words.who(call.answered_by_name, call.answered_by));
  // A call forwarded (or followed) to a mobile was answered there: the number, right after who answered it.
  fact("page.fact.answered_on", phone(call.answered_on, { where: "detail", callId: call.call_id }),
    "detail-answered-on");
  fact("page.fact.transferred_to", phone(call.transferred_to, { where: "detail", callId: call.call_id }),
    "detail-transferred");
  fact("page.fact.queue", call.queue);
  fact("page.fact.ring_time", call.ended_at ? fmtDuration(call.ring_seconds) : null);
  fact("page.fact.talk_time", call.ended_at && call.outcome === "answered" ? fmtDuration(call.talk_seconds) : null);
  fact("page.fact.result", words.result(call.result));
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
        call.party_name || (call.direction !== "outbound" && call.caller_name) || formatPhone(number)
          || t("page.card.unknown")),
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

function filterForm() {
  const choice = (name, values, prefix) => el("select", { name, testid: "calls-filter-" + name },
    el("option", { value: "", i18n: "crm.filter.any" }), values.map((v) => el("option", { value: v, i18n: prefix + v })));
  filters.from = el("input", { type: "date", name: "from", testid: "calls-filter-from" });
  filters.to = el("input", { type: "date", name: "to", testid: "calls-filter-to" });
  filters.direction = choice("direction", ["inbound", "outbound", "internal"], "page.direction.");
  filters.outcome = choice("outcome", ["answered", "missed"], "page.outcome.");
  filters.number = el("input", { type: "search", name: "number", inputMode: "tel", autocomplete: "off", testid: "calls-filter-number" });
  filters.recording = el("input", { type: "checkbox", name: "recording", testid: "calls-filter-recording" });
  const form = el("form", { className: "filters calls-filters", testid: "calls-filters", noValidate: true },
    field("page.calls.filter_from", filters.from), field("page.calls.filter_to", filters.to),
    field("page.fact.direction", filters.direction), field("page.fact.outcome", filters.outcome),
    field("page.calls.filter_number", filters.number),
    el("label", { className: "check" }, filters.recording, el("span", { i18n: "page.calls.filter_recording" })),
    el("div", { className: "form-foot" },
      el("button", { type: "submit", className: "btn primary small", i18n: "page.calls.apply", testid: "calls-filter-apply" }),
      el("button", { type: "button", className: "btn small", i18n: "page.calls.reset", onclick: () => {
        form.reset();
        if (filters.manager) filters.manager.value = "";
        location.hash = "#calls";
        loadHistory();
      } })));
  form.addEventListener("submit", (ev) => { ev.preventDefault(); loadHistory(); });
  if (isHead(me)) {
    managers().then((people) => {
      filters.manager = managerSelect(people, filters.pendingManager || "", { any: true, testid: "calls-filter-manager" });
      form.prepend(field("crm.filter.manager", filters.manager));
    });
  }
  return el("details", { className: "action calls-filter-box", testid: "calls-filter-box" },
    el("summary", { i18n: "page.calls.filters" }), form);
}

function downloadLinks() {
  downloads = el("p", { className: "downloads calls-downloads" },
    el("span", { i18n: "page.calls.download" }),
    el("a", { className: "btn small", href: "/api/calls.csv", testid: "calls-csv", attrs: { download: "" } }, "CSV"),
    el("a", { className: "btn small", href: "/api/calls.csv?sep=comma", testid: "calls-csv-comma",
      attrs: { download: "" }, i18n: "page.calls.csv_comma" }));
  return downloads;
}

// "#calls?manager=anna&from=2026-11-01&to=2026-12-01&outcome=missed" (the report's drill-down) fills the form.
function applyHash(rest) {
  const q = new URLSearchParams((rest || "").replace(/^\?/, ""));
  if (![...q.keys()].length || !filters.from) return;
  filters.from.value = q.get("from") || "";
  filters.to.value = q.get("to") ? shiftDay(q.get("to"), -1) : "";
  filters.direction.value = q.get("direction") || "";
  filters.outcome.value = q.get("outcome") || "";
  filters.number.value = q.get("number") || "";
  filters.recording.checked = q.get("recording") === "yes";
  filters.pendingManager = q.get("manager") || "";
  if (filters.manager) filters.manager.value = filters.pendingManager;
  const box = document.querySelector("[data-testid=calls-filter-box]");
  if (box) box.open = true;
}

function mount(section, manager) {
  me = manager;
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
    filterForm(), downloadLinks(), head, list, empty, more);
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
  async show(rest) {
    applyHash(rest);
    if (filters.pendingManager && !filters.manager) {
      // The head's manager picker arrives with the managers' list; the drill-down waits for it.
      await managers();
      await new Promise((resolve) => setTimeout(resolve, 0));
      if (filters.manager) filters.manager.value = filters.pendingManager;
    }
    await loadHistory();
  },
  onMessage(msg) {
    // A ringing phone comes first: the detail (a modal that would cover the card) steps aside; what was
    // typed in it is kept for when it is opened again.
    if (msg.type === "call.ringing" && dialog && dialog.open) dialog.close();
    // The call service writes the final record right after it tells us; give it a moment.
    if (msg.type === "call.ended") setTimeout(loadHistory, 1500);
  },
  onLanguage() { if (list) { list.replaceChildren(); loadHistory(); } },
});
