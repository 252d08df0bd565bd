// "Call back": my open callback tasks (a head sees everyone's), each with one-click calling and a close
// form with the result; above them, the search box for any client or lead.
import { api } from "./api.js";
import { el } from "./dom.js";
import { fmtDateTime, t } from "./i18n.js";
import { phone } from "./phone.js";
import { registerView } from "./views.js";

let me = null;
let list = null;
let empty = null;
let results = null;
let searchTimer = null;
const drafts = new Map(); // task id -> what was typed as its result, kept across redraws

function closeForm(task) {
  const input = el("input", { type: "text", name: "result", maxLength: 300, testid: "callback-result",
    value: drafts.get(task.id) || "", i18nAttrs: { placeholder: "callbacks.result_placeholder",
      "aria-label": "callbacks.result_placeholder" },
    oninput: () => drafts.set(task.id, input.value) });
  const msg = el("span", { className: "msg", attrs: { role: "status" } });
  const form = el("form", { className: "callback-close", noValidate: true },
    input, el("button", { type: "submit", className: "btn small", testid: "callback-close", i18n: "callbacks.close" }), msg);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const result = input.value.trim();
    if (!result) { input.focus(); return; }
    const res = await api("POST", "/api/callbacks/" + task.id + "/close", { result });
    if (res.ok) { drafts.delete(task.id); await refresh(); }
    else msg.textContent = (res.data && res.data.error) || "";
  });
  return form;
}

function row(task) {
  const name = task.party_name || t("callbacks.unknown_party");
  return el("li", { className: "callback-row", testid: "callback-row",
    dataset: { taskId: String(task.id), overdue: task.overdue ? "yes" : "no" } },
    el("span", { className: "cb-party" }, el("strong", {}, name),
      task.phone ? phone(task.phone, { where: "callbacks", name: task.party_name }) : null),
    el("span", { className: "cb-missed badge", testid: "callback-missed" },
      t("callbacks.missed_count", { count: task.missed_count })),
    el("span", { className: "cb-first" }, el("time", { dateTime: task.first_missed_at }, fmtDateTime(task.first_missed_at))),
    el("span", { className: "cb-due" }, el("time", { dateTime: task.due_at }, fmtDateTime(task.due_at)),
      task.overdue ? el("span", { className: "badge overdue", testid: "callback-overdue", i18n: "callbacks.overdue" }) : null),
    me && me.role === "head" ? el("span", { className: "cb-manager" }, task.manager_name || task.manager || "") : null,
    closeForm(task));
}

async function refresh() {
  if (!list) return;
  const res = await api("GET", "/api/callbacks");
  if (!res.ok || !res.data) return;
  const tasks = res.data.tasks;
  list.replaceChildren(...tasks.map(row));
  empty.hidden = tasks.length > 0;
}

// A hit opens the client's or lead's card; its numbers are written one way and can be called.
function hit(item) {
  return el("li", { className: "search-hit", testid: "search-hit", dataset: { kind: item.kind, id: String(item.id) } },
    el("a", { href: `#clients/${item.kind}/${item.id}`, testid: "search-hit-open" }, el("strong", {}, item.name)),
    item.company ? el("span", { className: "muted" }, " · " + item.company) : null,
    ...item.phones.map((p) => phone(p.e164, { where: "search", name: item.name, display: p.display })));
}

// The same search as the client list (numbers in any spelling, ё/е, contact persons, INN): clients, then leads.
let searchSeq = 0;
async function search(q) {
  const seq = ++searchSeq;
  if (q.trim().length < 2) { results.replaceChildren(); return; }
  const query = "limit=10&q=" + encodeURIComponent(q.trim());
  const [clients, leads] = await Promise.all([api("GET", "/api/clients?" + query), api("GET", "/api/leads?" + query)]);
  if (seq !== searchSeq) return; // a later keystroke's answer wins
  const items = [clients, leads].flatMap((res) => (res.ok && res.data ? res.data.items : []));
  results.replaceChildren(...(items.length ? items.map(hit)
    : [el("li", { className: "muted", i18n: "callbacks.search_empty" })]));
}

registerView({
  id: "callbacks",
  labelKey: "callbacks.nav",
  order: 30,
  mount(section, manager) {
    me = manager;
    const box = el("input", { type: "search", name: "q", testid: "search-input", autocomplete: "off",
      i18nAttrs: { placeholder: "callbacks.search_placeholder", "aria-label": "callbacks.search_placeholder" },
      oninput: () => { clearTimeout(searchTimer); searchTimer = setTimeout(() => search(box.value), 250); } });
    results = el("ul", { className: "search-results", testid: "search-results" });
    list = el("ul", { className: "callback-list", testid: "callback-list" });
    empty = el("p", { className: "muted", i18n: "callbacks.empty", hidden: true });
    section.append(el("div", { className: "search" }, box, results),
      el("h2", { i18n: "callbacks.title" }), list, empty);
  },
  show() { refresh(); },
  onMessage(msg) { if (msg.type === "call.ended") refresh(); },
  onLanguage() { refresh(); },
});
