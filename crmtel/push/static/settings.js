// The manager's own settings: their mobile, which click-to-call "via my mobile" and the follow-me step ring
// (PUT /api/me/mobile; the server checks the number with phonenumbers and says why it refuses one).
import { api } from "./api.js";
import { el } from "./dom.js";
import { t } from "./i18n.js";
import { setMobile } from "./dial.js";
import { formatPhone } from "./phone.js";
import { registerView } from "./views.js";

let form = null;
let stored = null; // the mobile as the server keeps it (E.164), or null

function showCurrent(mobile) {
  stored = mobile;
  const current = form.querySelector("[data-testid=mobile-current]");
  current.textContent = mobile ? t("settings.mobile.current", { number: formatPhone(mobile) }) : t("settings.mobile.none");
  setMobile(mobile);
}

async function save(value) {
  const input = form.querySelector("#settings-mobile");
  const error = form.querySelector("#settings-mobile-error");
  const done = form.querySelector("[data-testid=mobile-saved]");
  error.textContent = "";
  done.textContent = "";
  input.removeAttribute("aria-invalid");
  const res = await api("PUT", "/api/me/mobile", { mobile: value || null });
  if (res.ok && res.data) {
    input.value = res.data.mobile || "";
    showCurrent(res.data.mobile);
    done.textContent = t(res.data.mobile ? "settings.mobile.saved" : "settings.mobile.cleared");
    return;
  }
  error.textContent = (res.data && res.data.error) || t("settings.mobile.failed");
  input.setAttribute("aria-invalid", "true");
  input.focus();
}

registerView({
  id: "settings",
  labelKey: "settings.nav",
  order: 90,
  corner: "⚙", // an icon in the header's corner (header.js), not a work tab
  mount(section, me) {
    form = el("form", { className: "settings-form", testid: "settings-form", attrs: { novalidate: "" },
      onsubmit: (ev) => { ev.preventDefault(); save(form.querySelector("#settings-mobile").value.trim()); } },
      el("h2", { i18n: "settings.title" }),
      el("label", { attrs: { for: "settings-mobile" }, i18n: "settings.mobile.label" }),
      el("input", { id: "settings-mobile", type: "tel", testid: "mobile-input", value: me.mobile || "",
        attrs: { autocomplete: "tel", inputmode: "tel", "aria-describedby": "settings-mobile-help settings-mobile-error" } }),
      el("p", { id: "settings-mobile-help", className: "hint", i18n: "settings.mobile.help" }),
      el("p", { id: "settings-mobile-error", className: "error", testid: "mobile-error", attrs: { role: "alert" } }),
      el("p", { className: "current", testid: "mobile-current" }),
      el("p", { className: "saved", testid: "mobile-saved", attrs: { role: "status", "aria-live": "polite" } }),
      el("div", { className: "actions" },
        el("button", { type: "submit", className: "btn", testid: "mobile-save", i18n: "settings.mobile.save" }),
        el("button", { type: "button", className: "btn ghost", testid: "mobile-clear", i18n: "settings.mobile.clear",
          onclick: () => save("") })));
    section.append(form);
    showCurrent(me.mobile || null);
  },
  onLanguage() {
    if (form) showCurrent(stored);
  },
});
