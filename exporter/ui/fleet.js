// The fleet as the page sees it: one display state per kiosk, the header's counts, order
// and filters. Pure functions over the status objects of /kiosk/all-status.

export const STATES = [
  "offline",
  "online",
  "never_connected",
  "inactive",
  "outside_hours",
  "maintenance",
];

export const SYMBOLS = {
  online: "✓",
  offline: "✗",
  never_connected: "○",
  inactive: "⊘",
  outside_hours: "☾",
  maintenance: "⚙",
};

/**
 * The server's `status` decides, except that a kiosk not expected online (fields of the
 * expected-hours rule, when the service has them) is in a calm state of its own rather
 * than a failure: maintenance when a window is open, outside hours otherwise.
 */
export function displayState(doc) {
  if (doc.status === "inactive" || doc.status === "never_connected") return doc.status;
  if (doc.expected_online === false) {
    return doc.maintenance_until ? "maintenance" : "outside_hours";
  }
  return doc.status;
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

/** Plain records the views use; timestamps parsed once per refresh. */
export function toEntries(documents) {
  return documents.map((doc) => ({
    doc,
    id: doc.kiosk_id,
    state: displayState(doc),
    lastMs: doc.last_heartbeat_at ? Date.parse(doc.last_heartbeat_at) : null,
    search: String(doc.kiosk_name).toLowerCase(),
  }));
}

/**
 * Offline first, the longest offline first; then every other kiosk by name.
 * Comparing names through Intl.Collator is most of a refresh's cost at 10,000 kiosks, and
 * names rarely change: the sorter keeps each name's rank and re-collates only when a name
 * it has not seen appears.
 */
export function makeSorter() {
  let ranks = new Map();
  return function sortEntries(entries) {
    if (entries.some((e) => !ranks.has(e.doc.kiosk_name))) {
      const names = [...new Set(entries.map((e) => e.doc.kiosk_name))].sort(collator.compare);
      ranks = new Map(names.map((name, index) => [name, index]));
    }
    for (const entry of entries) entry.rank = ranks.get(entry.doc.kiosk_name);
    return entries.sort((a, b) => {
      const aOff = a.state === "offline";
      const bOff = b.state === "offline";
      if (aOff !== bOff) return aOff ? -1 : 1;
      if (aOff && a.lastMs !== b.lastMs) return (a.lastMs ?? 0) - (b.lastMs ?? 0);
      return a.rank - b.rank || a.id - b.id;
    });
  };
}

/**
 * The header: M counts the kiosks the availability rule counts (active, ever connected,
 * expected online when the service knows hours), N the online ones among them.
 */
export function summarize(entries) {
  const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
  for (const entry of entries) counts[entry.state] += 1;
  const counted = counts.online + counts.offline;
  return {
    online: counts.online,
    counted,
    ratio: counted ? counts.online / counted : null,
    counts,
  };
}

export function filterEntries(entries, { location, status, q }) {
  const needle = (q || "").trim().toLowerCase();
  return entries.filter(
    (e) =>
      (!location || e.doc.location === location) &&
      (!status || e.state === status) &&
      (!needle || e.search.includes(needle)),
  );
}

export function locationsOf(entries) {
  return [...new Set(entries.map((e) => e.doc.location))].sort(collator.compare);
}
