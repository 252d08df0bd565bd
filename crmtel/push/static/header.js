// The header every page shares: who is logged in, the pages, the language, log out. The main page builds
// it here; the report page gets the same markup from the server and this module wires it up.
import { api } from "./api.js";
import { el, setText } from "./dom.js";
import { LANGUAGES, t } from "./i18n.js";
import { ringButtons } from "./ring.js";

const LANGUAGE_NAMES = { ru: "Русский", en: "English" };
// Server-rendered pages, as crmtel/push/chrome.py's NAV lists them (heads: pages only heads may open).
const PAGES = [
  { id: "reports", key: "page.nav.reports", href: "/reports/calls-vs-deals" },
  { id: "queues", key: "report_queues.title", href: "/reports/queues", heads: true },
  { id: "board", key: "board.title", href: "/board", heads: true },
];

export function whoText(me) {
  const exts = me.extensions && me.extensions.length ? t("page.header.ext", { ext: me.extensions.join(", ") }) : "";
  return [me.name, exts, me.role === "head" ? t("page.header.head") : ""].filter(Boolean).join(" · ");
}

// Each option is labelled in its own language (marked with lang=, as screen readers need).
function languageSelect(current) {
  return el("select", { id: "lang-select", className: "lang", testid: "lang-select",
    i18nAttrs: { "aria-label": "page.header.language", title: "page.header.language" } },
    LANGUAGES.map((code) => el("option", { value: code, selected: code === current, attrs: { lang: code } },
      LANGUAGE_NAMES[code])));
}

// views: [{id, labelKey}] of the main page, shown as tabs before the report link.
export function buildHeader(me, lang, views) {
  const nav = el("nav", { className: "app-nav", i18nAttrs: { "aria-label": "page.nav.label" } },
    views.filter((v) => !v.corner).map((v) => el("a", { href: "/#" + v.id, dataset: { view: v.id }, testid: "nav-" + v.id, i18n: v.labelKey })),
    PAGES.filter((p) => !p.heads || me.role === "head").map((p) =>
      el("a", { href: p.href, id: p.id + "-link", testid: "nav-" + p.id, i18n: p.key })));
  return el("header", { className: "app-header", id: "app-header", testid: "app-header" },
    el("a", { className: "brand", href: "/" }, "crmtel"),
    nav,
    el("div", { className: "app-user" },
      el("span", { id: "conn", className: "conn off", testid: "conn", attrs: { role: "status" } }),
      el("span", { id: "me", className: "me", testid: "me" }, whoText(me)),
      ...ringButtons(),
      // Views of one's own (settings) sit in the corner as an icon, not among the work tabs.
      ...views.filter((v) => v.corner).map((v) => el("a", { href: "/#" + v.id, className: "btn ghost small",
        dataset: { view: v.id }, testid: "nav-" + v.id, i18nAttrs: { title: v.labelKey, "aria-label": v.labelKey } },
        el("span", { attrs: { "aria-hidden": "true" } }, v.corner))),
      languageSelect(lang),
      el("button", { type: "button", id: "logout", className: "btn ghost", testid: "logout", i18n: "page.header.logout" })));
}

// state: "live", "connecting" or "offline" (socket.js); said quietly, in the header's corner.
export function setConnection(header, state) {
  const conn = header.querySelector("#conn");
  if (!conn) return;
  const live = state === "live";
  setText(conn, t(live ? "page.header.live" : state === "connecting" ? "page.header.connecting" : "page.header.offline"));
  conn.className = "conn " + (live ? "on" : "off");
  conn.dataset.state = state;
}

// onLanguage(code) runs after the choice is stored; logout ends the session and goes to the login form.
export function wireHeader(header, { onLanguage, onLogout }) {
  const select = header.querySelector("#lang-select");
  if (select) {
    select.addEventListener("change", async () => {
      const res = await api("PUT", "/api/me/locale", { locale: select.value });
      if (res.ok) await onLanguage(select.value);
    });
  }
  const logout = header.querySelector("#logout");
  if (logout) {
    logout.addEventListener("click", async () => {
      await api("POST", "/api/logout");
      await onLogout();
    });
  }
}

// On a server-rendered page (the report) this module wires the header by itself.
const served = document.querySelector("header.app-header[data-server]");
if (served) {
  wireHeader(served, {
    onLanguage: async () => { location.reload(); },
    onLogout: async () => { location.assign("/"); },
  });
}
