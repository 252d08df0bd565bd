// Every phone number on the page is drawn by phone(): one place to format it and to hang actions on it.
// Another module adds e.g. a click-to-call button to every number with
//   addPhoneAction((number, context) => el("button", {...}, "…"))   // return a Node, or null to skip
// context says where the number is shown: {where: "card" | "history" | "detail" | ..., callId}.
import { el } from "./dom.js";

const actions = [];

export function addPhoneAction(fn) { actions.push(fn); }

export function phone(number, context = {}) {
  if (!number) return null;
  const node = el("span", { className: "phone", dataset: { phone: number } },
    el("span", { className: "phone-number", translate: false }, number));
  for (const fn of actions) {
    const extra = fn(number, context);
    if (extra) node.append(extra);
  }
  return node;
}
