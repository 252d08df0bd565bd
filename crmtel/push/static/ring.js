// A call ringing at one of the manager's own phones makes itself known in a background tab: the tab's title
// and favicon, a browser notification (a click brings this tab forward with the card), and a ring tone the
// manager can switch off. Heads see everyone's calls but only their own phones ring here.
//
// Tabs of one manager agree through the Web Locks API: the first tab to take the call's lock rings (sound and
// notification), the others only show the card and the title; when any tab "takes" the call (the manager
// looks at it: a visible tab, or a click on the notification) it says so on a BroadcastChannel and every tab
// stops ringing. The answer, the end or the ring stopping does the same in each tab by itself.
import { $, el, setText } from "./dom.js";
import { t } from "./i18n.js";

const SOUND_KEY = "crmtel.ring_sound";
const channel = "BroadcastChannel" in window ? new BroadcastChannel("crmtel-ring") : null;
const ringing = new Map(); // call_id -> { who, release, notification }
let me = null;
let baseTitle = document.title;
let audio = null; // { ctx, timer }
let soundButton = null;

export function setBaseTitle(text) {
  baseTitle = text;
  drawTitle();
}

export const soundOn = () => localStorage.getItem(SOUND_KEY) !== "off";

export function mountRing(manager, header) {
  me = manager;
  stopAll();
  soundButton = header.querySelector("#ring-sound");
  if (soundButton) {
    // One bell: while the browser has not been asked about notifications, a click asks; then it switches
    // the ring tone on and off.
    soundButton.addEventListener("click", () => {
      if (canAsk()) { askPermission(); return; }
      localStorage.setItem(SOUND_KEY, soundOn() ? "off" : "on");
      drawButtons();
      if (!soundOn()) stopSound();
      else if (iRing()) startSound();
    });
  }
  drawButtons();
}

export function ringButtons() {
  return [el("button", { type: "button", id: "ring-sound", className: "btn ghost small icon-btn ring-bell", testid: "ring-sound" })];
}

const canAsk = () => "Notification" in window && Notification.permission === "default";

// Asked on a click (the login button, or the header's bell), never by itself on load.
export function askPermission() {
  if (!canAsk()) return;
  Notification.requestPermission().then(drawButtons, drawButtons);
}

export function relabelRing() { drawButtons(); drawTitle(); }

function drawButtons() {
  if (!soundButton) return;
  // A sign on the button, its words for screen readers and the tooltip (the header stays narrow on a phone).
  const label = canAsk() ? t("page.ring.notify") : t(soundOn() ? "page.ring.sound_on" : "page.ring.sound_off");
  soundButton.classList.toggle("ask", canAsk());
  soundButton.setAttribute("aria-pressed", String(!canAsk() && soundOn()));
  soundButton.setAttribute("aria-label", label);
  soundButton.title = label;
  // A note (in every font, unlike the bell emoji); struck through when the tone is off.
  soundButton.classList.toggle("off", !canAsk() && !soundOn());
  setText(soundButton, "♪");
}

const mine = (msg) => me && (me.extensions || []).includes(msg.extension);
const iRing = () => [...ringing.values()].some((r) => r.release);

export function ringMessage(msg) {
  switch (msg.type) {
    case "hello": for (const id of [...ringing.keys()]) if (!(msg.live || []).includes(id)) stop(id); break;
    case "call.ringing":
      if (mine(msg) && msg.direction !== "outbound") start(msg);
      break;
    case "call.answered": case "call.ended": stop(msg.call_id); break;
    case "call.ring_stopped": if (mine(msg)) stop(msg.call_id); break;
    case "call.card": {
      const entry = ringing.get(msg.call_id);
      if (entry && msg.card && msg.card.name) { entry.who = msg.card.name; drawTitle(); }
      break;
    }
    default: break;
  }
}

function whoOf(msg) {
  const card = msg.card || {};
  const name = msg.caller_name && msg.caller_name !== "<unknown>" ? msg.caller_name : null;
  return card.name || name || msg.caller_number || t("page.card.unknown");
}

function start(msg) {
  if (ringing.has(msg.call_id)) return;
  const entry = { who: whoOf(msg), release: null, notification: null };
  ringing.set(msg.call_id, entry);
  drawTitle();
  // Looked at right now (this tab in front, its window focused): no need to ring.
  if (document.visibilityState === "visible" && document.hasFocus()) { take(msg.call_id); return; }
  const ring = () => {
    if (ringing.get(msg.call_id) !== entry) return Promise.resolve();
    return new Promise((release) => {
      entry.release = release;
      notify(msg, entry);
      if (soundOn()) startSound();
    });
  };
  if (navigator.locks) navigator.locks.request("crmtel-ring-" + msg.call_id, { ifAvailable: true }, (lock) => (lock ? ring() : null));
  else ring();
}

function notify(msg, entry) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  try {
    const n = new Notification(t("page.ring.title", { who: entry.who }), {
      body: t("page.card.ringing", { ext: msg.extension }), tag: msg.call_id, renotify: false,
      icon: "/static/favicon-ringing.svg",
    });
    n.onclick = () => {
      window.focus();
      take(msg.call_id);
      n.close();
      const card = document.querySelector(`[data-call-id="${CSS.escape(msg.call_id)}"]`);
      if (card) { card.scrollIntoView({ block: "nearest" }); card.focus({ preventScroll: true }); }
    };
    entry.notification = n;
  } catch (_e) {
    // Some browsers only allow notifications from a service worker: the title and the sound still ring.
  }
}

// The manager has seen the call in this tab: every tab stops ringing it (the card stays until it is answered).
function take(callId) {
  quiet(callId);
  if (channel) channel.postMessage({ taken: callId });
}

function quiet(callId) {
  const entry = ringing.get(callId);
  if (!entry) return;
  if (entry.notification) entry.notification.close();
  if (entry.release) entry.release();
  entry.notification = null;
  entry.release = null;
  if (!iRing()) stopSound();
}

function stop(callId) {
  quiet(callId);
  ringing.delete(callId);
  drawTitle();
}

export function stopAll() { for (const id of [...ringing.keys()]) stop(id); }

if (channel) channel.onmessage = (ev) => { if (ev.data && ev.data.taken) quiet(ev.data.taken); };
const looked = () => { if (document.visibilityState === "visible") for (const id of ringing.keys()) take(id); };
document.addEventListener("visibilitychange", looked);
window.addEventListener("focus", looked);

function drawTitle() {
  const first = ringing.values().next().value;
  document.title = first ? t("page.ring.title", { who: first.who }) + " — " + baseTitle : baseTitle;
  document.documentElement.dataset.ringing = first ? "yes" : "no";
  const icon = $("#favicon");
  if (icon) icon.href = first ? "/static/favicon-ringing.svg" : "/static/favicon.svg";
}

// The ring tone: two short beeps every 3 s, made by the browser (no file to fetch). A browser that allows no
// sound before the first click on the page stays silent until then; the title and notification still ring.
function startSound() {
  if (audio) return;
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) return;
  const ctx = new Ctx();
  const beep = () => {
    for (const at of [0, 0.4]) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = 440;
      gain.gain.value = 0.08;
      osc.connect(gain).connect(ctx.destination);
      osc.start(ctx.currentTime + at);
      osc.stop(ctx.currentTime + at + 0.25);
    }
  };
  beep();
  audio = { ctx, timer: setInterval(beep, 3000) };
  document.documentElement.dataset.ringSound = "playing";
}

function stopSound() {
  if (!audio) return;
  clearInterval(audio.timer);
  audio.ctx.close();
  audio = null;
  delete document.documentElement.dataset.ringSound;
}
