// The browser phone: this page registers on the PBX as a WebRTC device (99<ext>) of the manager's extension
// and rings together with the desk phone. One tab owns it (Web Locks); the others show its state (BroadcastChannel).
// The registration (device, realm, digest hash — never a password) comes from GET /api/phone for this session.
import JsSIP from "./vendor/jssip.js";
import { api } from "./api.js";
import { el, setText } from "./dom.js";
import { fmtClock, t } from "./i18n.js";
import { formatPhone } from "./phone.js";

const KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];
const MIC_KEY = "crmtel.webphone.mic";
const SPEAKER_KEY = "crmtel.webphone.speaker";

let panel = null;      // the phone's section at the top of the calls column
let reg = null;        // GET /api/phone's answer
let ua = null;         // JsSIP.UA while this tab owns the phone
let call = null;       // {session, incoming, state: "ringing"|"calling"|"talking", remote, startedAt, muted, held}
let state = "off";     // off | insecure | starting | registered | unregistered | failed | other-tab | mic-denied | mic-missing
let channel = null;    // BroadcastChannel between this manager's tabs
let releaseLock = null;
let lockName = null;   // the Web Lock all of this manager's tabs ask for
let watching = false;  // the microphone's permission and devices are watched (watchMicrophone)
let lockWait = null;   // AbortController of a lock request not granted yet (withdrawn when the page logs out)
let timer = null;
let colleagues = [];
let remote = null;     // the owner tab's last state, in a tab that does not own the phone
let dialRequest = null; // dial.js's click handler: the owner places a call clicked in another tab
const audio = new Audio();
audio.autoplay = true;

export const webphoneReady = () => ua !== null && state === "registered" && call === null;

// Another tab of this manager owns the phone and it is free: a click here is placed there, from the browser.
export const webphoneElsewhere = () => ua === null && channel !== null && remote !== null
  && remote.state === "registered" && !remote.call;

export function askOwnerToCall(number, name) {
  if (!webphoneElsewhere()) return false;
  channel.postMessage({ type: "dial", number, name: name || null });
  return true;
}

export function onDialRequest(handler) { dialRequest = handler; }

// Click-to-call through the browser: the PBX dials out from the browser phone's context.
export function placeCall(number) {
  if (!webphoneReady()) return false;
  const target = String(number).replace(/[^\d+*#]/g, "");
  if (!target) return false;
  const session = ua.call(`sip:${target}@${host()}`, callOptions());
  attach(session, false, target);
  return true;
}

export async function mountWebphone(me, container) {
  stopWebphone();
  const res = await api("GET", "/api/phone");
  if (!res.ok || !res.data) return; // the browser phone is off, or not set up for this manager
  reg = res.data;
  panel = build();
  container.prepend(panel);
  cardObserver.observe(container, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"] });
  if (!window.isSecureContext || !navigator.mediaDevices || !window.RTCPeerConnection) {
    show("insecure");
    return;
  }
  const others = await api("GET", "/api/managers");
  colleagues = others.ok && others.data ? others.data.managers.filter((m) => m.id !== me.id && m.extensions.length) : [];
  fillColleagues();
  channel = "BroadcastChannel" in window ? new BroadcastChannel(`crmtel-webphone-${me.login}`) : null;
  if (channel) channel.onmessage = (ev) => fromOwner(ev.data);
  show("other-tab");
  if (channel) channel.postMessage({ type: "ask" });
  lockName = `crmtel-webphone-${me.login}`;
  claim();
  watchMicrophone();
}

// Ask for the phone: the tab granted the lock owns it until it closes, logs out, or finds no microphone.
function claim() {
  if (!reg || releaseLock || lockWait) return;
  const own = () => new Promise((resolve) => { releaseLock = resolve; remote = null; start(); });
  if (navigator.locks) {
    // A tab that logs out while it waits must not take the phone later (invisible, ringing, holding the lock).
    const wait = new AbortController();
    lockWait = wait;
    navigator.locks.request(lockName, { signal: wait.signal }, () => {
      if (lockWait === wait) lockWait = null;
      return own();
    }).catch(() => { /* withdrawn: the page logged out first */ });
  } else own();
}

// A tab whose microphone is refused or missing gives the phone up: another tab may have one (or be allowed),
// and a tab holding the lock without a phone left every other tab saying "works in another tab" for ever.
function giveUp() {
  if (releaseLock) { releaseLock(); releaseLock = null; }
}

// The microphone allowed in the site's settings, or a headset plugged in: the tabs that gave the phone up ask
// for it again (one of them gets it), without a reload.
function watchMicrophone() {
  if (watching) return; // once per page: the listeners read the current login's state
  watching = true;
  const retry = () => { if (state === "mic-denied" || state === "mic-missing") claim(); };
  navigator.mediaDevices.addEventListener("devicechange", retry);
  if (navigator.permissions) {
    navigator.permissions.query({ name: "microphone" })
      .then((status) => { status.onchange = () => { if (status.state !== "denied") retry(); }; })
      .catch(() => { /* this browser cannot tell: a reload retries */ });
  }
}

export function stopWebphone() {
  if (call) { try { call.session.terminate(); } catch (_e) { /* already over */ } }
  call = null;
  if (ua) { ua.stop(); ua = null; }
  if (releaseLock) { releaseLock(); releaseLock = null; }
  if (lockWait) { lockWait.abort(); lockWait = null; }
  reg = null;
  if (channel) { channel.close(); channel = null; }
  clearInterval(timer);
  if (panel) { panel.remove(); panel = null; }
  cardObserver.disconnect();
  for (const box of document.querySelectorAll(".card-webphone")) box.remove();
  state = "off";
  remote = null;
}

function host() { return reg.uri.split("@")[1]; }

async function start() {
  if (!reg) return;
  show("starting");
  if (!(await microphoneOk())) { giveUp(); return; }
  await listDevices();
  if (!reg || !releaseLock) return; // logged out meanwhile
  const socket = new JsSIP.WebSocketInterface(reg.ws_url);
  ua = new JsSIP.UA({
    sockets: [socket],
    uri: reg.uri,
    authorization_user: reg.device,
    realm: reg.realm,
    ha1: reg.ha1,
    register: true,
    register_expires: reg.register_seconds,
    session_timers: false,
    connection_recovery_min_interval: 2,
    connection_recovery_max_interval: 30,
    user_agent: "crmtel web phone",
  });
  ua.on("registered", () => show("registered"));
  ua.on("unregistered", () => show("unregistered"));
  ua.on("registrationFailed", () => show("failed"));
  ua.on("disconnected", () => { if (state === "registered") show("unregistered"); });
  ua.on("newRTCSession", ({ session, originator }) => {
    if (originator !== "remote") return;
    if (call) { session.terminate({ status_code: 486 }); return; }
    attach(session, true, session.remote_identity.uri.user, session.remote_identity.display_name);
  });
  ua.start();
}

// Back online after a network drop: reconnect now instead of waiting for JsSIP's back-off.
window.addEventListener("online", () => {
  if (ua && !ua.isConnected()) { ua.stop(); ua.start(); }
});

async function microphoneOk() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    for (const track of stream.getTracks()) track.stop();
    return true;
  } catch (err) {
    show(err && (err.name === "NotFoundError" || err.name === "OverconstrainedError") ? "mic-missing" : "mic-denied");
    return false;
  }
}

function callOptions() {
  const mic = localStorage.getItem(MIC_KEY);
  return {
    mediaConstraints: { audio: mic ? { deviceId: { exact: mic } } : true, video: false },
    pcConfig: { iceServers: (reg.ice_servers || []).map((urls) => ({ urls })) },
    rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: false },
  };
}

function attach(session, incoming, number, name) {
  call = { session, incoming, state: incoming ? "ringing" : "calling", remote: number || "", name: name || "",
    startedAt: null, muted: false, held: false };
  const media = () => {
    const pc = session.connection;
    if (!pc) return;
    pc.addEventListener("track", (ev) => { audio.srcObject = ev.streams[0] || new MediaStream([ev.track]); });
  };
  if (session.connection) media(); else session.on("peerconnection", media);
  session.on("accepted", () => { call.state = "talking"; call.startedAt = Date.now(); tick(); draw(); });
  session.on("confirmed", () => { if (call && !call.startedAt) { call.state = "talking"; call.startedAt = Date.now(); } draw(); });
  session.on("hold", () => { call.held = true; draw(); });
  session.on("unhold", () => { call.held = false; draw(); });
  const over = () => { if (call && call.session === session) { call = null; audio.srcObject = null; clearInterval(timer); draw(); } };
  session.on("ended", over);
  session.on("failed", over);
  draw();
}

// The ringing call's card (card.js draws it from the PBX's events) gets the phone's answer/decline buttons too:
// the card whose number ends like the caller's, while the browser rings.
const cardObserver = new MutationObserver(() => cardButtons());

function digits(text) { return String(text || "").replace(/\D/g, "").slice(-10); }

function cardButtons() {
  // New cards are put first in the column: the phone stays above them.
  if (panel && panel.parentNode && panel.parentNode.firstElementChild !== panel) panel.parentNode.prepend(panel);
  const ringing = call && call.incoming && call.state === "ringing" ? digits(call.remote) : "";
  for (const box of document.querySelectorAll(".card-webphone")) {
    const card = box.closest(".card");
    const number = card && card.querySelector("[data-phone]");
    if (!ringing || !card || card.dataset.state !== "ringing" || !number || digits(number.dataset.phone) !== ringing) box.remove();
  }
  if (!ringing) return;
  for (const card of document.querySelectorAll('.card[data-state="ringing"]')) {
    const number = card.querySelector("[data-phone]");
    if (!number || digits(number.dataset.phone) !== ringing || card.querySelector(".card-webphone")) continue;
    const status = card.querySelector("[data-testid=card-status]");
    const box = el("div", { className: "card-webphone webphone-actions", testid: "card-webphone" },
      button("webphone.answer", "card-webphone-answer", answer, { className: "primary" }),
      button("webphone.decline", "card-webphone-decline", decline, { className: "danger" }));
    if (status) status.after(box); else card.append(box);
  }
}

function tick() {
  clearInterval(timer);
  timer = setInterval(() => drawTimer(), 1000);
  drawTimer();
}

// --- what the other tabs see ------------------------------------------------------------------------

function snapshot() {
  return { type: "state", state, call: call && { state: call.state, remote: call.remote, name: call.name,
    startedAt: call.startedAt, muted: call.muted, held: call.held } };
}

function fromOwner(msg) {
  if (msg.type === "ask" && ua) channel.postMessage(snapshot());
  if (msg.type === "state" && !ua) { state = "other-tab"; remote = msg; drawRemote(msg); }
  if (msg.type === "dial" && ua && dialRequest && typeof msg.number === "string") dialRequest(msg.number, msg.name);
}

function broadcast() { if (channel && ua) channel.postMessage(snapshot()); }

// --- the panel --------------------------------------------------------------------------------------

function button(key, testid, onclick, extra = {}) {
  return el("button", { type: "button", className: "btn small " + (extra.className || ""), testid, i18n: key, onclick,
    attrs: extra.attrs });
}

function build() {
  const keypad = el("div", { className: "webphone-keypad", testid: "webphone-keypad", hidden: true,
    i18nAttrs: { "aria-label": "webphone.keypad" }, attrs: { role: "group" } },
  KEYS.map((k) => el("button", { type: "button", className: "btn small", testid: "webphone-key-" + k,
    dataset: { key: k }, onclick: () => dtmf(k) }, k)));
  const mic = el("select", { id: "webphone-mic", testid: "webphone-mic", onchange: (ev) => chooseMic(ev.target.value) });
  const speaker = el("select", { id: "webphone-speaker", testid: "webphone-speaker",
    onchange: (ev) => chooseSpeaker(ev.target.value) });
  const transfer = el("select", { id: "webphone-transfer-to", testid: "webphone-transfer-to" });
  return el("section", { className: "webphone", testid: "webphone", i18nAttrs: { "aria-label": "webphone.title" } },
    el("div", { className: "webphone-head" },
      el("h2", { className: "webphone-title", i18n: "webphone.title" }),
      el("span", { className: "webphone-state", testid: "webphone-state", attrs: { role: "status" } })),
    el("p", { className: "webphone-problem", testid: "webphone-problem", hidden: true, attrs: { role: "alert" } }),
    el("div", { className: "webphone-call", testid: "webphone-call", hidden: true },
      el("p", { className: "webphone-remote", testid: "webphone-remote" }),
      el("p", { className: "webphone-timer", testid: "webphone-timer", attrs: { "aria-live": "off" } }),
      el("div", { className: "webphone-actions" },
        button("webphone.answer", "webphone-answer", answer, { className: "primary" }),
        button("webphone.decline", "webphone-decline", decline, { className: "danger" }),
        button("webphone.hangup", "webphone-hangup", hangup, { className: "danger" }),
        button("webphone.mute", "webphone-mute", toggleMute, { attrs: { "aria-pressed": "false" } }),
        button("webphone.hold", "webphone-hold", toggleHold, { attrs: { "aria-pressed": "false" } }),
        button("webphone.keypad_button", "webphone-keypad-toggle", toggleKeypad, { attrs: { "aria-expanded": "false" } })),
      keypad,
      el("div", { className: "webphone-transfer", testid: "webphone-transfer" },
        el("label", { htmlFor: "webphone-transfer-to", i18n: "webphone.transfer_to" }), transfer,
        button("webphone.transfer", "webphone-transfer-button", blindTransfer))),
    el("details", { className: "webphone-devices" },
      el("summary", { i18n: "webphone.devices" }),
      el("label", { htmlFor: "webphone-mic", i18n: "webphone.microphone" }), mic,
      el("label", { htmlFor: "webphone-speaker", i18n: "webphone.speaker" }), speaker));
}

function q(testid) { return panel.querySelector(`[data-testid="${testid}"]`); }

function show(next) {
  state = next;
  draw();
}

const PROBLEMS = { insecure: "webphone.insecure", "mic-denied": "webphone.mic_denied",
  "mic-missing": "webphone.mic_missing", failed: "webphone.failed" };

function draw() {
  if (!panel) return;
  panel.dataset.state = state;
  setText(q("webphone-state"), t("webphone.state." + state.replace("-", "_")));
  const problem = q("webphone-problem");
  problem.hidden = !PROBLEMS[state];
  if (PROBLEMS[state]) setText(problem, t(PROBLEMS[state]));
  cardButtons();
  drawCall(call && { state: call.state, remote: call.remote, name: call.name, startedAt: call.startedAt,
    muted: call.muted, held: call.held }, true);
  broadcast();
}

function drawRemote(msg) {
  if (!panel) return;
  panel.dataset.state = msg.state === "registered" ? "other-tab" : msg.state;
  q("webphone-problem").hidden = true; // this tab's own problem (its microphone) is not the phone's now
  setText(q("webphone-state"), t("webphone.state.other_tab") + " · " + t("webphone.state." + msg.state.replace("-", "_")));
  drawCall(msg.call, false);
}

function drawCall(c, mine) {
  const box = q("webphone-call");
  box.hidden = !c;
  panel.dataset.call = c ? c.state : "none";
  if (!c) return;
  const who = c.name ? `${c.name} (${formatPhone(c.remote)})` : formatPhone(c.remote);
  setText(q("webphone-remote"), t("webphone.call." + c.state, { who }));
  const ringing = c.state === "ringing";
  q("webphone-answer").hidden = !mine || !ringing;
  q("webphone-decline").hidden = !mine || !ringing;
  q("webphone-hangup").hidden = !mine || ringing;
  for (const id of ["webphone-mute", "webphone-hold", "webphone-keypad-toggle"]) q(id).hidden = !mine || c.state !== "talking";
  q("webphone-transfer").hidden = !mine || c.state !== "talking" || colleagues.length === 0;
  const mute = q("webphone-mute");
  mute.setAttribute("aria-pressed", String(c.muted));
  setText(mute, t(c.muted ? "webphone.unmute" : "webphone.mute"));
  mute.dataset.i18n = c.muted ? "webphone.unmute" : "webphone.mute";
  const hold = q("webphone-hold");
  hold.setAttribute("aria-pressed", String(c.held));
  setText(hold, t(c.held ? "webphone.unhold" : "webphone.hold"));
  hold.dataset.i18n = c.held ? "webphone.unhold" : "webphone.hold";
  drawTimer(c);
}

function drawTimer(c = call) {
  if (!panel) return;
  const node = q("webphone-timer");
  node.hidden = !(c && c.startedAt);
  if (c && c.startedAt) setText(node, fmtClock((Date.now() - c.startedAt) / 1000));
}

// --- actions ----------------------------------------------------------------------------------------

function answer() { if (call && call.state === "ringing") call.session.answer(callOptions()); }
function decline() { if (call && call.state === "ringing") call.session.terminate({ status_code: 603 }); }
function hangup() { if (call) call.session.terminate(); }

function toggleMute() {
  if (!call || call.state !== "talking") return;
  if (call.muted) call.session.unmute({ audio: true }); else call.session.mute({ audio: true });
  call.muted = !call.muted;
  draw();
}

function toggleHold() {
  if (!call || call.state !== "talking") return;
  if (call.held) call.session.unhold(); else call.session.hold();
}

function toggleKeypad() {
  const pad = q("webphone-keypad");
  pad.hidden = !pad.hidden;
  q("webphone-keypad-toggle").setAttribute("aria-expanded", String(!pad.hidden));
}

function dtmf(key) {
  if (call && call.state === "talking") call.session.sendDTMF(key, { transportType: "RFC2833", duration: 160 });
}

function blindTransfer() {
  const ext = q("webphone-transfer-to").value;
  if (!call || call.state !== "talking" || !ext) return;
  const session = call.session;
  // The PBX took the caller on (NOTIFY 200): this leg is done — hang it up, as a desk phone does.
  session.refer(`sip:${ext}@${host()}`, { eventHandlers: { accepted: () => {
    if (!session.isEnded()) session.terminate();
  } } });
}

function fillColleagues() {
  const select = q("webphone-transfer-to");
  select.replaceChildren(...colleagues.map((m) => el("option", { value: m.extensions[0] },
    t("page.who", { name: m.name, ext: m.extensions[0] }))));
}

async function listDevices() {
  let devices = [];
  try { devices = await navigator.mediaDevices.enumerateDevices(); } catch (_e) { devices = []; }
  const fill = (select, kind, stored) => {
    const options = devices.filter((d) => d.kind === kind).map((d, i) =>
      el("option", { value: d.deviceId, selected: d.deviceId === stored }, d.label || `${kind} ${i + 1}`));
    select.replaceChildren(...options);
  };
  fill(q("webphone-mic"), "audioinput", localStorage.getItem(MIC_KEY));
  fill(q("webphone-speaker"), "audiooutput", localStorage.getItem(SPEAKER_KEY));
  q("webphone-speaker").disabled = typeof audio.setSinkId !== "function";
}

async function chooseMic(deviceId) {
  localStorage.setItem(MIC_KEY, deviceId);
  if (!call || !call.session.connection) return;
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { deviceId: { exact: deviceId } } });
  const sender = call.session.connection.getSenders().find((s) => s.track && s.track.kind === "audio");
  if (sender) await sender.replaceTrack(stream.getAudioTracks()[0]);
}

async function chooseSpeaker(deviceId) {
  localStorage.setItem(SPEAKER_KEY, deviceId);
  if (typeof audio.setSinkId === "function") await audio.setSinkId(deviceId);
}

// For tests and the curious: the live call's RTCPeerConnection (getStats() proves audio both ways).
window.crmtelWebphone = { peer: () => (call ? call.session.connection : null), state: () => state };
