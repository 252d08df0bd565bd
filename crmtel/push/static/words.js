// Server values (enum texts) to catalogue keys; an unknown value is shown as the server sent it.
import { t } from "./i18n.js";

const REASONS = {
  "no answer": "page.reason.no_answer",
  "busy": "page.reason.busy",
  "unavailable": "page.reason.unavailable",
  "rejected": "page.reason.rejected",
  "hung up": "page.reason.hung_up",
  "cancelled": "page.reason.cancelled",
  "answered elsewhere": "page.reason.answered_elsewhere",
  "caller hung up while the manager's phone rang": "page.reason.caller_hung_up_ringing",
  "caller hung up in queue": "page.reason.abandoned_in_queue",
};

export const reason = (value) => (value ? (REASONS[value] ? t(REASONS[value]) : value) : "");

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
