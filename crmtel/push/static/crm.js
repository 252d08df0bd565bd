// What the CRM views share: the managers and settings (read once), names of stages and kinds, forms.
import { api } from "./api.js";
import { el } from "./dom.js";
import { language, t, timeZone } from "./i18n.js";

let managersCache = null;
let settingsCache = null;

export async function managers() {
  if (!managersCache) {
    const res = await api("GET", "/api/managers");
    managersCache = res.ok && res.data ? res.data.managers : [];
  }
  return managersCache;
}

export async function crmSettings() {
  if (!settingsCache) {
    const res = await api("GET", "/api/crm/settings");
    settingsCache = res.ok && res.data ? res.data
      : { stages: ["new"], lost_reasons: [], phone_kinds: [], task_kinds: ["callback"], region: "RU" };
  }
  return settingsCache;
}

// A configured stage code is named by the catalogue; any other stage is shown as the admin wrote it.
const known = (prefix, value) => {
  const text = t(prefix + value);
  return text === prefix + value ? value : text;
};
export const stageName = (code) => known("crm.stage.", code);
export const lostReasonName = (code) => known("crm.lost.", code);
export const taskKindName = (code) => known("crm.task_kind.", code);
export const phoneKindName = (code) => (code ? known("crm.phone_kind.", code) : "");

// A labelled field: el("input") etc. with its <label>; returns {node, input}.
let uid = 0;
export function field(labelKey, input, { hint } = {}) {
  const id = input.id || "crm-f" + ++uid;
  input.id = id;
  return el("div", { className: "field" }, el("label", { htmlFor: id, i18n: labelKey }), input,
    hint ? el("small", { className: "muted", i18n: hint }) : null);
}

export function managerSelect(list, selected, { any = false, none = false, testid } = {}) {
  return el("select", { testid },
    any ? el("option", { value: "", i18n: "crm.filter.anyone", selected: !selected }) : null,
    none ? el("option", { value: "none", i18n: "crm.filter.unassigned", selected: selected === "none" }) : null,
    list.map((m) => el("option", { value: m.login, selected: selected === m.login }, m.name)));
}

// The date and time parts of an instant in the configured zone: {date: "2026-12-01", time: "09:30"}.
export function localParts(iso) {
  const d = iso ? new Date(iso) : new Date();
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone: timeZone(), year: "numeric", month: "2-digit",
    day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).formatToParts(d);
  const get = (type) => (parts.find((p) => p.type === type) || {}).value;
  return { date: `${get("year")}-${get("month")}-${get("day")}`, time: `${get("hour")}:${get("minute")}` };
}

// A date and a time picked in the configured zone → an ISO instant with its offset (the server wants one).
export function zonedInstant(date, time) {
  if (!date) return null;
  const [y, mo, d] = date.split("-").map(Number);
  const [h, mi] = (time || "09:00").split(":").map(Number);
  const guess = Date.UTC(y, mo - 1, d, h, mi);
  // The zone's offset at that moment (twice, for the hour a clock change moves).
  const offsetAt = (ms) => {
    const p = localParts(new Date(ms).toISOString());
    const [py, pm, pd] = p.date.split("-").map(Number);
    const [ph, pmin] = p.time.split(":").map(Number);
    return Date.UTC(py, pm - 1, pd, ph, pmin) - ms;
  };
  let ms = guess - offsetAt(guess);
  ms = guess - offsetAt(ms);
  return new Date(ms).toISOString();
}

export function errorText(res) {
  if (res.status === 0) return t("page.action.offline");
  const data = res.data || {};
  if (data.fields && data.fields.length) return data.fields.map((f) => f.message).join("; ");
  return data.error || t("page.action.failed", { status: res.status });
}

// A status line for a form: say(text, ok).
export function statusLine(testid) {
  const node = el("p", { className: "msg", testid, attrs: { role: "status", "aria-live": "polite" } });
  node.say = (text, ok) => { node.textContent = text; node.className = "msg " + (ok ? "ok" : "bad"); };
  return node;
}

export const isHead = (me) => me && me.role === "head";
export const lang = () => language();
