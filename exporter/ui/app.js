// The status page: sign-in, the fleet in a list or cards, the detail of one kiosk.
// State that a link should carry (view, filters, page, language) lives in the URL.

import { mountAddKiosk } from "./admin.js";
import { Failed, Refused, tokens } from "./api.js";
import { showDetail } from "./detail.js";
import { STATES } from "./fleet.js";
import { makeTranslator, pickLanguage } from "./i18n.js";
import { card, el, listRow, summaryNodes } from "./views.js";

const REFRESH_MS = 15000;
const PAGE_SIZE = 50;
const $ = (id) => document.getElementById(id);

const tr = makeTranslator(pickLanguage(location.search, navigator.languages));
const app = {
  token: tokens.load(),
  loaded: false, // the worker holds a fleet
  firstRender: false, // measure the first render after sign-in
  offsetMs: 0, // server clock minus this browser's clock
  dataAt: 0, // when the data shown was current (server clock)
  failure: null, // {at, reason} while the last refresh failed
  tickers: [],
  locations: null, // the location filter's options, rebuilt only when they change
  timer: null,
  view: null, // the section on screen: {refresh(), name}
};

const now = () => Date.now() + app.offsetMs;

// The fleet lives in a worker (worker.js); the page asks it for what to draw.
const worker = new Worker("/ui/worker.js", { type: "module" });
const pending = new Map();
let asked = 0;
worker.addEventListener("message", ({ data }) => {
  pending.get(data.id)?.(data);
  pending.delete(data.id);
});

function ask(message) {
  asked += 1;
  const id = asked;
  return new Promise((resolve) => {
    pending.set(id, resolve);
    worker.postMessage({ ...message, id });
  });
}

function query() {
  const params = new URLSearchParams(location.search);
  return {
    view: params.get("view") === "cards" ? "cards" : "list",
    location: params.get("location") || "",
    status: STATES.includes(params.get("status")) ? params.get("status") : "",
    q: params.get("q") || "",
    page: Math.max(1, Number.parseInt(params.get("page") || "1", 10) || 1),
  };
}

/** Change the URL's query (no reload, no new history entry), keeping ?lang. */
function setQuery(patch) {
  const params = new URLSearchParams(location.search);
  for (const [name, value] of Object.entries(patch)) {
    const isDefault = !value || (name === "view" && value === "list") || (name === "page" && value === 1);
    if (isDefault) params.delete(name);
    else params.set(name, String(value));
  }
  const search = params.toString();
  history.replaceState(null, "", location.pathname + (search ? `?${search}` : ""));
}

function translateStatic() {
  document.documentElement.lang = tr.lang;
  document.title = tr.t("title");
  const texts = {
    title: "title",
    "sign-in-title": "signInTitle",
    "sign-in-help": "signInHelp",
    "token-label": "tokenLabel",
    "remember-label": "remember",
    "sign-in-button": "signIn",
    "sign-out": "signOut",
    "view-list": "viewList",
    "view-cards": "viewCards",
    "location-label": "location",
    "status-label": "status",
    "search-label": "search",
    "refresh-now": "refreshNow",
    previous: "previous",
    next: "next",
  };
  for (const [id, key] of Object.entries(texts)) $(id).textContent = tr.t(key);
  $("view-group").setAttribute("aria-label", tr.t("view"));
  $("status").replaceChildren(
    el("option", { text: tr.t("allStatuses"), attrs: { value: "" } }),
    ...STATES.map((s) => el("option", { text: tr.state(s), attrs: { value: s } })),
  );
}

function show(section) {
  for (const id of ["sign-in", "fleet", "detail"]) $(id).hidden = id !== section;
  $("sign-out").hidden = section === "sign-in";
  $("refresh-state").hidden = section === "sign-in";
}

// -- sign-in -------------------------------------------------------------------------------

function showSignIn(refused) {
  clearTimeout(app.timer);
  app.token = null;
  app.loaded = false;
  app.failure = null;
  ask({ type: "reset" });
  app.view = null;
  $("refresh-error").hidden = true;
  show("sign-in");
  $("sign-in-error").hidden = !refused;
  $("sign-in-error").textContent = refused ? tr.t("tokenRefused") : "";
  $("token").focus();
}

async function signIn(event) {
  event.preventDefault();
  const token = $("token").value.trim();
  if (!token) return;
  performance.mark("kiosk:sign-in");
  $("sign-in-button").disabled = true;
  $("sign-in-error").hidden = false;
  $("sign-in-error").textContent = tr.t("checking");
  try {
    await loadFleet(token);
    tokens.save(token, $("remember").checked);
    app.token = token;
    $("token").value = "";
    $("sign-in-error").hidden = true;
    app.firstRender = true;
    route();
  } catch (error) {
    if (error instanceof Refused) tokens.clear();
    $("sign-in-error").textContent =
      error instanceof Refused
        ? tr.t("tokenRefused")
        : tr.t("signInFailed", { reason: error.reason || String(error) });
  } finally {
    $("sign-in-button").disabled = false;
  }
}

function signOut() {
  tokens.clear();
  showSignIn(false);
}

function afterPaint(callback) {
  requestAnimationFrame(() => setTimeout(callback, 0));
}

// -- data ----------------------------------------------------------------------------------

function viewQuery() {
  const { location, status, q, page } = query();
  return { location, status, q, page, pageSize: PAGE_SIZE };
}

/** Fetch the fleet in the worker; the answer carries what to draw when it succeeded. */
async function loadFleet(token) {
  const answer = await ask({ type: "load", token, query: viewQuery() });
  if (answer.outcome === "refused") throw new Refused();
  if (answer.outcome === "failed") throw new Failed(answer.reason);
  app.offsetMs = answer.offsetMs;
  app.dataAt = now();
  app.failure = null;
  app.loaded = true;
  return answer;
}

async function refreshFleet() {
  const answer = await loadFleet(app.token);
  // Main-thread work of a refresh that changed something: draw one page, lay it out.
  const started = performance.now();
  if (answer.outcome === "changed" && !$("fleet").hidden) {
    drawFleet(answer.view);
    void $("kiosks").offsetHeight; // style and layout now, inside the measure
    performance.measure("kiosk:refresh", { start: started });
  }
}

/** One loop for whichever view is on screen; a refused token ends the session. */
async function refresh() {
  clearTimeout(app.timer);
  const view = app.view;
  if (!view) return;
  try {
    await view.refresh();
    app.failure = null;
  } catch (error) {
    if (error instanceof Refused) {
      tokens.clear();
      showSignIn(true);
      return;
    }
    app.failure = { at: Date.now(), reason: error.reason || String(error) };
  }
  performance.mark("kiosk:refresh-checked");
  if (app.view === view) {
    tick();
    clearTimeout(app.timer);
    app.timer = setTimeout(refresh, REFRESH_MS);
  }
}

// -- the fleet -----------------------------------------------------------------------------

let drawn = 0;

/** Ask the worker for the page the URL describes, and draw it unless a newer one is asked. */
async function renderFleet() {
  drawn += 1;
  const mine = drawn;
  const { view } = await ask({ type: "view", query: viewQuery() });
  if (mine === drawn && !$("fleet").hidden) drawFleet(view);
}

function drawFleet(view) {
  const wanted = query();
  const select = $("location");
  const known = view.locations.join("\n");
  if (app.locations !== known) {
    select.replaceChildren(
      el("option", { text: tr.t("allLocations"), attrs: { value: "" } }),
      ...view.locations.map((l) => el("option", { text: l, attrs: { value: l } })),
    );
    app.locations = known;
  }
  select.value = view.locations.includes(wanted.location) ? wanted.location : "";
  $("status").value = wanted.status;
  if (document.activeElement !== $("search")) $("search").value = wanted.q;
  for (const button of $("view-group").querySelectorAll("button")) {
    button.setAttribute("aria-pressed", String(button.dataset.view === wanted.view));
  }
  $("summary").replaceChildren(...summaryNodes(tr, view.summary));
  drawPage(view, wanted.view);
  if (app.firstRender) {
    app.firstRender = false;
    afterPaint(() => performance.measure("kiosk:first-render", "kiosk:sign-in"));
  }
}

/** Only one page of kiosks is in the DOM: 10,000 cards would take seconds to lay out. */
function drawPage(view, kind) {
  const { shown, total, first, page, pages } = view;
  app.tickers.length = 0;
  const build = kind === "cards" ? card : listRow;
  const list = $("kiosks");
  list.className = kind === "cards" ? "cards" : "list";
  list.replaceChildren(...shown.map((e) => build(tr, e, app.tickers, location.search)));
  $("empty").hidden = total > 0 || !view.loaded;
  $("empty").textContent = tr.t("noMatch");
  $("pager").hidden = total <= PAGE_SIZE;
  $("page-range").textContent = tr.t("showing", {
    from: tr.number(first + 1),
    to: tr.number(first + shown.length),
    total: tr.number(total),
  });
  $("previous").disabled = page <= 1;
  $("next").disabled = page >= pages;
  $("previous").dataset.page = String(page - 1);
  $("next").dataset.page = String(page + 1);
  tick();
}

function bindControls() {
  const change = (patch) => {
    setQuery(patch);
    renderFleet();
  };
  $("location").addEventListener("change", (e) => change({ location: e.target.value, page: 1 }));
  $("status").addEventListener("change", (e) => change({ status: e.target.value, page: 1 }));
  $("search").addEventListener("input", (e) => change({ q: e.target.value, page: 1 }));
  $("controls").addEventListener("submit", (e) => e.preventDefault());
  for (const button of $("view-group").querySelectorAll("button")) {
    button.addEventListener("click", () => change({ view: button.dataset.view }));
  }
  for (const id of ["previous", "next"]) {
    $(id).addEventListener("click", () => change({ page: Number($(id).dataset.page) }));
  }
  $("refresh-now").addEventListener("click", refresh);
  $("sign-out").addEventListener("click", signOut);
  $("sign-in-form").addEventListener("submit", signIn);
}

// -- clock ---------------------------------------------------------------------------------

/** Every second: relative times, and whether the data is current or a refresh failed. */
function tick() {
  const at = now();
  for (const ticker of app.tickers) ticker.node.textContent = ticker.render(at);
  const banner = $("refresh-error");
  if (app.failure) {
    const values = {
      ago: tr.ago((Date.now() - app.failure.at) / 1000).toLowerCase(),
      reason: app.failure.reason,
      data: tr.ago((at - app.dataAt) / 1000).toLowerCase(),
    };
    banner.textContent = tr.t(app.dataAt ? "refreshFailed" : "loadFailed", values);
  }
  banner.hidden = !app.failure;
  document.body.classList.toggle("stale", Boolean(app.failure));
  $("refresh-state").textContent = app.dataAt
    ? tr.t("updated", { ago: tr.ago((at - app.dataAt) / 1000).toLowerCase() })
    : "";
}

// -- routing -------------------------------------------------------------------------------

function route() {
  app.tickers.length = 0;
  if (!app.token) {
    showSignIn(false);
    return;
  }
  const match = location.pathname.match(/^\/ui\/kiosk\/(\d+)$/);
  if (match) {
    show("detail");
    app.view = showDetail($("detail"), {
      tr,
      id: Number(match[1]),
      token: app.token,
      now,
      tickers: app.tickers,
      backHref: `/ui/${location.search}`,
      onAnswer: (answer) => {
        app.offsetMs = answer.offsetMs;
        app.dataAt = now();
      },
    });
  } else {
    show("fleet");
    app.view = { refresh: refreshFleet };
    mountAddKiosk($("admin"), { tr, token: app.token, onCreated: refresh });
    if (app.loaded) renderFleet();
    else $("summary").replaceChildren(el("p", { className: "headline", text: tr.t("loading") }));
  }
  refresh();
}

/** Links inside the page change the view without reloading it (and refetching 10,000 rows). */
function followLinks(event) {
  const link = event.target.closest("a[href^='/ui/']");
  if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  event.preventDefault();
  history.pushState(null, "", link.getAttribute("href"));
  window.scrollTo(0, 0);
  route();
}

translateStatic();
bindControls();
document.addEventListener("click", followLinks);
window.addEventListener("popstate", route);
setInterval(tick, 1000);
route();
