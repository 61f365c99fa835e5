// DOM for the header, the list and the cards. Every value from the API goes in as text
// (textContent); nothing here parses HTML, so a kiosk name can never become markup.

import { SYMBOLS } from "./fleet.js";

/** createElement with a class, attributes and text or child nodes. */
export function el(tag, options = {}, ...children) {
  const node = document.createElement(tag);
  if (options.className) node.className = options.className;
  for (const [name, value] of Object.entries(options.attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(name, String(value));
  }
  if (options.text !== undefined) node.textContent = String(options.text);
  for (const child of children) if (child) node.append(child);
  return node;
}

/** A state as a symbol and a word, never a colour alone. */
export function badge(tr, state) {
  return el(
    "span",
    { className: `badge state-${state}` },
    el("span", { className: "symbol", text: SYMBOLS[state], attrs: { "aria-hidden": "true" } }),
    el("span", { className: "word", text: tr.state(state) }),
  );
}

/** A node whose text follows the clock: `render(nowMs)` gives its text each second. */
function ticking(tickers, className, render) {
  const node = el("span", { className });
  tickers.push({ node, render });
  return node;
}

function pingText(tr, entry, now) {
  if (entry.lastMs === null) return tr.t("neverPinged");
  return tr.t("lastPing", { ago: tr.ago((now - entry.lastMs) / 1000) });
}

function versionText(doc) {
  const parts = [doc.app_version ? `v${doc.app_version}` : null, doc.device_info];
  return parts.filter(Boolean).join(" | ");
}

/** Battery and "app not on screen" from the kiosk's last vitals, when it sends them. */
function vitalsNode(tr, doc) {
  const vitals = doc.vitals || {};
  const parts = [];
  const battery = vitals.battery_percent;
  if (typeof battery === "number") {
    const charging = vitals.battery_charging === true ? ` ${tr.t("charging")}` : "";
    parts.push(tr.t("battery", { p: tr.percent(Math.round(battery) / 100) }) + charging);
  }
  if (vitals.app_in_foreground === false) parts.push(`⚠ ${tr.t("appNotOnScreen")}`);
  if (parts.length === 0) return null;
  const low = typeof battery === "number" && battery < 20 && vitals.battery_charging !== true;
  const warn = low || vitals.app_in_foreground === false;
  return el("span", { className: warn ? "vitals attention" : "vitals", text: parts.join(" | ") });
}

export function kioskHref(entry, search) {
  return `/ui/kiosk/${encodeURIComponent(entry.id)}${search}`;
}

export function listRow(tr, entry, tickers, search) {
  const { doc } = entry;
  const link = el(
    "a",
    { className: `row state-${entry.state}`, attrs: { href: kioskHref(entry, search) } },
    badge(tr, entry.state),
    el("span", { className: "name", text: doc.kiosk_name }),
    el("span", { className: "location", text: doc.location }),
    ticking(tickers, "ping", (now) => pingText(tr, entry, now)),
    el("span", { className: "version", text: versionText(doc) }),
    vitalsNode(tr, doc),
  );
  if (entry.state === "offline" && entry.lastMs !== null) {
    link.append(
      ticking(
        tickers,
        "warning",
        (now) => `⚠ ${tr.t("offlineFor", { duration: tr.long((now - entry.lastMs) / 1000) })}`,
      ),
    );
  }
  return el("li", {}, link);
}

export function card(tr, entry, tickers, search) {
  const { doc } = entry;
  const offline = entry.state === "offline" && entry.lastMs !== null;
  const link = el(
    "a",
    { className: `card state-${entry.state}`, attrs: { href: kioskHref(entry, search) } },
    el(
      "span",
      { className: "card-title" },
      el("span", { className: "symbol", text: SYMBOLS[entry.state], attrs: { "aria-hidden": "true" } }),
      el("span", { className: "name", text: doc.kiosk_name }),
    ),
    el("span", { className: "location", text: doc.location }),
    offline
      ? ticking(
          tickers,
          "word",
          (now) => `${tr.state("offline")} ${tr.short((now - entry.lastMs) / 1000)}`,
        )
      : el("span", { className: "word", text: tr.state(entry.state) }),
    ticking(tickers, "ping", (now) =>
      entry.lastMs === null ? tr.t("neverPinged") : tr.ago((now - entry.lastMs) / 1000),
    ),
    vitalsNode(tr, doc),
  );
  if (offline) link.append(el("span", { className: "alert", text: `⚠ ${tr.t("alert")}` }));
  return el("li", {}, link);
}

/** "3/4 online (75 %)" then one chip per other state. */
export function summaryNodes(tr, summary) {
  const { counts } = summary;
  const headline = el("p", {
    className: "headline",
    text: tr.t("summary", {
      n: tr.number(summary.online),
      m: tr.number(summary.counted),
      p: summary.ratio === null ? "–" : tr.percent(Math.floor(summary.ratio * 100) / 100),
    }),
  });
  const chip = (state, count, label) =>
    el(
      "li",
      { className: `chip state-${state}` },
      el("span", { className: "symbol", text: SYMBOLS[state], attrs: { "aria-hidden": "true" } }),
      el("span", { text: `${tr.number(count)} ${label}` }),
    );
  const chips = el(
    "ul",
    { className: "chips" },
    chip("offline", counts.offline, tr.t("countOffline")),
    chip("never_connected", counts.never_connected, tr.t("countNever")),
    chip("inactive", counts.inactive, tr.t("countInactive")),
    chip("outside_hours", counts.outside_hours + counts.maintenance, tr.t("countCalm")),
  );
  return [headline, chips];
}
