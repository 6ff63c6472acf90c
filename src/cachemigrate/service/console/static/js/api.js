// The console's only way to the service: the REST API, with the token of the session.

const KEY = "cachemigrate.session";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  // What the page shows: the API's own message and code.
  get text() {
    return this.code ? `${this.message} (${this.code})` : this.message;
  }
}

export function session() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || "null");
  } catch {
    return null;
  }
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}

function keep(projectId, token, expiresAt) {
  sessionStorage.setItem(KEY, JSON.stringify({ projectId, token, expiresAt }));
}

const PROJECT_RE = /^[A-Za-z0-9_-]{1,64}$/;

function checkProject(projectId) {
  if (!PROJECT_RE.test(projectId)) {
    throw new ApiError(0, "", "The project ID has 1 to 64 letters, digits, _ or -.");
  }
}

async function answer(resp) {
  const text = await resp.text();
  let body = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
  }
  if (!resp.ok) {
    const code = body && body.error_code ? body.error_code : "";
    const msg = body && body.error_msg ? body.error_msg : `HTTP ${resp.status} ${resp.statusText}`;
    throw new ApiError(resp.status, code, msg);
  }
  return body;
}

async function send(url, init) {
  let resp;
  try {
    resp = await fetch(url, init);
  } catch (err) {
    throw new ApiError(0, "", `The service does not answer (${err.message}).`);
  }
  return answer(resp);
}

// SDK-HMAC-SHA256 (the Huawei Cloud SDK's signature) of a body-less POST: host and x-sdk-date
// signed. The SK stays in this function: only the token it buys is kept.
function sdkDate(now) {
  return now.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

export async function signature({ method, path, host, date, ak, sk, body = "" }) {
  const { hmacSha256Hex, sha256Hex } = await import("./sha256.js"); // only the sign-in needs it
  const canonicalUri = path.endsWith("/") ? path : `${path}/`;
  const headers = `host:${host}\nx-sdk-date:${date}\n`;
  const canonical = [method, canonicalUri, "", headers, "host;x-sdk-date", sha256Hex(body)].join("\n");
  const toSign = `SDK-HMAC-SHA256\n${date}\n${sha256Hex(canonical)}`;
  return `SDK-HMAC-SHA256 Access=${ak}, SignedHeaders=host;x-sdk-date, Signature=${hmacSha256Hex(sk, toSign)}`;
}

export async function signInWithKeys(projectId, ak, sk) {
  checkProject(projectId);
  if (!ak || !sk) throw new ApiError(0, "", "Enter both the access key (AK) and the secret key (SK).");
  const path = `/v2/${projectId}/auth/tokens`;
  const date = sdkDate(new Date());
  const authorization = await signature({ method: "POST", path, host: location.host, date, ak, sk });
  const body = await send(path, {
    method: "POST",
    headers: { "X-Sdk-Date": date, Authorization: authorization, "X-Project-Id": projectId },
  });
  keep(projectId, body.token, body.expires_at);
}

export async function signInWithToken(projectId, token) {
  checkProject(projectId);
  if (!token) throw new ApiError(0, "", "Enter a token.");
  const t = token.trim();
  // Does the token work for this project? (Asked before it is kept.)
  await send(`/v2/${projectId}/instances?limit=1`, { headers: { "X-Auth-Token": t, "X-Project-Id": projectId } });
  keep(projectId, t, null);
}

// A request of the signed-in project: path is what follows /v2/{project_id}.
export async function api(method, path, body) {
  const s = session();
  if (!s) throw new ApiError(401, "", "Not signed in.");
  const init = { method, headers: { "X-Auth-Token": s.token, "X-Project-Id": s.projectId } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json;charset=utf-8";
    init.body = JSON.stringify(body);
  }
  try {
    return await send(`/v2/${encodeURIComponent(s.projectId)}${path}`, init);
  } catch (err) {
    if (err.status === 401) window.dispatchEvent(new CustomEvent("cm-signed-out", { detail: err.text }));
    throw err;
  }
}

export const q = (params) => {
  const out = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") out.set(k, v);
  const s = out.toString();
  return s ? `?${s}` : "";
};
