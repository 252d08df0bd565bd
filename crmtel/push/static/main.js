// The managers' page: login, the shared header, the live cards and the registered views.
// A new view is one module that calls registerView() (see views.js) plus one import line below.
import { api, onUnauthorized } from "./api.js";
import { handleMessage, mountCards, clearCards, relabelCards } from "./card.js";
import { $, relabel } from "./dom.js";
import { buildHeader, setConnection, whoText, wireHeader } from "./header.js";
import { configure, guessLanguage, language, onLanguage, setLanguage, t } from "./i18n.js";
import { askPermission, mountRing, relabelRing, ringMessage, setBaseTitle, stopAll } from "./ring.js";
import * as socket from "./socket.js";
import { allViews } from "./views.js";
import { mountWebphone, stopWebphone } from "./webphone.js";
import "./history.js";
import "./clients.js";
import "./deals.js";
import "./tasks.js";
import "./callbacks.js";
import "./dial.js";
import "./settings.js";

let me = null;
let header = null;
const mounted = new Map(); // view id -> its <section>

function showLogin() {
  socket.disconnect();
  stopWebphone();
  clearCards();
  stopAll();
  me = null;
  $("#app").hidden = true;
  $("#login-screen").hidden = false;
  setBaseTitle(t("page.title.login"));
  $("#login-name").focus();
}

// "#clients/client/12": the view's id, then what the view itself reads (a record, filters).
function showView(hash) {
  const cut = hash.search(/[/?]/);
  const id = cut < 0 ? hash : hash.slice(0, cut);
  const rest = cut < 0 ? "" : hash.slice(cut + 1);
  const views = allViews();
  const view = views.find((v) => v.id === id) || views[0];
  for (const [vid, section] of mounted) section.hidden = vid !== view.id;
  for (const link of header.querySelectorAll("a[data-view]")) {
    if (link.dataset.view === view.id) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  setBaseTitle(t("page.title.main"));
  if (view.show) view.show(rest);
}

async function start(manager) {
  me = manager;
  configure(manager);
  if (manager.locale && manager.locale !== language()) await setLanguage(manager.locale);
  $("#login-screen").hidden = true;
  $("#app").hidden = false;
  header = buildHeader(me, language(), allViews());
  $("#app-header").replaceWith(header);
  wireHeader(header, {
    onLanguage: async (code) => { await setLanguage(code); },
    onLogout: async () => { showLogin(); },
  });
  mountCards($("#popups"), me);
  mountWebphone(me, $("#popups"));
  mountRing(me, header);
  const main = $("#views");
  for (const view of allViews()) {
    if (mounted.has(view.id)) continue;
    const section = document.createElement("section");
    section.id = "view-" + view.id;
    section.className = "view";
    section.dataset.testid = "view-" + view.id;
    main.append(section);
    mounted.set(view.id, section);
    view.mount(section, me);
  }
  socket.connect();
  showView(location.hash.slice(1));
}

onLanguage(() => {
  relabel(document);
  relabelCards();
  if (header && me) {
    header.querySelector("#me").textContent = whoText(me);
    setConnection(header, socket.status());
  }
  setBaseTitle(t(me ? "page.title.main" : "page.title.login"));
  relabelRing();
  if (me) for (const view of allViews()) if (view.onLanguage) view.onLanguage();
});

socket.onStatus((state) => { if (header) setConnection(header, state); });
socket.onMessage((msg) => {
  handleMessage(msg);
  ringMessage(msg);
  for (const view of allViews()) if (view.onMessage) view.onMessage(msg);
});
onUnauthorized(() => { if (me) showLogin(); });
window.addEventListener("hashchange", () => { if (me) showView(location.hash.slice(1)); });

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  // The moment to ask: the manager just clicked to start the day's work here (never on load).
  askPermission();
  const error = $("#login-error");
  error.textContent = "";
  const res = await api("POST", "/api/login", { login: $("#login-name").value, password: $("#login-password").value });
  if (res.ok) {
    $("#login-password").value = "";
    // /api/me adds what the login answer lacks: the language, time zone and currency.
    const full = await api("GET", "/api/me");
    await start(full.ok ? full.data : res.data);
  }
  else error.textContent = res.status === 401 ? t("page.login.wrong") : (res.data && res.data.error) || t("page.login.failed");
});

async function boot() {
  await setLanguage(guessLanguage());
  const res = await api("GET", "/api/me");
  if (res.ok) await start(res.data); else showLogin();
}

boot();
