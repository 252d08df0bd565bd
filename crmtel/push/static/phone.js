// Every phone number on the page is drawn by phone(): one place to format it and to hang actions on it.
// Another module adds e.g. a click-to-call button to every number with
//   addPhoneAction((number, context) => el("button", {...}, "…"))   // return a Node, or null to skip
// context says where the number is shown: {where: "card" | "history" | "detail" | ..., callId}.
import { el } from "./dom.js";

const actions = [];

export function addPhoneAction(fn) { actions.push(fn); }

// The page's one way of writing a number: +7 916 111-00-01 whether it came as +79161110001, 79161110001 or
// 89161110001 (Russian numbers, the server's region); other countries' numbers come from the server already
// written by phonenumbers (context.display), extensions and anything else stay as they are.
export function formatPhone(number, display) {
  if (display) return display;
  const raw = String(number || "").trim();
  const digits = raw.replace(/[\s()\-.]/g, "");
  const m = /^(?:\+7|7|8)(\d{3})(\d{3})(\d{2})(\d{2})$/.exec(digits);
  if (m && (digits.startsWith("+") || digits.length === 11)) return `+7 ${m[1]} ${m[2]}-${m[3]}-${m[4]}`;
  return raw;
}

export function phone(number, context = {}) {
  if (!number) return null;
  const node = el("span", { className: "phone", dataset: { phone: number } },
    el("span", { className: "phone-number", translate: false }, formatPhone(number, context.display)));
  for (const fn of actions) {
    const extra = fn(number, context);
    if (extra) node.append(extra);
  }
  return node;
}
