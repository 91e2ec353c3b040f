// Team: the virtual keys this gateway issues (list, issue, rotate, revoke), their
// budgets and rate limits (budgets.js), and the audit log of every admin action.
//
// A key's secret comes in one answer only, the one that issued or rotated it.
// The page shows it once, in a panel with a copy button, and forgets it when the
// panel is closed or the page is left: it is never stored, and no answer the
// page reads later (GET /admin/keys, /admin/audit …) contains it.

import { api } from "./api.js";
import { clear, h, toast } from "./dom.js";
import * as budgets from "./budgets.js";

export const title = "Team";

const AUDIT_PAGE = 25;

let status = null;
let keyTable = null;
let keyForm = null;
let fields = null;
let secretPanel = null;
let audit = null;
let auditNewer = null;
let auditOlder = null;
let auditPosition = null;
// The `before` cursor of each page shown so far (null: the newest); the last is this page's.
let auditCursors = [null];
let auditLast = null;
let keys = [];

export function init(section) {
  status = h("p", { class: "muted", role: "status", id: "team-status", tabindex: "-1" });
  keyTable = h("div", { id: "key-table" });
  secretPanel = h("section", {
    id: "key-secret", class: "card secret", hidden: true, "aria-labelledby": "key-secret-title",
  });
  keyForm = buildKeyForm();
  audit = h("div", { id: "audit-log" });
  auditNewer = h("button", { type: "button", id: "audit-newer", onclick: newerAudit }, "Newer entries");
  auditOlder = h("button", { type: "button", id: "audit-older", onclick: olderAudit }, "Older entries");
  auditPosition = h("span", { class: "muted", id: "audit-position", "aria-live": "polite" });
  section.append(
    h("h1", { id: "team-title" }, "Team"),
    h("p", { class: "muted" },
      "Keys this gateway issues to people and tools, what each may spend and how fast. ",
      "Once one key exists, every /v1 call needs one (the gateway key then guards only /health, ",
      "/metrics and /openapi.json). These are not the provider keys in Settings."),
    status,
    h("h2", { id: "keys-heading" }, "Virtual keys"),
    keyTable,
    h("div", { class: "toolbar" },
      h("button", { type: "button", id: "key-add", onclick: openKeyForm }, "Issue a key")),
    keyForm,
    secretPanel,
    budgets.build({ onChange: refresh, keys: () => keys }),
    h("h2", { id: "audit-heading" }, "Audit log"),
    h("p", { class: "muted" }, "Every admin action, from this page, the admin routes or `modelport vkeys`, newest first."),
    h("div", { class: "toolbar" },
      h("button", { type: "button", onclick: newestAudit }, "Refresh audit log")),
    audit,
    h("nav", { class: "toolbar", "aria-label": "Audit log pages" }, auditNewer, auditOlder, auditPosition),
  );
}

export function show() {
  refresh();
}

export function hide() {
  forgetSecret(); // shown once: leaving the page is closing the panel
}

async function refresh() {
  try {
    const [listed] = await Promise.all([api("/admin/keys"), budgets.refresh()]);
    keys = listed.keys;
    renderKeys();
    budgets.keysChanged();
    if (status.textContent.startsWith("Could not")) status.textContent = "";
  } catch (error) {
    status.textContent = error.status === 503 ? error.message : `Could not read the keys: ${error.message}`;
    return;
  }
  await newestAudit(); // after the keys: the log names each key it mentions
}

/** "active", "revoked" or "expired", as `modelport vkeys list` says it. */
export function keyState(key, now = Date.now()) {
  if (key.revoked_at) return "revoked";
  if (key.expires_at && Date.parse(key.expires_at) <= now) return "expired";
  return "active";
}

export function when(value) {
  return value ? new Date(value).toLocaleString() : null;
}

function renderKeys() {
  clear(keyTable);
  if (!keys.length) {
    keyTable.append(h("p", { class: "muted" }, "No virtual keys yet: the gateway is open to the gateway key (if any)."));
    return;
  }
  const body = h("tbody");
  for (const key of keys) {
    const state = keyState(key);
    const label = `${key.name} (${key.id})`;
    body.append(h("tr", { "data-key": key.id, class: state === "active" ? "" : "inactive" },
      h("th", { scope: "row" }, key.name, h("br"), h("code", { class: "muted" }, key.id)),
      h("td", {}, key.user || h("span", { class: "muted" }, "—")),
      h("td", {}, key.team || h("span", { class: "muted" }, "—")),
      h("td", {}, key.models.length ? key.models.map((m) => h("span", { class: "tag address" }, m)) : h("span", { class: "muted" }, "all")),
      h("td", {}, when(key.expires_at) || h("span", { class: "muted" }, "never")),
      h("td", { class: "spend-cell" }, spendCell(key)),
      h("td", {}, h("code", { class: "hint" }, `mpvk-…${key.hint}`)),
      h("td", {}, h("span", { class: `badge key-${state}` }, state)),
      h("td", { class: "buttons" },
        h("button", {
          type: "button", onclick: () => rotate(key), disabled: Boolean(key.revoked_at),
          "aria-label": `Rotate ${label}`,
        }, "Rotate"),
        h("button", {
          type: "button", class: "danger", onclick: () => revoke(key), disabled: Boolean(key.revoked_at),
          "aria-label": `Revoke ${label}`,
        }, "Revoke"))));
  }
  keyTable.append(h("table", { class: "keys", "aria-labelledby": "keys-heading" },
    h("thead", {}, h("tr", {},
      ["Name", "User", "Team", "Models", "Expires", "Spent / budget", "Secret", "State"].map((text) => h("th", { scope: "col" }, text)),
      h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
    body));
}

/** What the key itself spent this month, then each budget it counts against with what is
 * spent of it (the whole user's or team's). */
function spendCell(key) {
  const own = h("span", { class: "key-spend" }, budgets.keySpendText(key.spent));
  const rows = budgets.covering(key);
  if (!rows.length) return [own, h("br"), h("span", { class: "muted" }, "no budget")];
  return [own, h("ul", { class: "budget-list" }, rows.map((row) => h("li", { "data-budget": row.id },
    row.scope === "key" ? null : h("span", { class: "tag" }, `${row.scope} ${row.subject}`),
    row.model ? h("span", { class: "tag address" }, row.model) : null,
    budgets.spendMeter(row))))];
}

function input(id, labelText, attributes = {}, hint = null) {
  const element = h("input", { id, name: id, autocomplete: "off", ...attributes });
  const note = hint ? h("span", { class: "muted", id: `${id}-hint` }, hint) : null;
  if (note) element.setAttribute("aria-describedby", `${id}-hint`);
  return { element, field: h("div", { class: "field" }, h("label", { for: id }, labelText), element, note) };
}

function buildKeyForm() {
  const name = input("key-name", "Name", { required: true }, "Who or what it is for: a person, a CI job, a tool.");
  const user = input("key-user", "User", {}, "Optional. Budgets and limits of this user cover the key.");
  const team = input("key-team", "Team", {}, "Optional. Budgets and limits of this team cover the key.");
  const models = input("key-models", "Allowed models", { placeholder: "up/m1, work/gpt-4.1-mini" },
    "Addresses or aliases, separated by commas; empty for every model.");
  const expires = input("key-expires", "Expires on", { type: "date" }, "Optional. It stops working at the start of that day (UTC).");
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const element = h("form", { id: "key-form", class: "card", hidden: true, onsubmit: (event) => {
    event.preventDefault();
    issue();
  } },
    h("fieldset", {}, h("legend", {}, "Issue a virtual key"),
      name.field, user.field, team.field, models.field, expires.field),
    error,
    h("div", { class: "buttons" },
      h("button", { type: "submit" }, "Issue key"),
      h("button", { type: "button", onclick: closeKeyForm }, "Cancel")));
  fields = {
    name: name.element, user: user.element, team: team.element, models: models.element,
    expires: expires.element, error,
  };
  return element;
}

function openKeyForm() {
  for (const name of ["name", "user", "team", "models", "expires"]) fields[name].value = "";
  fields.error.hidden = true;
  keyForm.hidden = false;
  fields.name.focus();
}

function closeKeyForm() {
  keyForm.hidden = true;
  document.getElementById("key-add").focus();
}

async function issue() {
  const body = {
    name: fields.name.value.trim(),
    user: fields.user.value.trim() || null,
    team: fields.team.value.trim() || null,
    models: fields.models.value.split(",").map((m) => m.trim()).filter(Boolean),
  };
  if (fields.expires.value) body.expires_at = `${fields.expires.value}T00:00:00Z`;
  try {
    const { key, secret } = await api("/admin/keys", { method: "POST", body });
    keyForm.hidden = true;
    showSecret(key, secret, "Issued");
    await refresh();
  } catch (error) {
    fields.error.textContent = error.message;
    fields.error.hidden = false;
  }
}

async function rotate(key) {
  if (!window.confirm(`Rotate ${key.name}? Its current secret stops working at once; the new one is shown once.`)) return;
  try {
    const { key: rotated, secret } = await api(`/admin/keys/${encodeURIComponent(key.id)}/rotate`, { method: "POST" });
    showSecret(rotated, secret, "Rotated");
    await refresh();
  } catch (error) {
    status.textContent = error.message;
  }
}

async function revoke(key) {
  if (!window.confirm(`Revoke ${key.name}? Every call with it is refused from now on; this cannot be undone.`)) return;
  try {
    await api(`/admin/keys/${encodeURIComponent(key.id)}/revoke`, { method: "POST" });
    toast(`Revoked ${key.name}.`);
    status.textContent = `Revoked ${key.name} (${key.id}).`;
    await refresh();
    status.focus(); // its row was drawn again: keep the keyboard where the news is
  } catch (error) {
    status.textContent = error.message;
  }
}

function showSecret(key, secret, verb) {
  clear(secretPanel);
  const value = h("code", { id: "key-secret-value", class: "secret-value" }, secret);
  const copy = h("button", { type: "button", id: "key-secret-copy", onclick: () => copySecret(value) }, "Copy secret");
  secretPanel.append(
    h("h3", { id: "key-secret-title" }, `${verb} ${key.name}: its secret`),
    h("p", {}, "Copy it now: it is shown this once and never again, here or anywhere. ",
      "Clients send it as ", h("code", {}, "Authorization: Bearer"), " (OpenAI SDKs) or ",
      h("code", {}, "x-api-key"), " (Anthropic SDKs)."),
    h("p", {}, value),
    h("div", { class: "buttons" }, copy,
      h("button", { type: "button", onclick: () => {
        forgetSecret();
        document.getElementById("key-add").focus();
      } }, "Done, hide the secret")));
  secretPanel.hidden = false;
  status.textContent = `${verb} ${key.name} (${key.id}).`;
  copy.focus();
}

function forgetSecret() {
  if (!secretPanel) return;
  clear(secretPanel);
  secretPanel.hidden = true;
}

async function copySecret(value) {
  try {
    await navigator.clipboard.writeText(value.textContent);
    toast("Secret copied.");
  } catch {
    // No clipboard (a plain-http address other than this machine): select it to copy by hand.
    getSelection().selectAllChildren(value);
    toast("Selected: press Ctrl+C (⌘C) to copy.");
  }
}

/** Read the page the cursors point at (the newest unless paged on). */
async function loadAudit() {
  const before = auditCursors[auditCursors.length - 1];
  const query = before === null ? "" : `&before=${before}`;
  try {
    const { entries } = await api(`/admin/audit?limit=${AUDIT_PAGE}${query}`);
    auditLast = entries.length ? entries[entries.length - 1].id : null;
    renderAudit(entries);
  } catch (error) {
    clear(audit).append(h("p", { class: "muted" }, error.message));
  }
}

function newestAudit() {
  auditCursors = [null];
  return loadAudit();
}

function olderAudit() {
  if (auditLast === null) return;
  auditCursors.push(auditLast);
  loadAudit();
}

function newerAudit() {
  if (auditCursors.length > 1) auditCursors.pop();
  loadAudit();
}

function detailText(detail) {
  return Object.entries(detail)
    .filter(([, value]) => value !== null && value !== undefined && !(Array.isArray(value) && !value.length))
    .map(([name, value]) => `${name}=${Array.isArray(value) ? value.join(",") : value}`)
    .join(" ");
}

function renderAudit(entries) {
  clear(audit);
  const page = auditCursors.length;
  auditNewer.disabled = page === 1;
  auditOlder.disabled = entries.length < AUDIT_PAGE;
  auditPosition.textContent = entries.length
    ? `Page ${page}: entries ${(page - 1) * AUDIT_PAGE + 1}–${(page - 1) * AUDIT_PAGE + entries.length}, newest first.`
    : "";
  if (!entries.length) {
    audit.append(h("p", { class: "muted" }, page === 1 ? "Nothing yet." : "No older entries."));
    return;
  }
  const names = new Map(keys.map((key) => [key.id, key.name]));
  const body = h("tbody");
  for (const entry of entries) {
    body.append(h("tr", { "data-audit": entry.id },
      h("td", {}, h("time", { datetime: entry.at }, when(entry.at))),
      h("td", {}, entry.actor),
      h("th", { scope: "row" }, entry.action),
      h("td", {}, h("code", {}, entry.target), names.has(entry.target) ? ` (${names.get(entry.target)})` : null),
      h("td", { class: "detail" }, detailText(entry.detail))));
  }
  audit.append(h("table", { class: "audit", "aria-labelledby": "audit-heading" },
    h("thead", {}, h("tr", {},
      ["When", "Who", "Action", "Target", "Details"].map((text) => h("th", { scope: "col" }, text)))),
    body));
}
