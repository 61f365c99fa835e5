// Kiosk management for admin tokens: add a kiosk (fleet view) and rotate a kiosk's key
// (detail view). Both show the new enrollment code and its QR code once: the server keeps
// only a hash, so this answer is the only time anyone can see them.

import { el } from "./views.js";

// getRandomValues, not randomUUID: the page may be served over plain http on a LAN address,
// where randomUUID (secure contexts only) does not exist.
function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** POST JSON with the token; returns {status, doc} (doc: the parsed answer or {}). */
async function postJson(path, token, body) {
  const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    // A retry after a lost answer returns the same kiosk instead of a duplicate.
    headers["Idempotency-Key"] = randomKey();
  }
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch (error) {
    return { status: 0, doc: {} };
  }
  const doc = await response.json().catch(() => ({}));
  return { status: response.status, doc };
}

/** The server's QR code (an SVG document) as a node: parsed as SVG, never as HTML. */
function qrNode(svgText) {
  const parsed = new DOMParser().parseFromString(svgText || "", "image/svg+xml");
  const root = parsed.documentElement;
  if (!root || root.nodeName !== "svg") return null;
  const node = document.importNode(root, true);
  // A viewBox instead of the fixed size, so the stylesheet can size it without cropping.
  const [width, height] = [node.getAttribute("width"), node.getAttribute("height")];
  if (width && height && !node.hasAttribute("viewBox")) {
    node.setAttribute("viewBox", `0 0 ${width} ${height}`);
  }
  node.removeAttribute("width");
  node.removeAttribute("height");
  node.setAttribute("role", "img");
  return node;
}

/** The code, its expiry and its QR code, for the installer at the tablet. */
export function enrollmentPanel(tr, kiosk) {
  const enrollment = kiosk.enrollment;
  return el(
    "section",
    { className: "enrollment", attrs: { "aria-live": "polite" } },
    el("h3", { text: tr.t("enrollmentTitle", { name: kiosk.kiosk_name }) }),
    el("p", { className: "enrollment-code", text: enrollment.code }),
    el("p", {
      text: tr.t("enrollmentHelp", { until: tr.dateTime(Date.parse(enrollment.expires_at)) }),
    }),
    el("div", { className: "enrollment-qr" }, qrNode(enrollment.qr_svg)),
  );
}

function problem(tr, answer) {
  if (answer.status === 403 && answer.doc.required_scope) return tr.t("adminOnly");
  if (answer.status === 0) return tr.t("signInFailed", { reason: "network error" });
  return answer.doc.description || `HTTP ${answer.status}`;
}

/** "Add a kiosk": a form in the fleet view; `onCreated()` refreshes the list. */
export function mountAddKiosk(container, { tr, token, onCreated }) {
  const name = el("input", { attrs: { id: "new-kiosk-name", required: "", maxlength: 128 } });
  const place = el("input", { attrs: { id: "new-kiosk-location", required: "", maxlength: 256 } });
  const submit = el("button", { text: tr.t("create"), attrs: { type: "submit", id: "create-kiosk" } });
  const result = el("div", { attrs: { id: "admin-result", role: "status" } });
  const form = el(
    "form",
    { className: "add-kiosk", attrs: { id: "add-kiosk-form" } },
    el("label", {}, el("span", { text: tr.t("kioskName") }), name),
    el("label", {}, el("span", { text: tr.t("location") }), place),
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    const answer = await postJson("/admin/kiosks", token, {
      name: name.value.trim(),
      location: place.value.trim(),
    });
    submit.disabled = false;
    if (answer.status === 201) {
      form.reset();
      result.replaceChildren(enrollmentPanel(tr, answer.doc));
      onCreated();
    } else {
      result.replaceChildren(el("p", { className: "admin-error", text: problem(tr, answer) }));
    }
  });
  const details = el(
    "details",
    { className: "admin", attrs: { id: "add-kiosk" } },
    el("summary", { text: tr.t("addKiosk") }),
    form,
  );
  container.replaceChildren(details, result);
}

/** "New enrollment code": rotates the kiosk's key (the tablet must enroll again). */
export function rotateControl({ tr, token, id }) {
  const result = el("div", { attrs: { id: "admin-result", role: "status" } });
  const button = el("button", { text: tr.t("rotateKey"), attrs: { type: "button", id: "rotate-key" } });
  button.addEventListener("click", async () => {
    if (!window.confirm(tr.t("rotateConfirm"))) return;
    button.disabled = true;
    const answer = await postJson(`/admin/kiosks/${encodeURIComponent(id)}/rotate-key`, token);
    button.disabled = false;
    result.replaceChildren(
      answer.status === 200
        ? enrollmentPanel(tr, answer.doc)
        : el("p", { className: "admin-error", text: problem(tr, answer) }),
    );
  });
  return el("div", { className: "admin" }, button, result);
}
