// The live websocket: reconnects with backoff while the session lasts; every message goes to the listeners.
import { api } from "./api.js";

const listeners = [];
const statusListeners = [];
let socket = null;
let retryMs = 500;
let retryTimer = null;
let pingTimer = null;

export function onMessage(fn) { listeners.push(fn); }
export function onStatus(fn) { statusListeners.push(fn); }

function setStatus(on) { for (const fn of statusListeners) fn(on); }

export function disconnect() {
  clearTimeout(retryTimer);
  clearInterval(pingTimer);
  if (socket) { socket.onclose = null; socket.close(); socket = null; }
  setStatus(false);
}

export function connect() {
  disconnect();
  const proto = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(proto + location.host + "/ws");
  socket = ws;
  ws.onmessage = (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch (_e) { return; }
    for (const fn of listeners) {
      try { fn(msg); } catch (err) { console.error("message handler failed", err); }
    }
  };
  ws.onopen = () => { retryMs = 500; setStatus(true); };
  ws.onclose = async () => {
    setStatus(false);
    clearInterval(pingTimer);
    if (socket !== ws) return;
    socket = null;
    const who = await api("GET", "/api/me");
    if (!who.ok) return;
    retryTimer = setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 10000);
  };
  pingTimer = setInterval(() => { if (ws.readyState === WebSocket.OPEN) ws.send("ping"); }, 25000);
}
