import { t } from "./i18n.js";

// Reasons come from the server as stable codes (crmtel/calls/reasons.py); their words are the catalogues'
// page.reason.<code>. An unknown code is shown as the server sent it.
const REASONS = ["no_answer", "busy", "unavailable", "rejected", "hung_up", "cancelled", "answered_elsewhere",
  "forwarded", "caller_hung_up_ringing", "abandoned_in_queue"];
export const reason = (value) => (value ? (REASONS.includes(value) ? t("page.reason." + value) : value) : "");

const known = (prefix, values) => (value) => (values.includes(value) ? t(prefix + value) : value || "");

export const direction = known("page.direction.", ["inbound", "outbound", "internal"]);
export const outcome = known("page.outcome.", ["answered", "missed"]);
export const category = known("page.category.", ["retail", "wholesale"]);
// Deal stages: the configured codes are named by the CRM's catalogue (crm.stage.*); stages typed by people
// or imported are shown as they are.
export const stage = (value) => {
  if (!value) return "";
  const text = t("crm.stage." + value);
  return text === "crm.stage." + value ? value : text;
};
export const kind = (value) => t("page.kind." + (["client", "lead", "new_lead", "hidden", "internal", "unavailable"]
  .includes(value) ? value : "call"));

// "Vera Lebedeva (103)", or just the extension when the name is unknown.
export const who = (name, ext) => (name ? t("page.who", { name, ext: ext || "" }) : ext || "");

// Call results: the built-in codes by the catalogue (page.result.*), configured texts as written.
export const result = (value) => {
  if (!value) return "";
  const text = t("page.result." + value);
  return text === "page.result." + value ? value : text;
};
