// The call's result in one click: the configured list (GET /api/call-results, read once) as toggle buttons.
// A click stores the result with the call (PUT …/result); a click on the chosen one clears it.
import { api, callUrl } from "./api.js";
import { el, setText } from "./dom.js";
import { t } from "./i18n.js";
import * as words from "./words.js";

let choices = null;

function loadChoices() {
  if (!choices) {
    choices = api("GET", "/api/call-results").then((res) => (res.ok && res.data ? res.data.results : []));
    choices.then((list) => { if (!list.length) choices = null; });
  }
  return choices;
}

export function resultPicker(callId) {
  const list = el("div", { className: "result-list", attrs: { role: "group" }, i18nAttrs: { "aria-label": "page.card.result" } });
  const msg = el("span", { className: "msg", testid: "result-msg", attrs: { role: "status", "aria-live": "polite" } });
  const node = el("section", { className: "card-result", testid: "card-result" },
    el("h3", { i18n: "page.card.result" }), list, msg);
  let chosen = null;
  const draw = () => {
    for (const button of list.children) {
      button.setAttribute("aria-pressed", String(button.dataset.result === chosen));
      setText(button, words.result(button.dataset.result));
    }
  };
  loadChoices().then((codes) => {
    list.replaceChildren(...codes.map((code) => el("button", {
      type: "button", className: "chip", testid: "result-" + code, dataset: { result: code },
      onclick: async () => {
        const next = chosen === code ? null : code;
        msg.className = "msg";
        const res = await api("PUT", callUrl(callId, "/result"), { result: next });
        if (res.ok) { chosen = next; msg.textContent = t("page.card.result_saved"); msg.classList.add("ok"); }
        else {
          msg.textContent = (res.data && res.data.error) || t("page.card.result_failed");
          msg.classList.add("bad");
        }
        draw();
      },
    })));
    draw();
  });
  return {
    node,
    set(code) { chosen = code || null; draw(); },
    relabel: draw,
  };
}
