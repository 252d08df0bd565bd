// JSON over fetch, with the session cookie; a 401 sends the page back to the login form.
const unauthorized = [];

export function onUnauthorized(fn) { unauthorized.push(fn); }

export async function api(method, path, body) {
  const init = { method, headers: {}, credentials: "same-origin" };
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
