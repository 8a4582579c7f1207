// The gateway's API from the browser: same origin, the session cookie, and the session's
// CSRF token on every request that changes something.

let csrfToken = "";
const SAFE = new Set(["GET", "HEAD"]);

/** An answer that was not 2xx: its status and problem details (RFC 9457). */
export class ApiError extends Error {
  constructor(status, problem, headers) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.headers = headers;
  }

  /** `errors: [{field, message}]` of a 422, or an empty list. */
  get errors() {
    return Array.isArray(this.problem.errors) ? this.problem.errors : [];
  }
}

export function setCsrf(token) {
  csrfToken = token || "";
}

/** Fetch `path`; `json` is sent as a JSON body. Resolves to the parsed answer (or null). */
export async function api(method, path, { json, body, headers = {} } = {}) {
  const sent = { Accept: "application/json", ...headers };
  if (!SAFE.has(method)) sent["X-CSRF-Token"] = csrfToken;
  let payload = body;
  if (json !== undefined) {
    sent["Content-Type"] = "application/json";
    payload = JSON.stringify(json);
  }
  const response = await fetch(path, {
    method,
    headers: sent,
    body: payload,
    credentials: "same-origin",
  });
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : null;
  if (!response.ok) {
    const error = new ApiError(response.status, data || { title: response.statusText }, response.headers);
    if (response.status === 401 && path !== "/v1/session") {
      window.dispatchEvent(new CustomEvent("allim:signed-out"));
    }
    throw error;
  }
  return data;
}

/** A query string of the entries that have a value. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** A fresh Idempotency-Key (works on plain http too, where randomUUID is missing). */
export function idempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "console-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Upload `file` as the body of a POST with upload progress (fetch has none). */
export function upload(path, file, contentType, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("Content-Type", contentType);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRF-Token", csrfToken);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = { title: xhr.statusText };
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new ApiError(xhr.status, data, null));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, { title: "연결 실패" }, null)));
    xhr.send(file);
  });
}
