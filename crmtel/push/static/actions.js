// What a manager does about a call — result note, lead, deal, callback — as forms built once and kept:
// the card and the call detail update around them, so nothing typed is lost while the call changes.
import { api, callUrl } from "./api.js";
import { localParts, zonedInstant } from "./crm.js";
import { el } from "./dom.js";
import { t } from "./i18n.js";

let uid = 0;

// fields: [name, labelKey, kind, initial] with kind "text" (default), "textarea", "email", "number", "amount",
// "date", "time"; initial() gives the value the field starts with (and returns to after a save).
function actionForm(id, labelKey, fields, submit, { open = false } = {}) {
  const msg = el("p", { className: "msg", testid: "action-msg", attrs: { role: "status", "aria-live": "polite" } });
  const inputs = {};
  const initials = {};
  const form = el("form", { className: "action", noValidate: true });
  for (const [name, key, kind, initial] of fields) {
    const inputId = "f" + ++uid + "-" + name;
    const common = { id: inputId, name, autocomplete: "off" };
    let input;
    if (kind === "textarea") input = el("textarea", { ...common, rows: 3 });
    else if (kind === "amount") input = el("input", { ...common, type: "text", inputMode: "decimal" });
    else if (kind === "number") input = el("input", { ...common, type: "number", min: 1, step: 1, inputMode: "numeric" });
    else if (kind === "time") input = el("input", { ...common, type: "time", step: 300 });
    else input = el("input", { ...common, type: kind || "text" });
    inputs[name] = input;
    if (initial) { initials[name] = initial; input.value = initial(); }
    form.append(el("div", { className: "field" }, el("label", { htmlFor: inputId, i18n: key }), input));
  }
  // Enter saves in a one-line field (the browser does that); in the comment box Ctrl+Enter does.
  form.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey) && ev.target.tagName === "TEXTAREA") {
      ev.preventDefault();
      form.requestSubmit();
    }
  });
  const save = el("button", { type: "submit", className: "btn primary", testid: "action-save", i18n: "page.action.save" });
  form.append(el("div", { className: "form-foot" }, save, msg));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const values = {};
    for (const [name, input] of Object.entries(inputs)) values[name] = input.value;
    save.disabled = true;
    msg.className = "msg";
    msg.textContent = t("page.action.saving");
    const res = await submit(values);
    save.disabled = false;
    if (res.ok) {
      for (const [name, input] of Object.entries(inputs)) input.value = initials[name] ? initials[name]() : "";
      msg.textContent = t("page.action.saved");
      msg.classList.add("ok");
    } else {
      msg.textContent = res.status === 0 ? t("page.action.offline")
        : (res.data && res.data.error) || t("page.action.failed", { status: res.status });
      msg.classList.add("bad");
    }
  });
  const details = el("details", { className: "action", testid: "action-" + id, open },
    el("summary", { i18n: labelKey }), form);
  return details;
}

// The four forms for one call; setKind(kind) shows the lead form only where a lead makes sense.
// On a phone the card starts compact (every form closed); on a desk the result form is open.
export function callActions(callId, { openNote = window.matchMedia("(min-width: 62em)").matches } = {}) {
  const note = actionForm("note", "page.action.note",
    [["topic", "page.field.topic"], ["result", "page.field.result"], ["comment", "page.field.comment", "textarea"]],
    (v) => api("POST", callUrl(callId, "/notes"), v), { open: openNote });
  const lead = actionForm("lead", "page.action.lead",
    [["name", "page.field.name"], ["company", "page.field.company"], ["email", "page.field.email", "email"]],
    (v) => api("POST", callUrl(callId, "/lead"), v));
  const deal = actionForm("deal", "page.action.deal",
    [["title", "page.field.deal_title"], ["amount", "page.field.amount", "amount"]],
    (v) => api("POST", callUrl(callId, "/deals"), v));
  // A callback is planned for a day and a time (in the configured zone), as on the tasks page; it starts
  // at an hour from now, rounded up to five minutes.
  const inAnHour = () => localParts(new Date(Math.ceil((Date.now() + 3600e3) / 300e3) * 300e3).toISOString());
  const callback = actionForm("callback", "page.action.callback",
    [["title", "page.field.callback_title"], ["due_date", "crm.field.date", "date", () => inAnHour().date],
      ["due_time", "crm.field.time", "time", () => inAnHour().time]],
    (v) => api("POST", callUrl(callId, "/tasks"),
      { title: v.title, due_at: v.due_date ? zonedInstant(v.due_date, v.due_time) : undefined }));
  const node = el("div", { className: "call-actions", testid: "call-actions" }, note, lead, deal, callback);
  return {
    node,
    setKind(kind) {
      // A client cannot become a lead; hidden and internal numbers have nobody to make one of.
      lead.hidden = ["client", "hidden", "internal"].includes(kind);
    },
  };
}
