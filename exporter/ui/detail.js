// One kiosk: its status object (GET /kiosk/{id}), then its outages and availability from
// the history endpoints; a service without them (404) gets the status alone.

import { rotateControl } from "./admin.js";
import { getJson } from "./api.js";
import { displayState, toEntries } from "./fleet.js";
import { badge, el } from "./views.js";

const DAY_MS = 86400000;

function field(label, value) {
  return [el("dt", { text: label }), el("dd", {}, value)];
}

function text(value) {
  return el("span", { text: value });
}

function statusBlock(ctx, doc) {
  const { tr, tickers } = ctx;
  const [entry] = toEntries([doc]);
  const state = displayState(doc);
  const since = (render) => {
    const node = el("span");
    tickers.push({ node, render });
    return node;
  };
  const rows = [
    ...field(tr.t("location"), text(doc.location)),
    ...field(
      tr.t("lastHeartbeat"),
      entry.lastMs === null
        ? text(tr.t("neverPinged"))
        : since((now) => `${tr.dateTime(entry.lastMs)} (${tr.ago((now - entry.lastMs) / 1000)})`),
    ),
    ...field(tr.t("version"), text(doc.app_version || tr.t("unknown"))),
    ...field(tr.t("device"), text(doc.device_info || tr.t("unknown"))),
    ...field(tr.t("kioskId"), text(doc.kiosk_id)),
  ];
  if (doc.maintenance_until) {
    rows.push(...field(tr.t("maintenanceUntil"), text(tr.dateTime(Date.parse(doc.maintenance_until)))));
  }
  const heading = el("h2", { className: "detail-title" }, badge(tr, state), text(doc.kiosk_name));
  const warning =
    state === "offline" && entry.lastMs !== null
      ? since((now) => `⚠ ${tr.t("offlineFor", { duration: tr.long((now - entry.lastMs) / 1000) })}`)
      : null;
  if (warning) warning.className = "warning";
  return [heading, warning, el("dl", { className: "facts" }, ...rows)];
}

function ratioText(tr, row) {
  return row && row.availability_ratio !== null && row.availability_ratio !== undefined
    ? tr.percent(row.availability_ratio)
    : tr.t("noData");
}

function strip(tr, days) {
  const bars = days.map((day) => {
    const ratio = day.observed_seconds > 0 ? day.availability_ratio : null;
    const level = ratio === null ? "none" : ratio >= 0.999 ? "full" : ratio >= 0.9 ? "most" : "low";
    const label = `${tr.date(Date.parse(`${day.date}T00:00:00Z`))}: ${ratio === null ? tr.t("noData") : tr.percent(ratio)}`;
    const bar = el("span", { className: "bar" });
    // CSSOM, not a style attribute: the page's CSP forbids inline styles.
    bar.style.height = `${ratio === null ? 100 : Math.max(4, Math.round(ratio * 100))}%`;
    return el("li", { className: `day level-${level}`, attrs: { title: label, "aria-label": label } }, bar);
  });
  const ends = el(
    "p",
    { className: "strip-ends", attrs: { "aria-hidden": "true" } },
    el("span", { text: days.length ? tr.date(Date.parse(`${days[0].date}T00:00:00Z`)) : "" }),
    el("span", { text: days.length ? tr.date(Date.parse(`${days.at(-1).date}T00:00:00Z`)) : "" }),
  );
  return [el("ol", { className: "strip", attrs: { "aria-label": tr.t("strip") } }, ...bars), ends];
}

function outageTable(tr, outages) {
  if (!outages.length) return el("p", { text: tr.t("noOutages") });
  const head = el(
    "tr",
    {},
    ...["started", "ended", "duration"].map((k) => el("th", { text: tr.t(k), attrs: { scope: "col" } })),
  );
  const rows = outages.slice(0, 10).map((o) =>
    el(
      "tr",
      {},
      el("td", { text: tr.dateTime(Date.parse(o.started_at)) }),
      el("td", { text: o.ongoing || !o.ended_at ? tr.t("ongoing") : tr.dateTime(Date.parse(o.ended_at)) }),
      el("td", { text: tr.long(o.duration_seconds) }),
    ),
  );
  return el("table", { className: "outages" }, el("thead", {}, head), el("tbody", {}, ...rows));
}

async function historyBlock(ctx) {
  const { tr, id, token, now } = ctx;
  const base = `/kiosk/${encodeURIComponent(id)}`;
  const outages = await getJson(`${base}/outages`, token, null);
  if (outages.notFound) return [el("p", { className: "note", text: tr.t("historyMissing") })];
  const since = (ms) => encodeURIComponent(new Date(now() - ms).toISOString());
  const [day, week, month] = await Promise.all([
    getJson(`${base}/availability?since=${since(DAY_MS)}`, token, null),
    getJson(`${base}/availability?since=${since(7 * DAY_MS)}`, token, null),
    getJson(`${base}/availability?bucket=day`, token, null),
  ]);
  const parse = (answer) => (answer.text ? JSON.parse(answer.text) : null);
  const monthly = parse(month);
  const figures = el(
    "dl",
    { className: "availability" },
    ...field(tr.t("last24h"), text(ratioText(tr, parse(day)))),
    ...field(tr.t("last7d"), text(ratioText(tr, parse(week)))),
    ...field(tr.t("last30d"), text(ratioText(tr, monthly))),
  );
  return [
    el("h3", { text: tr.t("availability") }),
    figures,
    ...(monthly && monthly.days ? strip(tr, monthly.days) : []),
    el("h3", { text: tr.t("outages") }),
    outageTable(tr, JSON.parse(outages.text).outages || []),
  ];
}

/** Draw the detail into `section`; the page's refresh loop calls `refresh` every 15 s. */
export function showDetail(section, ctx) {
  const back = el("a", { className: "back", text: `← ${ctx.tr.t("back")}`, attrs: { href: ctx.backHref } });
  const status = el("div", { className: "detail-status" }, el("p", { text: ctx.tr.t("loading") }));
  const history = el("div", { className: "history" });
  const admin = rotateControl(ctx);
  section.replaceChildren(
    back,
    status,
    admin,
    el("h2", { className: "sub", text: ctx.tr.t("history") }),
    history,
  );
  let historyShown = false;
  return {
    async refresh() {
      const answer = await getJson(`/kiosk/${encodeURIComponent(ctx.id)}`, ctx.token, null);
      ctx.onAnswer(answer);
      ctx.tickers.length = 0;
      if (answer.notFound) {
        status.replaceChildren(el("p", { text: ctx.tr.t("notFound") }));
        history.replaceChildren();
        return;
      }
      status.replaceChildren(...statusBlock(ctx, JSON.parse(answer.text)).filter(Boolean));
      if (!historyShown) {
        history.replaceChildren(...(await historyBlock(ctx)).filter(Boolean));
        historyShown = true;
      }
    },
  };
}
