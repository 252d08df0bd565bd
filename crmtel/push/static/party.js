// A client's or lead's card: the details as an edit form (checked by the server, each problem shown at its
// field), the audit trail, conversion, merge and sharing, and the timeline (calls with recordings and their
// notes, notes, deals, tasks) with forms to add a note, a deal or a task.
import { api } from "./api.js";
import {
  crmSettings, errorText, field, isHead, localParts, lostReasonName, managerSelect, managers, phoneKindName, stageName,
  statusLine, taskKindName, zonedInstant,
} from "./crm.js";
import { el } from "./dom.js";
import { fmtDateTime, fmtDuration, fmtFull, fmtMoney, t } from "./i18n.js";
import { formatPhone, phone } from "./phone.js";
import * as words from "./words.js";

const base = (kind) => (kind === "lead" ? "/api/leads/" : "/api/clients/");

function textInput(name, value, { type = "text", max = 300 } = {}) {
  return el("input", { type, name, value: value || "", maxLength: max, autocomplete: "off" });
}

function phoneRow(p, kinds) {
  const number = el("input", { type: "tel", name: "number", value: p.display || p.e164 || "", autocomplete: "off",
    inputMode: "tel", testid: "phone-input", i18nAttrs: { "aria-label": "crm.field.phone" } });
  const kind = el("select", { name: "kind", i18nAttrs: { "aria-label": "crm.field.phone_kind" } },
    el("option", { value: "", i18n: "crm.phone_kind.none" }),
    kinds.map((k) => el("option", { value: k, selected: p.kind === k }, phoneKindName(k))));
  const node = el("div", { className: "phone-row", testid: "phone-row" }, number, kind,
    el("button", { type: "button", className: "btn small ghost-dark", i18n: "crm.remove", onclick: () => node.remove() }));
  node.value = () => ({ number: number.value.trim(), kind: kind.value || null });
  return node;
}

function contactRow(c) {
  const name = textInput("name", c.name);
  const position = textInput("position", c.position);
  const email = textInput("email", c.email, { type: "email" });
  const phones = textInput("phones", (c.phones || []).map((p) => p.display || p.e164).join(", "));
  const node = el("fieldset", { className: "contact-row", testid: "contact-row" },
    el("legend", { i18n: "crm.field.contact" }),
    field("crm.field.name", name), field("crm.field.position", position), field("crm.field.email", email),
    field("crm.field.phones", phones),
    el("button", { type: "button", className: "btn small ghost-dark", i18n: "crm.remove", onclick: () => node.remove() }));
  node.value = () => ({
    id: c.id || null, name: name.value.trim(), position: position.value.trim() || null, email: email.value.trim() || null,
    phones: phones.value.split(/[,;]/).map((s) => s.trim()).filter(Boolean).map((number) => ({ number })),
  });
  return node;
}

// The details form; save() sends only what the form holds, the server checks and audits it.
function detailsForm(card, me, list, settings, onSaved, said) {
  const client = card.kind === "client";
  const inputs = {};
  const add = (name, node) => { inputs[name] = node; return node; };
  const fields = [
    field("crm.field.name", add("name", textInput("name", card.name))),
  ];
  if (!client) fields.push(field("crm.field.company", add("company", textInput("company", card.company))));
  if (client) {
    fields.push(el("label", { className: "check" }, add("person", el("input", { type: "checkbox", checked: card.person })),
      el("span", { i18n: "crm.field.person" })));
    fields.push(field("crm.field.category", add("category", el("select", {},
      el("option", { value: "", i18n: "crm.none" }),
      ["retail", "wholesale"].map((c) => el("option", { value: c, selected: card.category === c, i18n: "page.category." + c }))))));
  }
  const manager = managerSelect(list, card.manager_id ? (list.find((m) => m.id === card.manager_id) || {}).login : "none",
    { none: true, testid: "card-manager" });
  manager.disabled = !card.can_assign;
  fields.push(field("crm.field.manager", add("manager", manager)));
  fields.push(field("crm.field.email", add("email", textInput("email", card.email, { type: "email" }))));
  if (client) {
    fields.push(field("crm.field.inn", add("inn", el("input", { type: "text", value: card.inn || "", inputMode: "numeric",
      maxLength: 12, autocomplete: "off" }))));
    fields.push(field("crm.field.turnover", add("turnover", el("input", { type: "text", inputMode: "decimal",
      value: card.turnover ? Number(card.turnover).toLocaleString(document.documentElement.lang) : "" }))));
    fields.push(field("crm.field.tags", add("tags", textInput("tags", card.tags.join(", "))), { hint: "crm.hint.tags" }));
    fields.push(el("label", { className: "check" }, add("stop_list", el("input", { type: "checkbox", checked: card.stop_list })),
      el("span", { i18n: "page.card.stop_list" })));
  } else {
    fields.push(field("crm.field.status", add("status", el("select", {},
      ["new", "in_work", "refused"].map((s) => el("option", { value: s, selected: card.status === s, i18n: "crm.lead_status." + s })),
      card.status === "converted" ? el("option", { value: "", selected: true, disabled: true, i18n: "crm.lead_status.converted" }) : null))));
    fields.push(field("crm.field.refusal_reason", add("refusal_reason", textInput("refusal_reason", card.refusal_reason))));
  }
  const phones = el("div", { className: "phone-rows", testid: "phone-rows" }, card.phones.map((p) => phoneRow(p, settings.phone_kinds)));
  const phonesBox = el("fieldset", { className: "phones" }, el("legend", { i18n: "crm.field.phones" }), phones,
    el("button", { type: "button", className: "btn small", testid: "phone-add", i18n: "crm.add_phone",
      onclick: () => phones.append(phoneRow({}, settings.phone_kinds)) }));
  let contacts = null;
  let contactsBox = null;
  if (client) {
    contacts = el("div", { className: "contact-rows" }, card.contacts.map(contactRow));
    contactsBox = el("fieldset", { className: "contacts" }, el("legend", { i18n: "crm.field.contacts" }), contacts,
      el("button", { type: "button", className: "btn small", testid: "contact-add", i18n: "crm.add_contact",
        onclick: () => contacts.append(contactRow({})) }));
  }
  const comment = client ? field("crm.field.comment", add("comment", el("textarea", { rows: 3, maxLength: 5000, value: card.comment || "" }))) : null;
  const msg = statusLine("card-msg");
  if (said) msg.say(said, true);
  const save = el("button", { type: "submit", className: "btn primary", testid: "card-save", i18n: "page.action.save" });
  const form = el("form", { className: "party-form", testid: "party-form", noValidate: true },
    el("div", { className: "form-grid" }, fields), phonesBox, contactsBox, comment,
    el("div", { className: "form-foot" }, save, msg));
  let version = card.version;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    for (const bad of form.querySelectorAll("[aria-invalid]")) bad.removeAttribute("aria-invalid");
    for (const old of form.querySelectorAll(".field-error")) old.remove();
    const body = { version, name: inputs.name.value, email: inputs.email.value.trim(),
      phones: [...phones.children].map((r) => r.value()).filter((p) => p.number) };
    if (!manager.disabled) body.manager = manager.value || "none";
    if (client) {
      Object.assign(body, { person: inputs.person.checked, category: inputs.category.value, inn: inputs.inn.value.trim(),
        turnover: inputs.turnover.value, stop_list: inputs.stop_list.checked, comment: inputs.comment.value,
        tags: inputs.tags.value.split(",").map((s) => s.trim()).filter(Boolean),
        contacts: [...contacts.children].map((r) => r.value()).filter((c) => c.name) });
    } else {
      Object.assign(body, { company: inputs.company.value, refusal_reason: inputs.refusal_reason.value });
      if (inputs.status.value) body.status = inputs.status.value;
    }
    save.disabled = true;
    msg.say(t("page.action.saving"), true);
    const res = await api("PATCH", base(card.kind) + card.id, body);
    save.disabled = false;
    if (res.ok) {
      version = res.data.card.version;
      const dups = res.data.duplicates.map((d) => d.name).join("; ");
      onSaved(res.data.card, res.data.changed.length
        ? t("crm.saved") + (dups ? " " + t("crm.duplicates", { names: dups }) : "") : t("crm.nothing_changed"));
    } else {
      msg.say(errorText(res), false);
      for (const f of (res.data && res.data.fields) || []) {
        const name = f.field === "amount" ? "turnover" : f.field.split(".")[0];
        let target = inputs[name];
        if (name === "phones") target = phones.querySelectorAll("input")[Number(f.field.split(".")[1]) || 0];
        if (!target) continue;
        target.setAttribute("aria-invalid", "true");
        target.after(el("small", { className: "field-error", attrs: { role: "alert" } }, f.message));
      }
    }
  });
  return form;
}

function auditList(card) {
  if (!card.audit.length) return null;
  const describe = (a) => {
    const changes = Object.entries(a.changes).map(([k, v]) => {
      const label = t("crm.audit_field." + k);
      const name = label === "crm.audit_field." + k ? k : label;
      if (Array.isArray(v) && v.length === 2) {
        // Numbers as the page writes them, kinds in the reader's language ("+74951112233 (work)").
        const number = (x) => {
          const m = /^(\+?\d+)(?: \((\w+)\))?$/.exec(x);
          return m ? formatPhone(m[1]) + (m[2] ? " (" + phoneKindName(m[2]) + ")" : "") : x;
        };
        const item = (x) => (k === "phones" ? number(String(x)) : String(x));
        const show = (x) => (x === null || x === undefined || x === "" ? "—" : Array.isArray(x) ? x.map(item).join(", ") || "—" : item(x));
        return `${name}: ${show(v[0])} → ${show(v[1])}`;
      }
      return `${name}: ${typeof v === "object" ? JSON.stringify(v) : String(v)}`;
    });
    return changes.join("; ");
  };
  return el("details", { className: "audit", testid: "audit" },
    el("summary", { i18n: "crm.audit" }),
    el("ul", {}, card.audit.map((a) => el("li", { testid: "audit-entry" },
      el("time", { dateTime: a.at, title: fmtFull(a.at) }, fmtDateTime(a.at, { always: true })), " · ",
      el("strong", {}, a.manager_name || "—"), " · ", t("crm.audit_action." + a.action), ": ", describe(a)))));
}

function timelineItem(item) {
  const when = el("time", { dateTime: item.at, title: fmtFull(item.at), className: "muted" }, fmtDateTime(item.at, { always: true }));
  if (item.type === "call") {
    const state = item.outcome || "live";
    const audio = item.recording && item.outcome ? el("audio", { controls: true, preload: "none", src: item.recording, testid: "timeline-audio",
      i18nAttrs: { "aria-label": "page.history.recording" } }) : null;
    return el("li", { className: "tl-item tl-call", testid: "timeline-call", dataset: { outcome: state, callId: item.call_id } },
      el("div", { className: "tl-head" }, when,
        el("span", { className: "badge c-dir", dataset: { direction: item.direction } }, words.direction(item.direction)),
        el("span", { className: "badge c-outcome", dataset: { outcome: state } }, item.outcome ? words.outcome(item.outcome) : t("page.outcome.in_progress")),
        item.outcome === "answered" ? el("span", {}, fmtDuration(item.talk_seconds)) : null,
        item.answered_by ? el("span", { className: "muted", testid: "timeline-answered-by" }, words.who(item.answered_by_name, item.answered_by)) : null,
        item.manager_name ? el("span", { className: "muted", testid: "timeline-owner" }, t("crm.responsible", { name: item.manager_name })) : null,
        phone(item.number, { where: "timeline", display: item.number_display })),
      audio,
      item.notes.length ? el("ul", { className: "tl-notes" }, item.notes.map((n) => el("li", { testid: "timeline-call-note" },
        [n.topic, n.result, n.comment].filter(Boolean).join(" · ")))) : null);
  }
  if (item.type === "note") {
    return el("li", { className: "tl-item tl-note", testid: "timeline-note" },
      el("div", { className: "tl-head" }, when, el("span", { className: "badge", i18n: "crm.note" }), el("span", { className: "muted" }, item.manager_name || "")),
      el("p", { className: "tl-text" }, item.text));
  }
  if (item.type === "deal") {
    return el("li", { className: "tl-item tl-deal", testid: "timeline-deal" },
      el("div", { className: "tl-head" }, when, el("span", { className: "badge deals", i18n: "crm.deal" }),
        el("strong", {}, item.title), el("span", { className: "money" }, fmtMoney(item.amount)),
        el("span", { className: "muted" }, item.status === "open" ? stageName(item.stage) : t("crm.deal_status." + item.status)
          + (item.lost_reason ? " (" + lostReasonName(item.lost_reason) + ")" : ""))));
  }
  return el("li", { className: "tl-item tl-task", testid: "timeline-task", dataset: { status: item.status } },
    el("div", { className: "tl-head" }, when, el("span", { className: "badge", i18n: "crm.task" }), el("strong", {}, item.title),
      el("span", { className: "muted" }, t("crm.task_status." + item.status) + (item.closed_by_call ? " · " + t("crm.closed_by_call") : "")),
      item.result ? el("span", {}, item.result) : null));
}

// The timeline of a record into `box`, newest first, with "more".
const entryOf = (box, callId) =>
  [...box.querySelectorAll("[data-testid=timeline-call]")].find((n) => n.dataset.callId === callId);
// A call's entry is settled once it is listed and, for a call that ended, has its outcome (not «Идёт»).
const settled = (box, { call, ended }) => {
  const entry = entryOf(box, call);
  return Boolean(entry) && (!ended || entry.dataset.outcome !== "live");
};
// The page hears of a call before its record is written (the call service writes beside tracking), so a
// timeline read at once may miss it or, once it ended, still show it in progress: read again until it is
// settled (``settle``: {call, ended}), ~8 s at most.
const SETTLE_WAITS = [300, 600, 1200, 2000, 4000];

export async function timeline(box, kind, id, { limit = 20, compact = false, settle = null } = {}) {
  const list = el("ol", { className: "timeline" + (compact ? " compact" : ""), testid: "timeline" });
  const more = el("button", { type: "button", className: "btn small", i18n: "page.history.more", hidden: true, testid: "timeline-more" });
  let cursor = null;
  const load = async () => {
    const res = await api("GET", base(kind) + id + "/timeline?limit=" + limit + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    if (!res.ok || !res.data) return false;
    list.append(...res.data.items.map(timelineItem));
    cursor = res.data.next;
    more.hidden = compact || !cursor;
    if (!list.children.length) list.append(el("li", { className: "muted", i18n: "crm.timeline_empty" }));
    return true;
  };
  more.addEventListener("click", load);
  // The first page read again in place (what is shown stays until the fresh one has arrived).
  const first = async () => {
    const res = await api("GET", base(kind) + id + "/timeline?limit=" + limit);
    if (!res.ok || !res.data || !box.contains(list)) return false;
    list.replaceChildren(...res.data.items.map(timelineItem));
    cursor = res.data.next;
    more.hidden = compact || !cursor;
    return true;
  };
  // Reads the first page again until `want` is settled; one loop per call and state at a time.
  const running = new Set();
  const follow = async (want, readFirst) => {
    const key = want.call + (want.ended ? "/ended" : "/live");
    if (running.has(key)) return;
    running.add(key);
    try {
      if (readFirst && !(await first())) return;
      for (const wait of SETTLE_WAITS) {
        if (settled(box, want)) return;
        await new Promise((resolve) => setTimeout(resolve, wait));
        if (!box.contains(list) || !(await first())) return;
      }
    } finally {
      running.delete(key);
    }
  };
  box.replaceChildren(list, more);
  box.followCall = (want) => follow(want, true);
  const ok = await load();
  if (ok && settle) follow(settle, false);
  return ok;
}

// The party page open now: its timeline follows the calls of that party as they start and end.
let openNow = null;

export function onCallMessage(msg) {
  if (!openNow || !openNow.box.isConnected || !msg.call_id) return;
  const { kind, id, calls, box } = openNow;
  if (msg.card && msg.card.kind === kind && msg.card.party_id === id) calls.add(msg.call_id);
  if (!calls.has(msg.call_id) && !entryOf(box, msg.call_id)) return;
  if (msg.type === "call.ended") openNow.reload({ call: msg.call_id, ended: true });
  else if (!entryOf(box, msg.call_id)) openNow.reload({ call: msg.call_id, ended: false });
}

function quickForms(card, me, settings, reload) {
  const noteText = el("textarea", { rows: 2, maxLength: 5000, testid: "note-text" });
  const noteMsg = statusLine("note-msg");
  const note = el("form", { className: "quick", noValidate: true }, field("crm.add_note", noteText),
    el("div", { className: "form-foot" }, el("button", { type: "submit", className: "btn primary small", i18n: "page.action.save", testid: "note-save" }), noteMsg));
  note.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!noteText.value.trim()) { noteText.focus(); return; }
    const res = await api("POST", base(card.kind) + card.id + "/notes", { text: noteText.value });
    if (res.ok) { noteText.value = ""; noteMsg.say(t("page.action.saved"), true); reload(); } else noteMsg.say(errorText(res), false);
  });
  const dealTitle = textInput("title", "");
  const dealAmount = el("input", { type: "text", inputMode: "decimal", autocomplete: "off" });
  const dealStage = el("select", {}, settings.stages.map((s) => el("option", { value: s }, stageName(s))));
  const dealMsg = statusLine("deal-msg");
  const deal = el("form", { className: "quick", noValidate: true },
    field("page.field.deal_title", dealTitle), field("page.field.amount", dealAmount), field("crm.field.stage", dealStage),
    el("div", { className: "form-foot" }, el("button", { type: "submit", className: "btn primary small", i18n: "page.action.save", testid: "deal-save" }), dealMsg));
  deal.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const res = await api("POST", "/api/deals", { kind: card.kind, party_id: card.id, title: dealTitle.value,
      amount: dealAmount.value, stage: dealStage.value });
    if (res.ok) { dealTitle.value = dealAmount.value = ""; dealMsg.say(t("page.action.saved"), true); reload(); } else dealMsg.say(errorText(res), false);
  });
  const tomorrow = localParts(new Date(Date.now() + 86400000).toISOString()).date;
  const taskTitle = textInput("title", t("crm.default_task_title"));
  const taskKind = el("select", {}, settings.task_kinds.map((k) => el("option", { value: k }, taskKindName(k))));
  const taskDate = el("input", { type: "date", testid: "task-date", value: tomorrow });
  const taskTime = el("input", { type: "time", testid: "task-time", value: "10:00", step: 300 });
  const taskMsg = statusLine("task-msg");
  const task = el("form", { className: "quick", noValidate: true },
    field("crm.field.task_title", taskTitle), field("crm.field.task_kind", taskKind),
    el("div", { className: "when" }, field("crm.field.date", taskDate), field("crm.field.time", taskTime)),
    el("div", { className: "form-foot" }, el("button", { type: "submit", className: "btn primary small", i18n: "page.action.save", testid: "task-save" }), taskMsg));
  task.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const due = zonedInstant(taskDate.value, taskTime.value);
    if (!due) { taskDate.focus(); return; }
    const res = await api("POST", "/api/tasks", { title: taskTitle.value, kind: taskKind.value, due_at: due,
      party_kind: card.kind, party_id: card.id });
    if (res.ok) { taskMsg.say(t("page.action.saved"), true); reload(); } else taskMsg.say(errorText(res), false);
  });
  const wrap = (key, form, id, open) => el("details", { className: "action", testid: "quick-" + id, open }, el("summary", { i18n: key }), form);
  return el("div", { className: "quick-forms" }, wrap("crm.add_note", note, "note", true), wrap("crm.new_deal", deal, "deal", false),
    wrap("crm.new_task", task, "task", false));
}

function tools(card, me, list, reloadCard) {
  const box = el("div", { className: "party-tools" });
  const msg = statusLine("tools-msg");
  if (card.kind === "lead" && card.status !== "converted") {
    box.append(el("button", { type: "button", className: "btn", testid: "lead-convert", i18n: "crm.convert", onclick: async () => {
      const res = await api("POST", "/api/leads/" + card.id + "/convert", {});
      if (res.ok) location.hash = "#clients/client/" + res.data.id; else msg.say(errorText(res), false);
    } }));
  }
  if (card.kind === "lead" && card.client_id) {
    box.append(el("a", { href: "#clients/client/" + card.client_id, className: "btn", i18n: "crm.open_client" }));
  }
  // Merge: find the other record, then confirm.
  const mergeQ = el("input", { type: "search", autocomplete: "off", testid: "merge-search", i18nAttrs: { placeholder: "crm.merge_search", "aria-label": "crm.merge_search" } });
  const mergeKind = card.kind === "client" ? el("select", { testid: "merge-kind", i18nAttrs: { "aria-label": "crm.merge_kind" } },
    el("option", { value: "client", i18n: "crm.clients" }), el("option", { value: "lead", i18n: "crm.leads" })) : null;
  const found = el("ul", { className: "merge-found", testid: "merge-found" });
  const search = async () => {
    const kind = mergeKind ? mergeKind.value : "lead";
    if (mergeQ.value.trim().length < 2) { found.replaceChildren(); return; }
    const res = await api("GET", `/api/${kind === "lead" ? "leads" : "clients"}?limit=10&q=` + encodeURIComponent(mergeQ.value));
    if (!res.ok) return;
    found.replaceChildren(...res.data.items.filter((i) => !(i.kind === card.kind && i.id === card.id)).map((i) =>
      el("li", {}, el("span", {}, i.name, " ", i.phones.map((p) => p.display).join(", ")),
        el("button", { type: "button", className: "btn small", testid: "merge-pick", i18n: "crm.merge_into_this", onclick: async () => {
          if (!window.confirm(t("crm.merge_confirm", { other: i.name, name: card.name }))) return;
          const r = await api("POST", base(card.kind) + card.id + "/merge", { kind: i.kind, id: i.id });
          if (r.ok) { msg.say(t("crm.merged"), true); found.replaceChildren(); mergeQ.value = ""; reloadCard(); } else msg.say(errorText(r), false);
        } }))));
  };
  let timer = null;
  mergeQ.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(search, 250); });
  box.append(el("details", { className: "action merge", testid: "merge" }, el("summary", { i18n: "crm.merge" }),
    el("div", { className: "merge-body" }, el("p", { className: "muted", i18n: "crm.merge_hint" }), mergeKind, mergeQ, found)));
  if (isHead(me) || card.manager_id === me.id) {
    const picks = el("div", { className: "share-picks" }, list.filter((m) => m.id !== card.manager_id).map((m) =>
      el("label", { className: "check" }, el("input", { type: "checkbox", value: m.login, checked: card.shared_with.includes(m.id) }), el("span", {}, m.name))));
    const save = el("button", { type: "button", className: "btn small", i18n: "page.action.save", testid: "share-save", onclick: async () => {
      const chosen = [...picks.querySelectorAll("input:checked")].map((i) => i.value);
      const res = await api("PUT", base(card.kind) + card.id + "/shares", { managers: chosen });
      msg.say(res.ok ? t("page.action.saved") : errorText(res), res.ok);
    } });
    box.append(el("details", { className: "action", testid: "share" }, el("summary", { i18n: "crm.share" }), el("div", { className: "merge-body" }, picks, save)));
  }
  box.append(msg);
  return box;
}

export async function openParty(box, kind, id, me) {
  const [res, list, settings] = await Promise.all([api("GET", base(kind) + id), managers(), crmSettings()]);
  if (!res.ok || !res.data) {
    box.replaceChildren(el("a", { href: "#clients", className: "back", i18n: "crm.back" }),
      el("p", { className: "error", attrs: { role: "alert" }, testid: "card-error" }, errorText(res)));
    return;
  }
  const card = res.data;
  const title = el("h1", { testid: "party-title", id: "party-title" }, card.name);
  const timelineBox = el("div", { className: "timeline-box" });
  const reload = () => timeline(timelineBox, kind, id);
  // A call of this party ending (or starting) while the page is open: its entry follows without a reload.
  openNow = { box: timelineBox, kind, id, calls: new Set(), reload: (want) => timelineBox.followCall && timelineBox.followCall(want) };
  const onSaved = (fresh, said) => { title.textContent = fresh.name; render(fresh, said); };
  const details = el("section", { className: "party-details", attrs: { "aria-labelledby": "party-title" } });
  // A record nobody has edited yet has no audit list (null would be written out as the text "null").
  const render = (c, said) => details.replaceChildren(...[
    detailsForm(c, me, list, settings, onSaved, said), tools(c, me, list, () => openParty(box, kind, id, me)), auditList(c)].filter(Boolean));
  render(card);
  const head = el("div", { className: "party-head" },
    el("a", { href: "#clients" + (kind === "lead" ? "/leads" : ""), className: "back", i18n: "crm.back" }),
    title,
    el("div", { className: "card-sub" },
      el("span", { className: "badge kind", dataset: { kind } }, words.kind(kind)),
      card.stop_list ? el("span", { className: "badge stop", i18n: "page.card.stop_list" }) : null,
      card.phones.map((p) => phone(p.e164, { where: "party", name: card.name, display: p.display })),
      card.manager_name ? el("span", { className: "muted" }, t("crm.responsible", { name: card.manager_name })) : null));
  box.replaceChildren(head, el("div", { className: "party-layout" },
    details,
    el("section", { className: "party-history", attrs: { "aria-label": t("crm.history") } },
      el("h2", { i18n: "crm.history" }), quickForms(card, me, settings, reload), timelineBox)));
  await reload();
}
