// The live websocket. It reconnects by itself after a server restart, a network drop or a laptop waking up:
// backoff with jitter (0.5 s doubling to 15 s), at once when the network or the tab comes back, and a
// silent socket (no pong for a while) is treated as dead. The browser going offline kills the socket at once
// (the status line says so now, not after the silence clock runs out); the backoff's probes go on meanwhile. Each (re)connection gets the current state from
// the server (hello, the calls live now, `synced`). A session ended elsewhere closes with 4401: no retry,
// the listeners of api.js's onUnauthorized take over (the login form).
import { api } from "./api.js";

export const SESSION_ENDED = 4401;
// The keep-alive, until the hello says the server's (`[web] heartbeat`): a ping every PING_MS, and a socket
// with no frame (not even a pong) for SILENT_MS is dead.
let PING_MS = 25000;
let SILENT_MS = 2 * PING_MS + 10000;
const WAKE_GAP_MS = 15000; // the page's timers stood still this long: the machine slept

const listeners = [];
const statusListeners = [];
let socket = null;
let wanted = false;
let attempt = 0;
let retryTimer = null;
let pingTimer = null;
let lastFrame = 0;
let lastTick = Date.now();
let state = "offline";

export function onMessage(fn) { listeners.push(fn); }
// fn(state): "live", "connecting" (first try or a retry under way) or "offline" (waiting to retry).
export function onStatus(fn) { statusListeners.push(fn); }
export const status = () => state;

function setStatus(next) {
  state = next;
  for (const fn of statusListeners) fn(next);
}

export function disconnect() {
  wanted = false;
  clearTimeout(retryTimer);
  clearInterval(pingTimer);
  if (socket) { const ws = socket; socket = null; ws.onclose = null; ws.close(); }
  setStatus("offline");
}

export function connect() {
  wanted = true;
  attempt = 0;
  open();
}

function open() {
  clearTimeout(retryTimer);
  clearInterval(pingTimer);
  if (socket) { const old = socket; socket = null; old.onclose = null; old.close(); }
  if (!wanted) return;
  setStatus("connecting");
  const proto = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(proto + location.host + "/ws");
  socket = ws;
  lastFrame = Date.now();
  ws.onmessage = (ev) => {
    lastFrame = Date.now();
    let msg;
    try { msg = JSON.parse(ev.data); } catch (_e) { return; }
    if (msg.type === "hello" && msg.heartbeat > 0) keepAlive(ws, msg.heartbeat * 1000);
    for (const fn of listeners) {
      try { fn(msg); } catch (err) { console.error("message handler failed", err); }
    }
  };
  ws.onopen = () => { attempt = 0; setStatus("live"); };
  ws.onclose = (ev) => {
    if (socket !== ws) return;
    socket = null;
    clearInterval(pingTimer);
    if (ev.code === SESSION_ENDED) {
      wanted = false;
      setStatus("offline");
      api("GET", "/api/me"); // a 401: api.js's onUnauthorized listeners show the login form
      return;
    }
    retryLater();
  };
  keepAlive(ws, PING_MS);
}

function keepAlive(ws, pingMs) {
  PING_MS = pingMs;
  SILENT_MS = 2 * PING_MS + 10000;
  clearInterval(pingTimer);
  pingTimer = setInterval(() => {
    if (ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - lastFrame > SILENT_MS) { drop(ws); return; }
    ws.send("ping");
  }, PING_MS);
}

// A dead socket's close handshake may never finish: forget it now and retry.
function drop(ws) {
  if (socket !== ws) return;
  socket = null;
  ws.onclose = null;
  ws.close();
  clearInterval(pingTimer);
  retryLater();
}

function retryLater() {
  if (!wanted) return;
  setStatus("offline");
  const base = Math.min(500 * 2 ** attempt, 15000);
  attempt += 1;
  retryTimer = setTimeout(retry, base / 2 + Math.random() * base / 2);
}

// Ask /api/me first: a 401 means the session is over (the login form), a network error or a 5xx
// (the server restarting) means try again later, 200 means open the socket.
async function retry() {
  if (!wanted) return;
  // Offline, a probe is a quiet check: the status line keeps saying the link is down until one gets through.
  setStatus(navigator.onLine === false ? "offline" : "connecting");
  const who = await api("GET", "/api/me");
  if (!wanted) return;
  if (who.status === 401) { wanted = false; setStatus("offline"); return; }
  if (!who.ok) { retryLater(); return; }
  open();
}

// Back now: don't wait out the backoff.
function now() {
  if (!wanted) return;
  if (socket && socket.readyState === WebSocket.OPEN) {
    // Possibly a half-dead socket after a sleep: a ping must be answered soon or it is replaced.
    lastFrame = Math.min(lastFrame, Date.now() - SILENT_MS + 5000);
    socket.send("ping");
    return;
  }
  if (socket && socket.readyState === WebSocket.CONNECTING) return;
  attempt = 0;
  retry();
}

// The network is gone: whatever the socket still looks like, it is dead. Say so now and retry with the
// backoff (a probe that gets through, or the `online` event, brings the page back).
function gone() {
  if (!wanted) return;
  clearTimeout(retryTimer);
  clearInterval(pingTimer);
  if (socket) { const ws = socket; socket = null; ws.onclose = null; ws.close(); }
  attempt = 0;
  retryLater();
}

window.addEventListener("online", now);
window.addEventListener("offline", gone);
document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") now(); });
setInterval(() => {
  const gap = Date.now() - lastTick;
  lastTick = Date.now();
  if (gap > WAKE_GAP_MS) now();
  if (socket && socket.readyState === WebSocket.OPEN && Date.now() - lastFrame > SILENT_MS) drop(socket);
}, 1000);
