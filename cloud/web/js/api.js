// The API as the map uses it: same-origin fetch with the session cookie and the CSRF token.
// A route that is not there (404 not_found) answers null, so a panel can say "not available".

let csrf = "";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function setCsrf(token) {
  csrf = token || "";
}

export async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (method !== "GET") {
    headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
  }
  const resp = await fetch(path, init);
  let doc = null;
  try {
    doc = await resp.json();
  } catch {
    doc = null;
  }
  if (resp.ok) return doc;
  const code = doc?.error?.code || `http_${resp.status}`;
  if (resp.status === 404 && code === "not_found") return null; // route not deployed (yet)
  throw new ApiError(resp.status, code, doc?.error?.message || resp.statusText);
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body);

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) q.set(k, v);
  return q.toString();
}
