// Tasks: a list (overdue first, highlighted) and a day/week calendar; a task is set with a date and a time,
// completed with a result, reopened (also when a call closed it by itself — the task names that call), and
// handed to someone else by a head.
import { api } from "./api.js";
import {
  crmSettings, errorText, field, isHead, localParts, managerSelect, managers, statusLine, taskKindName, zonedInstant,
} from "./crm.js";
import { el, setText } from "./dom.js";
import { fmtDateTime, fmtDuration, fmtFull, fmtTime, language, t } from "./i18n.js";
import { phone } from "./phone.js";
import { registerView } from "./views.js";

let me = null;
let body = null;
let mode = "list";
let day = null; // the day shown by the calendar, "2026-12-01" in the configured zone
let people = [];
const form = {};

function addDays(date, n) {
  const [y, m, d] = date.split("-").map(Number);
  const x = new Date(Date.UTC(y, m - 1, d + n));
  return x.toISOString().slice(0, 10);
}

function weekStart(date) {
  const [y, m, d] = date.split("-").map(Number);
  const wd = (new Date(Date.UTC(y, m - 1, d)).getUTCDay() + 6) % 7;
  return addDays(date, -wd);
}

function dayTitle(date) {
  return new Intl.DateTimeFormat(language(), { weekday: "short", day: "numeric", month: "long", timeZone: "UTC" })
    .format(new Date(date + "T12:00:00Z"));
}

async function act(path, payload, msg) {
  const res = await api(path.method, path.url, payload);
  if (res.ok) await refresh(); else msg.say(errorText(res), false);
}

function taskRow(task) {
  const msg = statusLine("task-row-msg");
  const party = task.party_id ? el("a", { href: `#clients/${task.party_kind}/${task.party_id}` }, task.party_name || "—") : null;
  const closedBy = task.closed_by_call
    ? el("span", { className: "closed-by", testid: "task-closed-by-call" }, t("crm.closed_by_call_at", {
      when: fmtDateTime(task.closed_by_call_started_at, { always: true }), talk: fmtDuration(task.closed_by_call_talk_seconds) }))
    : null;
  const actions = el("div", { className: "task-actions" });
  if (task.status === "open") {
    const result = el("input", { type: "text", maxLength: 300, testid: "task-result", i18nAttrs: { placeholder: "callbacks.result_placeholder",
      "aria-label": "callbacks.result_placeholder" } });
    const done = el("form", { className: "task-done", noValidate: true }, result,
      el("button", { type: "submit", className: "btn small", i18n: "crm.complete", testid: "task-complete" }));
    done.addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (!result.value.trim()) { result.focus(); return; }
      act({ method: "POST", url: `/api/tasks/${task.id}/complete` }, { result: result.value }, msg);
    });
    const local = localParts(task.due_at);
    const date = el("input", { type: "date", value: local.date, i18nAttrs: { "aria-label": "crm.field.date" } });
    const time = el("input", { type: "time", value: local.time, step: 300, i18nAttrs: { "aria-label": "crm.field.time" } });
    const move = el("button", { type: "button", className: "btn small", i18n: "crm.move_due", onclick: () =>
      act({ method: "PATCH", url: `/api/tasks/${task.id}` }, { due_at: zonedInstant(date.value, time.value) }, msg) });
    actions.append(done, el("div", { className: "when" }, date, time, move));
  } else {
    actions.append(el("button", { type: "button", className: "btn small", i18n: "crm.reopen", testid: "task-reopen",
      onclick: () => act({ method: "POST", url: `/api/tasks/${task.id}/reopen` }, {}, msg) }));
  }
  if (isHead(me)) {
    const who = managerSelect(people, task.manager_id ? (people.find((m) => m.id === task.manager_id) || {}).login : "",
      { testid: "task-reassign" });
    who.setAttribute("aria-label", t("crm.reassign"));
    who.addEventListener("change", () => act({ method: "PATCH", url: `/api/tasks/${task.id}` }, { manager: who.value }, msg));
    actions.append(who);
  }
  actions.append(msg);
  return el("li", { className: "task-row", testid: "task-row",
    dataset: { id: String(task.id), overdue: task.overdue ? "yes" : "no", status: task.status } },
    el("div", { className: "task-main" },
      el("time", { dateTime: task.due_at, title: fmtFull(task.due_at), className: "task-due" }, fmtDateTime(task.due_at, { always: true })),
      task.overdue ? el("span", { className: "badge overdue", i18n: "callbacks.overdue", testid: "task-overdue" }) : null,
      el("span", { className: "badge" }, taskKindName(task.kind)),
      el("strong", { className: "task-title" }, task.title), party,
      task.phone ? phone(task.phone, { where: "tasks", name: task.party_name, display: task.phone_display }) : null,
      !isHead(me) ? null : el("span", { className: "muted" }, task.manager_name || ""),
      task.status === "closed" && task.result ? el("span", { className: "muted" }, "— " + task.result) : null,
      closedBy),
    task.note ? el("p", { className: "muted task-note" }, task.note) : null,
    actions);
}

async function fetchPage(params, cursor) {
  const p = new URLSearchParams(params);
  if (form.manager && form.manager.value) p.set("manager", form.manager.value);
  if (cursor) p.set("cursor", cursor);
  const res = await api("GET", "/api/tasks?" + p.toString());
  return res.ok && res.data ? { items: res.data.items, next: res.data.next || null } : { items: [], next: null };
}

// The calendar shows one day or week: every page of it (a day's tasks are never cut off silently).
async function fetchTasks(params) {
  const items = [];
  let cursor = null;
  do {
    const page = await fetchPage(params, cursor);
    items.push(...page.items);
    cursor = page.next;
  } while (cursor);
  return items;
}

// The list pages on by «Показать ещё»: 100 tasks at a time, never a silent stop.
// Each refresh numbered: an answer that arrives after a newer refresh began is dropped (a slow «open» list
// answered after the «all» one asked later replaced it, and the task just completed vanished).
let asked = 0;

// The CSV links ask for what the list shows: the same filters, every matching task.
function downloadLinks() {
  const p = new URLSearchParams({ status: form.status.value });
  if (form.manager && form.manager.value) p.set("manager", form.manager.value);
  return el("p", { className: "downloads" }, el("span", { i18n: "crm.csv.tasks_download" }),
    el("a", { className: "btn small", href: "/api/tasks.csv?" + p, testid: "tasks-csv", attrs: { download: "" } }, "CSV"),
    el("a", { className: "btn small", href: "/api/tasks.csv?" + p + "&sep=comma", testid: "tasks-csv-comma",
      attrs: { download: "" }, i18n: "crm.csv.comma" }));
}

async function renderList(turn) {
  const params = { status: form.status.value, limit: "100" };
  const first = await fetchPage(params, null);
  if (turn !== asked) return;
  if (!first.items.length) {
    body.replaceChildren(downloadLinks(), el("p", { className: "empty", i18n: "crm.tasks_empty" }));
    return;
  }
  const list = el("ol", { className: "task-list", testid: "task-list" }, first.items.map(taskRow));
  let cursor = first.next;
  const more = el("button", { type: "button", className: "btn", i18n: "page.history.more", testid: "task-more",
    hidden: !cursor, onclick: async () => {
      more.disabled = true;
      const page = await fetchPage(params, cursor);
      list.append(...page.items.map(taskRow));
      cursor = page.next;
      more.hidden = !cursor;
      more.disabled = false;
    } });
  body.replaceChildren(downloadLinks(), list, more);
}

async function renderCalendar(turn) {
  const days = mode === "week" ? 7 : 1;
  const first = mode === "week" ? weekStart(day) : day;
  const from = zonedInstant(first, "00:00");
  const to = zonedInstant(addDays(first, days), "00:00");
  const items = await fetchTasks({ status: "all", from, to, limit: "500" });
  if (turn !== asked) return;
  const columns = [];
  for (let i = 0; i < days; i++) {
    const date = addDays(first, i);
    const mine = items.filter((task) => localParts(task.due_at).date === date);
    const today = date === localParts().date;
    columns.push(el("section", { className: "cal-day" + (today ? " today" : ""), testid: "cal-day", dataset: { date } },
      el("h2", {}, dayTitle(date)),
      mine.length ? el("ol", { className: "task-list" }, mine.map((task) => mode === "day" ? taskRow(task)
        : el("li", { className: "cal-task", testid: "cal-task", dataset: { overdue: task.overdue ? "yes" : "no", status: task.status } },
          el("time", { dateTime: task.due_at }, fmtTime(task.due_at)), " ",
          task.party_id ? el("a", { href: `#clients/${task.party_kind}/${task.party_id}` }, task.title) : task.title)))
        : el("p", { className: "muted", i18n: "crm.day_free" })));
  }
  setText(form.range, days === 1 ? dayTitle(first) : dayTitle(first) + " — " + dayTitle(addDays(first, 6)));
  body.replaceChildren(el("div", { className: "calendar " + mode, testid: "calendar" }, columns));
}

async function refresh() {
  const turn = ++asked;
  // A head's rows carry the reassign picker: the list can be asked for (show()) while mount() still waits
  // for the managers, and rows built then had an empty picker.
  if (isHead(me) && !people.length) people = await managers();
  for (const b of form.modes) b.setAttribute("aria-pressed", String(b.dataset.mode === mode));
  form.nav.hidden = mode === "list";
  form.statusField.hidden = mode !== "list";
  if (mode === "list") await renderList(turn); else await renderCalendar(turn);
}

function newTaskForm(settings) {
  const title = el("input", { type: "text", maxLength: 300, testid: "new-task-title", value: t("crm.default_task_title") });
  const kind = el("select", {}, settings.task_kinds.map((k) => el("option", { value: k }, taskKindName(k))));
  const date = el("input", { type: "date", testid: "new-task-date", value: addDays(localParts().date, 1) });
  const time = el("input", { type: "time", testid: "new-task-time", value: "10:00", step: 300 });
  const note = el("textarea", { rows: 2, maxLength: 5000 });
  const msg = statusLine("new-task-msg");
  const node = el("form", { className: "quick", noValidate: true },
    field("crm.field.task_title", title), field("crm.field.task_kind", kind),
    el("div", { className: "when" }, field("crm.field.date", date), field("crm.field.time", time)),
    field("crm.field.note", note),
    el("div", { className: "form-foot" }, el("button", { type: "submit", className: "btn primary", i18n: "page.action.save", testid: "new-task-save" }), msg));
  node.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const res = await api("POST", "/api/tasks", { title: title.value, kind: kind.value, due_at: zonedInstant(date.value, time.value),
      note: note.value || null });
    if (res.ok) { msg.say(t("page.action.saved"), true); note.value = ""; await refresh(); } else msg.say(errorText(res), false);
  });
  return el("details", { className: "action", testid: "new-task" }, el("summary", { i18n: "crm.new_task" }), node);
}

async function mount(section, manager) {
  me = manager;
  day = localParts().date;
  body = el("div", { className: "tasks-body" });
  form.status = el("select", { testid: "task-status-filter", onchange: refresh },
    ["open", "closed", "all"].map((s) => el("option", { value: s, i18n: "crm.task_filter." + s })));
  form.statusField = field("crm.filter.status", form.status);
  form.modes = ["list", "day", "week"].map((m) => el("button", { type: "button", className: "btn small", dataset: { mode: m },
    testid: "tasks-mode-" + m, i18n: "crm.tasks_mode." + m, onclick: () => { mode = m; refresh(); } }));
  form.range = el("strong", { className: "cal-range", attrs: { "aria-live": "polite" } });
  const step = (n) => () => { day = addDays(day, mode === "week" ? 7 * n : n); refresh(); };
  form.nav = el("div", { className: "cal-nav", hidden: true },
    el("button", { type: "button", className: "btn small", i18n: "crm.prev", testid: "cal-prev", onclick: step(-1) }),
    el("button", { type: "button", className: "btn small", i18n: "crm.today", onclick: () => { day = localParts().date; refresh(); } }),
    el("button", { type: "button", className: "btn small", i18n: "crm.next", testid: "cal-next", onclick: step(1) }), form.range);
  const filters = el("div", { className: "filters" }, form.statusField);
  section.append(el("div", { className: "section-head" }, el("h1", { i18n: "crm.tasks_title" }),
    el("div", { className: "kind-switch", attrs: { role: "group" } }, form.modes)), filters, form.nav);
  const settings = await crmSettings();
  section.append(newTaskForm(settings), body);
  if (isHead(me)) {
    people = await managers();
    form.manager = managerSelect(people, "", { any: true, testid: "task-manager-filter" });
    form.manager.addEventListener("change", refresh);
    filters.append(field("crm.filter.manager", form.manager));
  }
}

registerView({
  id: "tasks",
  labelKey: "crm.tasks_nav",
  order: 18,
  mount,
  show() { if (body) refresh(); },
  onMessage(msg) { if (msg.type === "call.ended" && body) setTimeout(refresh, 1500); },
  onLanguage() { if (body) refresh(); },
});

