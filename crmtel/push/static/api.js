// JSON over fetch, with the session cookie; a 401 sends the page back to the login form. Every write
// carries the CSRF token (the crmtel_csrf cookie, which only this site's pages can read) as X-CSRF-Token.
const unauthorized = [];
const SAFE = new Set(["GET", "HEAD"]);

function csrfToken() {
  const found = document.cookie.split("; ").find((c) => c.startsWith("crmtel_csrf="));
  return found ? decodeURIComponent(found.slice("crmtel_csrf=".length)) : "";
}

export function onUnauthorized(fn) { unauthorized.push(fn); }

export async function api(method, path, body) {
  const init = { method, headers: {}, credentials: "same-origin" };
  if (!SAFE.has(method)) init.headers["X-CSRF-Token"] = csrfToken();
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (_e) {
    return { ok: false, status: 0, data: null };
  }
  let data = null;
  try { data = await res.json(); } catch (_e) { data = null; }
  if (res.status === 401 && path !== "/api/login") for (const fn of unauthorized) fn();
  return { ok: res.ok, status: res.status, data };
}

export const callUrl = (callId, suffix) => "/api/calls/" + encodeURIComponent(callId) + (suffix || "");
