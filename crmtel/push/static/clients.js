// Clients and leads: a searchable, filterable list (a table on a desk, stacked rows on a phone) paged by a
// cursor, and a record's card (#clients/client/12, #clients/lead/5) built by party.js.
import { api } from "./api.js";
import { crmSettings, errorText, field, managerSelect, managers, statusLine } from "./crm.js";
import { el, setText } from "./dom.js";
import { fmtDateTime, fmtFull, fmtMoney, t } from "./i18n.js";
import { onCallMessage, openParty } from "./party.js";
import { phone } from "./phone.js";
import { registerView } from "./views.js";

let me = null;
let root = null;
let listBox = null;
let cardBox = null;
let rows = null;
let more = null;
let empty = null;
let count = null;
let kind = "client";
let next = null;
let timer = null;
let seq = 0;
const form = {};

function query(cursor) {
  const p = new URLSearchParams();
  const q = form.q.value.trim();
  if (q) p.set("q", q);
  if (form.manager.value) p.set("manager", form.manager.value);
  if (form.deals.value) p.set("open_deals", form.deals.value);
  if (form.silent.value) p.set("silent_days", form.silent.value);
  if (kind === "lead" && form.status.value) p.set("status", form.status.value);
  p.set("sort", form.sort.value);
  if (cursor) p.set("cursor", cursor);
  return p.toString();
}

function row(item) {
  const href = `#clients/${item.kind}/${item.id}`;
  const sub = item.kind === "lead" ? item.company : item.category ? t("page.category." + item.category) : "";
  return el("li", { className: "party-row", testid: "party-row", dataset: { id: String(item.id), kind: item.kind } },
    el("span", { className: "p-name" }, el("a", { href, className: "party-link", testid: "party-open" }, item.name),
      sub ? el("span", { className: "muted" }, sub) : null,
      item.status ? el("span", { className: "badge", dataset: { status: item.status } }, t("crm.lead_status." + item.status)) : null),
    el("span", { className: "p-phones" }, item.phones.map((p) => phone(p.e164, { where: "list", name: item.name, display: p.display }))),
    el("span", { className: "p-manager" }, item.manager_name || el("span", { className: "muted", i18n: "crm.unassigned" })),
    el("span", { className: "p-deals" }, item.open_deals
      ? el("span", { className: "badge deals" }, t("crm.open_deals_count", { count: item.open_deals })) : ""),
    el("span", { className: "p-last" }, item.last_call_at
      ? el("time", { dateTime: item.last_call_at, title: fmtFull(item.last_call_at) }, fmtDateTime(item.last_call_at, { always: true }))
      : el("span", { className: "muted", i18n: "crm.never_called" })),
    el("span", { className: "p-turnover" }, item.turnover ? fmtMoney(item.turnover) : ""));
}

// The CSV links ask for what the list shows: the same search, filters and sort (every match, not one page).
function pointDownloads() {
  const base = `/api/${kind === "lead" ? "leads" : "clients"}.csv?` + query(null);
  form.csv.href = base;
  form.csvComma.href = base + "&sep=comma";
}

async function load(append) {
  const mine = ++seq;
  if (!append) pointDownloads();
  const res = await api("GET", `/api/${kind === "lead" ? "leads" : "clients"}?` + query(append ? next : null));
  if (mine !== seq || !res.ok || !res.data) return;
  const items = res.data.items.map(row);
  if (append) rows.append(...items); else rows.replaceChildren(...items);
  next = res.data.next;
  more.hidden = !next;
  empty.hidden = rows.children.length > 0;
  setText(count, t("crm.shown", { count: rows.children.length }) + (next ? "+" : ""));
}

function refresh() { clearTimeout(timer); timer = setTimeout(() => load(false), 200); }

// The switch goes through the address (#clients, #clients/leads), so the back link of a card, a bookmark and
// the browser's back button open the list they name.
const hashOf = (value) => (value === "lead" ? "#clients/leads" : "#clients");
function pick(value) {
  if (location.hash === hashOf(value)) setKind(value); else location.hash = hashOf(value);
}

function setKind(value) {
  kind = value;
  for (const b of root.querySelectorAll(".kind-switch button")) b.setAttribute("aria-pressed", String(b.dataset.kind === kind));
  form.statusField.hidden = kind !== "lead";
  setText(form.newButton, t(kind === "lead" ? "crm.new_lead" : "crm.new_client"));
  load(false);
}

// A new record: a name and a number are enough to start; the card takes the rest.
function newForm() {
  const name = el("input", { type: "text", maxLength: 300, autocomplete: "off", testid: "new-name" });
  const number = el("input", { type: "tel", inputMode: "tel", autocomplete: "off", testid: "new-phone" });
  const msg = statusLine("new-msg");
  const node = el("form", { className: "new-party", testid: "new-party", hidden: true, noValidate: true },
    field("crm.field.name", name), field("crm.field.phone", number),
    el("div", { className: "form-foot" }, el("button", { type: "submit", className: "btn primary", i18n: "crm.create", testid: "new-save" }), msg));
  node.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!name.value.trim()) { name.focus(); return; }
    const body = { name: name.value.trim(), phones: number.value.trim() ? [{ number: number.value.trim() }] : [] };
    const res = await api("POST", `/api/${kind === "lead" ? "leads" : "clients"}`, body);
    if (res.ok) { name.value = number.value = ""; node.hidden = true; location.hash = `#clients/${kind}/${res.data.id}`; }
    else msg.say(errorText(res), false);
  });
  return node;
}

function createParty() {
  form.newForm.hidden = !form.newForm.hidden;
  if (!form.newForm.hidden) form.newForm.querySelector("input").focus();
}

function mount(section, manager) {
  me = manager;
  root = section;
  form.q = el("input", { type: "search", name: "q", autocomplete: "off", testid: "party-search",
    i18nAttrs: { placeholder: "crm.search_placeholder" }, oninput: refresh });
  form.manager = managerSelect([], "", { any: true, none: true, testid: "filter-manager" });
  form.manager.addEventListener("change", refresh);
  form.deals = el("select", { testid: "filter-deals", onchange: refresh },
    el("option", { value: "", i18n: "crm.filter.any" }),
    el("option", { value: "yes", i18n: "crm.filter.has_open_deals" }),
    el("option", { value: "no", i18n: "crm.filter.no_open_deals" }));
  form.silent = el("select", { testid: "filter-silent", onchange: refresh },
    el("option", { value: "", i18n: "crm.filter.any" }),
    ...[7, 30, 90].map((n) => el("option", { value: String(n), i18n: "crm.filter.silent_days", i18nParams: { count: n } })));
  form.status = el("select", { testid: "filter-status", onchange: refresh },
    el("option", { value: "", i18n: "crm.filter.any" }),
    ...["new", "in_work", "converted", "refused"].map((s) => el("option", { value: s, i18n: "crm.lead_status." + s })));
  form.sort = el("select", { testid: "sort", onchange: refresh },
    el("option", { value: "name", i18n: "crm.sort.name" }),
    el("option", { value: "-name", i18n: "crm.sort.name_desc" }),
    el("option", { value: "-created", i18n: "crm.sort.created" }));
  form.statusField = field("crm.filter.status", form.status);
  form.newForm = newForm();
  form.newButton = el("button", { type: "button", className: "btn primary", testid: "party-new", onclick: createParty });
  count = el("span", { className: "muted", testid: "party-count", attrs: { "aria-live": "polite" } });
  form.csv = el("a", { className: "btn small", href: "/api/clients.csv", testid: "party-csv", attrs: { download: "" } }, "CSV");
  form.csvComma = el("a", { className: "btn small", href: "/api/clients.csv?sep=comma", testid: "party-csv-comma",
    attrs: { download: "" }, i18n: "crm.csv.comma" });
  rows = el("ol", { className: "party-list", testid: "party-list", attrs: { "aria-labelledby": "clients-title" } });
  empty = el("p", { className: "empty", i18n: "crm.list_empty", hidden: true, testid: "party-empty" });
  more = el("button", { type: "button", className: "btn", i18n: "page.history.more", hidden: true, testid: "party-more",
    onclick: () => load(true) });
  const switcher = el("div", { className: "kind-switch", attrs: { role: "group", "aria-label": t("crm.kind_switch") } },
    el("button", { type: "button", className: "btn small", dataset: { kind: "client" }, testid: "kind-clients",
      i18n: "crm.clients", onclick: () => pick("client") }),
    el("button", { type: "button", className: "btn small", dataset: { kind: "lead" }, testid: "kind-leads",
      i18n: "crm.leads", onclick: () => pick("lead") }));
  listBox = el("div", { className: "party-list-view" },
    el("div", { className: "section-head" }, el("h1", { id: "clients-title", i18n: "crm.title" }), switcher, form.newButton),
    form.newForm,
    el("div", { className: "filters" },
      el("div", { className: "field grow" }, el("label", { htmlFor: "party-q", i18n: "crm.search" }),
        Object.assign(form.q, { id: "party-q" }),
        el("small", { className: "muted", i18n: "crm.search_hint" })),
      field("crm.filter.manager", form.manager), field("crm.filter.deals", form.deals),
      field("crm.filter.silent", form.silent), form.statusField, field("crm.sort.label", form.sort)),
    el("div", { className: "list-meta" }, count,
      el("span", { className: "downloads" }, el("span", { i18n: "crm.csv.parties_download" }), form.csv, form.csvComma)),
    el("div", { className: "party-cols", attrs: { "aria-hidden": "true" } },
      ["name", "phones", "manager", "deals", "last", "turnover"].map((c) => el("span", { className: "p-" + c, i18n: "crm.col." + c }))),
    rows, empty, more);
  cardBox = el("div", { className: "party-card-view", testid: "party-card-view", hidden: true });
  section.append(listBox, cardBox);
  managers().then((list) => {
    const fresh = managerSelect(list, "", { any: true, none: true, testid: "filter-manager" });
    fresh.id = form.manager.id;
    fresh.addEventListener("change", refresh);
    form.manager.replaceWith(fresh);
    form.manager = fresh;
  });
  crmSettings();
  form.statusField.hidden = true;
  setText(form.newButton, t("crm.new_client"));
  for (const b of switcher.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b.dataset.kind === kind));
}

async function show(rest) {
  const [what, id] = (rest || "").split("/");
  if ((what === "client" || what === "lead") && /^\d+$/.test(id || "")) {
    listBox.hidden = true;
    cardBox.hidden = false;
    await openParty(cardBox, what, Number(id), me);
    return;
  }
  cardBox.hidden = true;
  cardBox.replaceChildren();
  listBox.hidden = false;
  const wanted = what === "leads" ? "lead" : "client";
  if (kind !== wanted) { setKind(wanted); return; }
  load(false);
}

registerView({
  id: "clients",
  labelKey: "crm.nav",
  order: 15,
  mount,
  show,
  onMessage: onCallMessage,
  onLanguage() {
    // Called after a language switch, also one made before this view was mounted.
    if (!listBox) return;
    if (!listBox.hidden) load(false);
    setText(form.newButton, t(kind === "lead" ? "crm.new_lead" : "crm.new_client"));
  },
});

