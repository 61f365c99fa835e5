// The fleet off the page's main thread: fetch /kiosk/all-status, parse, sort, count and
// filter here, and hand the page only what it draws (the counts, the locations, one page of
// kiosks). At 10,000 kiosks this keeps a refresh from blocking scrolling and typing.

import { filterEntries, locationsOf, makeSorter, summarize, toEntries } from "./fleet.js";

const sort = makeSorter();
let fleet = { entries: [], summary: summarize([]), locations: [], loaded: false };
let etag = null;

async function load(token) {
  const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
  if (etag) headers["If-None-Match"] = etag;
  let response;
  try {
    response = await fetch("/kiosk/all-status", { headers, cache: "no-store", credentials: "omit" });
  } catch (error) {
    return { outcome: "failed", reason: "network error" };
  }
  // The server's clock, so that "45 s ago" does not depend on the wall screen's clock.
  const serverDate = Date.parse(response.headers.get("Date") || "");
  const offsetMs = Number.isNaN(serverDate) ? 0 : serverDate - Date.now();
  if (response.status === 401) return { outcome: "refused" };
  if (response.status === 304) return { outcome: "unchanged", offsetMs };
  if (!response.ok) return { outcome: "failed", reason: `HTTP ${response.status}` };
  const entries = sort(toEntries(await response.json()));
  fleet = { entries, summary: summarize(entries), locations: locationsOf(entries), loaded: true };
  etag = response.headers.get("ETag");
  return { outcome: "changed", offsetMs };
}

/** What the page draws for `query`: counts of the whole fleet, one page of the matches. */
function view({ location, status, q, page, pageSize }) {
  const matching = filterEntries(fleet.entries, { location, status, q });
  const pages = Math.max(1, Math.ceil(matching.length / pageSize));
  const current = Math.min(Math.max(1, page), pages);
  const first = (current - 1) * pageSize;
  const shown = matching.slice(first, first + pageSize).map(({ doc, id, state, lastMs }) => ({
    doc,
    id,
    state,
    lastMs,
  }));
  const { summary, locations, loaded } = fleet;
  return { loaded, summary, locations, total: matching.length, page: current, pages, first, shown };
}

self.addEventListener("message", async ({ data }) => {
  let answer = {};
  if (data.type === "load") {
    answer = await load(data.token);
    if (answer.outcome !== "failed" && answer.outcome !== "refused") answer.view = view(data.query);
  } else if (data.type === "view") {
    answer = { view: view(data.query) };
  } else if (data.type === "reset") {
    fleet = { entries: [], summary: summarize([]), locations: [], loaded: false };
    etag = null;
  }
  self.postMessage({ ...answer, id: data.id });
});
