// The page is a client of the public JSON API: the token travels in Authorization only,
// never in a URL, and is kept by the tab (sessionStorage) or, when asked, by the device.

const KEY = "kiosk-exporter-token";

export class Refused extends Error {}

export class Failed extends Error {
  constructor(reason) {
    super(reason);
    this.reason = reason;
  }
}

export const tokens = {
  load: () => sessionStorage.getItem(KEY) || localStorage.getItem(KEY),
  save(token, remember) {
    sessionStorage.setItem(KEY, token);
    if (remember) localStorage.setItem(KEY, token);
    else localStorage.removeItem(KEY);
  },
  clear() {
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
  },
};

/**
 * GET a JSON document. `etag` makes it conditional: `{notModified: true}` on 304.
 * The server's Date header gives the clock offset, so "45 s ago" does not depend on the
 * clock of the wall screen.
 */
export async function getJson(path, token, etag) {
  const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
  if (etag) headers["If-None-Match"] = etag;
  let response;
  try {
    response = await fetch(path, { headers, cache: "no-store", credentials: "omit" });
  } catch (error) {
    throw new Failed("network error");
  }
  const serverDate = Date.parse(response.headers.get("Date") || "");
  const offsetMs = Number.isNaN(serverDate) ? 0 : serverDate - Date.now();
  if (response.status === 401) throw new Refused();
  if (response.status === 304) return { notModified: true, etag, offsetMs };
  if (response.status === 404) return { notFound: true, offsetMs };
  if (!response.ok) throw new Failed(`HTTP ${response.status}`);
  const text = await response.text();
  return { text, etag: response.headers.get("ETag"), offsetMs };
}
