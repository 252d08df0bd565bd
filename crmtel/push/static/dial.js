// Click-to-call: a "Call" button next to every number the page draws (card, history, search, callbacks).
// A click asks the server to ring the manager's own phone (POST /api/dial); how it goes arrives as
// dial.result on the websocket and is said in one status line (a polite live region).
import { api } from "./api.js";
import { el } from "./dom.js";
import { t } from "./i18n.js";
import { addPhoneAction, formatPhone } from "./phone.js";
import * as socket from "./socket.js";
import { askOwnerToCall, onDialRequest, placeCall, webphoneReady } from "./webphone.js";

let line = null; // the status line, created on first use
let mobile = null; // the manager's own mobile (settings.js): "via my mobile" buttons show only with one
const pending = new Set(); // numbers whose click is on its way (a double click sends one request)

function statusLine() {
  if (line && line.isConnected) return line;
  line = el("p", { className: "dial-status", testid: "dial-status", hidden: true,
    attrs: { role: "status", "aria-live": "polite" } });
  (document.querySelector("#app") || document.body).prepend(line);
  return line;
}

function say(text, ok) {
  const node = statusLine();
  node.textContent = text;
  node.dataset.ok = ok ? "yes" : "no";
  node.hidden = false;
}

function sayResult(result) {
  const text = result.message || t(result.message_key, result.params || {});
  say(text, result.ok);
  statusLine().dataset.status = result.status;
}

// The manager's mobile changed (settings): every "via my mobile" button follows.
export function setMobile(number) {
  mobile = number || null;
  for (const button of document.querySelectorAll("[data-testid=dial-mobile-button]")) button.hidden = !mobile;
}

export async function dial(number, name, via) {
  const key = (via || "phone") + ":" + number;
  if (pending.has(key)) return;
  // The browser phone is on: the server checks the number as for any click (policy, limits, audit) and says
  // how the PBX dials it; the call then starts here, from this page, instead of ringing the desk phone first
  // (unless the manager asked for their mobile).
  // The phone lives in another tab of this manager: that tab places the call (the desk phone may not exist).
  if (via !== "mobile" && !webphoneReady() && askOwnerToCall(number, name)) {
    say(t("dial.status.other_tab", { number: formatPhone(number) }), true);
    return;
  }
  if (via !== "mobile" && webphoneReady()) {
    pending.add(key);
    try {
      const res = await api("POST", "/api/dial/browser", name ? { number, name } : { number });
      if (res.ok && res.data && placeCall(res.data.exten)) say(res.data.message, true);
      else say((res.data && res.data.error) || t("dial.status.unreachable", { number }), false);
    } finally {
      pending.delete(key);
    }
    return;
  }
  pending.add(key);
  try {
    const body = { number };
    if (name) body.name = name;
    if (via === "mobile") body.via = "mobile";
    const res = await api("POST", "/api/dial", body);
    if (res.ok && res.data) sayResult(res.data);
    else say((res.data && res.data.error) || t("dial.status.unreachable", { number }), false);
  } finally {
    pending.delete(key);
  }
}

// A click in another tab of this manager, sent to this one because it owns the browser phone.
onDialRequest((number, name) => dial(number, name));

addPhoneAction((number, context) => {
  if (!number || !/\d{2}/.test(number)) return null;
  const button = el("button", { type: "button", className: "btn small dial", testid: "dial-button",
    dataset: { number }, i18nAttrs: { title: "dial.button" },
    attrs: { "aria-label": t("dial.button_title", { number }) },
    onclick: (ev) => { ev.stopPropagation(); dial(number, context && context.name); } },
  el("span", { attrs: { "aria-hidden": "true" } }, "☎ "), el("span", { i18n: "dial.button" }));
  return button;
});

addPhoneAction((number, context) => {
  if (!number || !/\d{2}/.test(number)) return null;
  return el("button", { type: "button", className: "btn small ghost dial-mobile", testid: "dial-mobile-button",
    hidden: !mobile, dataset: { number }, i18nAttrs: { title: "dial.button_mobile" },
    attrs: { "aria-label": t("dial.button_mobile_title", { number }) },
    onclick: (ev) => { ev.stopPropagation(); dial(number, context && context.name, "mobile"); } },
  el("span", { attrs: { "aria-hidden": "true" } }, "📱 "), el("span", { i18n: "dial.button_mobile" }));
});

socket.onMessage((msg) => { if (msg.type === "dial.result") sayResult(msg); });
