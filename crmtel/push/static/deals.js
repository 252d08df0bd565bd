// Deals: the pipeline (a column per configured stage, sums in RUB) and the list; a deal is moved between
// stages, won, or lost with a reason, right where it is shown.
import { api } from "./api.js";
import { crmSettings, errorText, field, isHead, lostReasonName, managerSelect, managers, stageName, statusLine } from "./crm.js";
import { el } from "./dom.js";
import { fmtDateTime, fmtMoney, t } from "./i18n.js";
import { phone } from "./phone.js";
import { registerView } from "./views.js";

let me = null;
let board = null;
let list = null;
let more = null;
let mode = "pipeline";
let next = null;
const form = {};
let settings = null;

function partyLink(d) {
  if (d.client_id) return el("a", { href: "#clients/client/" + d.client_id }, d.party_name || "—");
  if (d.lead_id) return el("a", { href: "#clients/lead/" + d.lead_id }, d.party_name || "—");
  return el("span", { className: "muted" }, "—");
}

async function change(deal, body, msg) {
  const res = await api("PATCH", "/api/deals/" + deal.id, body);
  if (res.ok) await refresh(); else msg.say(errorText(res), false);
}

function dealActions(deal) {
  const msg = statusLine("deal-action-msg");
  if (deal.status !== "open") {
    return el("div", { className: "deal-actions" },
      el("span", { className: "badge", dataset: { status: deal.status } }, t("crm.deal_status." + deal.status)),
      deal.lost_reason ? el("span", { className: "muted" }, lostReasonName(deal.lost_reason)) : null,
      el("button", { type: "button", className: "btn small", i18n: "crm.reopen", onclick: () => change(deal, { status: "open" }, msg) }), msg);
  }
  const stage = el("select", { testid: "deal-stage", i18nAttrs: { "aria-label": "crm.field.stage" },
    onchange: () => change(deal, { stage: stage.value }, msg) },
    settings.stages.map((s) => el("option", { value: s, selected: s === deal.stage }, stageName(s))),
    settings.stages.includes(deal.stage) ? null : el("option", { value: deal.stage, selected: true }, stageName(deal.stage)));
  const reason = el("select", { testid: "deal-lost-reason", i18nAttrs: { "aria-label": "crm.lost_reason" } },
    el("option", { value: "", i18n: "crm.lost_reason" }),
    settings.lost_reasons.map((r) => el("option", { value: r }, lostReasonName(r))));
  const lose = el("div", { className: "lose", hidden: true }, reason,
    el("button", { type: "button", className: "btn small", i18n: "crm.confirm_lost", testid: "deal-lost-confirm",
      onclick: () => { if (!reason.value) { reason.focus(); msg.say(t("crm.lost_reason_required"), false); return; }
        change(deal, { status: "lost", lost_reason: reason.value }, msg); } }));
  return el("div", { className: "deal-actions" }, stage,
    el("button", { type: "button", className: "btn small won", i18n: "crm.won", testid: "deal-won",
      onclick: () => change(deal, { status: "won" }, msg) }),
    el("button", { type: "button", className: "btn small lost", i18n: "crm.lost", testid: "deal-lost",
      onclick: () => { lose.hidden = !lose.hidden; } }), lose, msg);
}

function dealCard(d) {
  return el("li", { className: "deal-card", testid: "deal-card", dataset: { id: String(d.id), status: d.status } },
    el("div", { className: "deal-title" }, d.title),
    el("div", { className: "deal-line" }, partyLink(d), el("span", { className: "money" }, fmtMoney(d.amount))),
    // The party's numbers, each called with one click like on its card (the server sends only numbers of a
    // party the reader may see).
    d.phones && d.phones.length ? el("div", { className: "deal-phones", testid: "deal-phones" },
      d.phones.map((p) => phone(p.e164, { where: "deal", name: d.party_name, display: p.display }))) : null,
    el("div", { className: "muted deal-line" }, d.manager_name || t("crm.unassigned"),
      d.next_step ? " · " + d.next_step + (d.next_step_at ? " " + fmtDateTime(d.next_step_at, { always: true }) : "") : ""),
    d.call_id ? el("div", { className: "muted", i18n: "crm.from_call" }) : null,
    dealActions(d));
}

function managerParam() {
  return form.manager && form.manager.value ? "manager=" + encodeURIComponent(form.manager.value) : "";
}

async function loadPipeline() {
  const res = await api("GET", "/api/deals/pipeline?" + managerParam());
  if (!res.ok || !res.data) return;
  board.replaceChildren(...res.data.stages.map((c) => el("section", { className: "stage", testid: "stage", dataset: { stage: c.stage } },
    el("header", { className: "stage-head" }, el("h2", {}, stageName(c.stage)),
      el("span", { className: "muted" }, t("crm.deals_count", { count: c.count }) + " · " + fmtMoney(c.amount))),
    el("ol", { className: "stage-deals" }, c.deals.map(dealCard)))));
}

async function loadList(append) {
  const p = new URLSearchParams();
  if (form.status.value) p.set("status", form.status.value);
  if (form.manager && form.manager.value) p.set("manager", form.manager.value);
  // The CSV links ask for what the list shows: the same filters, every matching deal.
  const q = p.toString();
  form.csv.href = "/api/deals.csv" + (q ? "?" + q : "");
  form.csvComma.href = "/api/deals.csv?" + (q ? q + "&" : "") + "sep=comma";
  if (append && next) p.set("cursor", next);
  const res = await api("GET", "/api/deals?" + p.toString());
  if (!res.ok || !res.data) return;
  const items = res.data.items.map(dealCard);
  if (append) list.append(...items); else list.replaceChildren(...items);
  next = res.data.next;
  more.hidden = !next;
  if (!list.children.length) list.append(el("li", { className: "empty", i18n: "crm.deals_empty" }));
}

async function refresh() {
  board.hidden = mode !== "pipeline";
  form.listBox.hidden = mode !== "list";
  for (const b of form.modes) b.setAttribute("aria-pressed", String(b.dataset.mode === mode));
  if (mode === "pipeline") await loadPipeline(); else await loadList(false);
}

async function mount(section, manager) {
  me = manager;
  board = el("div", { className: "pipeline", testid: "pipeline" });
  list = el("ol", { className: "deal-list", testid: "deal-list" });
  more = el("button", { type: "button", className: "btn", i18n: "page.history.more", hidden: true, onclick: () => loadList(true) });
  form.status = el("select", { testid: "deal-status-filter", onchange: () => loadList(false) },
    el("option", { value: "", i18n: "crm.filter.any" }),
    ["open", "won", "lost"].map((s) => el("option", { value: s, i18n: "crm.deal_status." + s })));
  form.csv = el("a", { className: "btn small", href: "/api/deals.csv", testid: "deals-csv", attrs: { download: "" } }, "CSV");
  form.csvComma = el("a", { className: "btn small", href: "/api/deals.csv?sep=comma", testid: "deals-csv-comma",
    attrs: { download: "" }, i18n: "crm.csv.comma" });
  form.listBox = el("div", { className: "deal-list-box", hidden: true }, field("crm.filter.status", form.status),
    el("p", { className: "downloads" }, el("span", { i18n: "crm.csv.download" }), form.csv, form.csvComma), list, more);
  form.modes = ["pipeline", "list"].map((m) => el("button", { type: "button", className: "btn small", dataset: { mode: m },
    testid: "deals-mode-" + m, i18n: "crm.deals_mode." + m, onclick: () => { mode = m; refresh(); } }));
  const filters = el("div", { className: "filters" });
  section.append(el("div", { className: "section-head" }, el("h1", { i18n: "crm.deals_title" }),
    el("div", { className: "kind-switch", attrs: { role: "group" } }, form.modes)), filters, board, form.listBox);
  settings = await crmSettings();
  if (isHead(me)) {
    form.manager = managerSelect(await managers(), "", { any: true, testid: "deal-manager-filter" });
    form.manager.addEventListener("change", refresh);
    filters.append(field("crm.filter.manager", form.manager));
  }
}

registerView({
  id: "deals",
  labelKey: "crm.deals_nav",
  order: 17,
  mount,
  async show() { if (!settings) settings = await crmSettings(); await refresh(); },
  onLanguage() { if (board) refresh(); },
});

