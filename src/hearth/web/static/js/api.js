// Calls to Hearth's JSON APIs from the pages: the session cookie goes along by itself; state-changing
// requests carry the page's CSRF token; a 401 (the session ended) goes back to the sign-in page.

const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headersFor(method, extra = {}) {
  const headers = { Accept: "application/json", ...extra };
  if (!["GET", "HEAD", "OPTIONS"].includes(method)) headers["X-CSRF-Token"] = csrfToken();
  return headers;
}

async function failure(res) {
  if (res.status === 401) {
    location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
  }
  let message = res.statusText || `HTTP ${res.status}`;
  let code;
  try {
    const body = await res.json();
    message = body?.error?.message ?? message;
    code = body?.error?.code;
  } catch {
    /* not JSON */
  }
  return new ApiError(res.status, message, code);
}

/** fetch + JSON: `api("/api/x", {method: "POST", json: {...}})`; resolves to the parsed body (null for 204). */
export async function api(path, { method = "GET", json, body, signal, headers } = {}) {
  const extra = { ...headers };
  if (json !== undefined) {
    extra["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  const res = await fetch(path, { method, body, signal, headers: headersFor(method, extra), credentials: "same-origin" });
  if (!res.ok) throw await failure(res);
  if (res.status === 204) return null;
  return res.json();
}

/** POST JSON and read the reply as server-sent events: yields {event, data} as they arrive. */
export async function* streamEvents(path, { json, signal }) {
  const res = await fetch(path, {
    method: "POST",
    body: JSON.stringify(json),
    signal,
    credentials: "same-origin",
    headers: headersFor("POST", { "Content-Type": "application/json", Accept: "text/event-stream" }),
  });
  if (!res.ok) throw await failure(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const raw = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of raw.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
  }
}

/** Upload a FormData with progress (fetch cannot report upload progress). */
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("X-CSRF-Token", csrfToken());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress?.(e.loaded / e.total);
    xhr.onerror = () => reject(new ApiError(0, "network error"));
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, body?.error?.message ?? `HTTP ${xhr.status}`, body?.error?.code));
    };
    xhr.send(form);
  });
}
