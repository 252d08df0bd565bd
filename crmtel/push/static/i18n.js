// Words from the catalogues (GET /i18n/<lang>.json), formats from the platform (Intl), in the zone and
// currency the server is configured with — never the browser's own zone.
export const LANGUAGES = ["ru", "en"];
const DEFAULT_LANGUAGE = "ru";

const state = {
  lang: DEFAULT_LANGUAGE,
  catalogue: {},
  plural: new Intl.PluralRules(DEFAULT_LANGUAGE),
  timeZone: undefined,
  currency: "RUB",
};
const listeners = [];

export const language = () => state.lang;
export const timeZone = () => state.timeZone;

// The browser's first preference we have a catalogue for, else Russian.
export function guessLanguage() {
  for (const tag of navigator.languages || [navigator.language || ""]) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return DEFAULT_LANGUAGE;
}

// Load the catalogue of `lang` (falls back to Russian for anything unknown) and tell the views.
export async function setLanguage(lang) {
  const wanted = LANGUAGES.includes(lang) ? lang : DEFAULT_LANGUAGE;
  const res = await fetch("/i18n/" + wanted + ".json", { credentials: "same-origin" });
  if (!res.ok) throw new Error("catalogue " + wanted + ": HTTP " + res.status);
  state.catalogue = await res.json();
  state.lang = wanted;
  state.plural = new Intl.PluralRules(wanted);
  document.documentElement.lang = wanted;
  for (const fn of listeners) fn(wanted);
}

// The server's time zone and currency (from /api/me); an unknown zone keeps the previous one.
export function configure({ timezone, currency } = {}) {
  if (timezone) {
    try {
      new Intl.DateTimeFormat("en", { timeZone: timezone });
      state.timeZone = timezone;
    } catch (_e) { /* an unknown zone name: keep the last good one */ }
  }
  if (currency) state.currency = currency;
}

// fn(lang) after every language change: views redraw the texts they compute.
export function onLanguage(fn) { listeners.push(fn); }

// t("page.card.ringing", {ext: "102"}); plural entries are {one, few, many, other} chosen by params.count.
export function t(key, params = {}) {
  let entry = state.catalogue[key];
  if (entry === undefined) {
    console.warn("i18n: no text for", key);
    return key;
  }
  if (typeof entry === "object" && entry !== null) {
    const n = Number(params.count ?? 0);
    entry = entry[state.plural.select(n)] ?? entry.other ?? "";
  }
  return String(entry).replace(/\{(\w+)\}/g, (whole, name) => {
    if (!(name in params)) return whole;
    const value = params[name];
    return typeof value === "number" ? fmtNumber(value) : String(value ?? "");
  });
}

const cache = new Map();
function fmt(kind, options) {
  const id = kind + state.lang + (state.timeZone || "") + JSON.stringify(options);
  let f = cache.get(id);
  if (!f) {
    const opts = kind === "date" ? { timeZone: state.timeZone, ...options } : options;
    f = kind === "date" ? new Intl.DateTimeFormat(state.lang, opts) : new Intl.NumberFormat(state.lang, opts);
    cache.set(id, f);
  }
  return f;
}

const asDate = (iso) => {
  if (!iso) return null;
  const d = iso instanceof Date ? iso : new Date(iso);
  return Number.isNaN(d.getTime()) ? null : d;
};

// Russian writes 09:05, English 9:05 AM.
const hourStyle = () => (state.lang === "en" ? "numeric" : "2-digit");

// 14:03 (ru) / 2:03 PM (en) in the configured zone.
export function fmtTime(iso) {
  const d = asDate(iso);
  return d ? fmt("date", { hour: hourStyle(), minute: "2-digit" }).format(d) : "";
}

// 01.12.2026, 14:03 — with the date only when it is not today (in the configured zone).
export function fmtDateTime(iso, { always = false } = {}) {
  const d = asDate(iso);
  if (!d) return "";
  const day = fmt("date", { year: "numeric", month: "2-digit", day: "2-digit" });
  if (!always && day.format(d) === day.format(new Date())) return fmtTime(d);
  return fmt("date", { year: "numeric", month: "2-digit", day: "2-digit", hour: hourStyle(), minute: "2-digit" }).format(d);
}

// The full date and time for a tooltip or <time title>.
export function fmtFull(iso) {
  const d = asDate(iso);
  return d ? fmt("date", { dateStyle: "long", timeStyle: "medium" }).format(d) : "";
}

export function fmtMonth(isoDate) {
  const d = asDate(isoDate ? isoDate.slice(0, 7) + "-15T12:00:00Z" : null);
  return d ? fmt("date", { month: "long", year: "numeric" }).format(d) : "";
}

export function fmtNumber(n, options = {}) {
  return n === null || n === undefined || Number.isNaN(Number(n)) ? "" : fmt("number", options).format(Number(n));
}

// "150000.50" (the API's decimal string) -> 150 000,50 ₽ / RUB 150,000.50
export function fmtMoney(amount) {
  if (amount === null || amount === undefined || amount === "") return "";
  return fmt("number", { style: "currency", currency: state.currency }).format(Number(amount));
}

// 65 -> "1 мин 05 с" / "1 min 05 sec"; under a minute "42 с".
// A running clock for a live call: 0:07, 12:34, 1:02:03 (digits from Intl, never by hand).
export function fmtClock(seconds) {
  const total = Math.max(0, Math.floor(Number(seconds) || 0));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const two = fmt("number", { minimumIntegerDigits: 2, useGrouping: false });
  const one = fmt("number", { useGrouping: false });
  return h ? [one.format(h), two.format(m), two.format(s)].join(":") : [one.format(m), two.format(s)].join(":");
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return "";
  const total = Math.max(0, Math.round(Number(seconds)));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const unit = (u, v, pad) => fmt("number", { style: "unit", unit: u, unitDisplay: "short",
    minimumIntegerDigits: pad ? 2 : 1 }).format(v);
  const parts = [];
  if (h) parts.push(unit("hour", h, false));
  if (h || m) parts.push(unit("minute", m, Boolean(h)));
  parts.push(unit("second", s, Boolean(h || m)));
  return parts.join(" ");
}
