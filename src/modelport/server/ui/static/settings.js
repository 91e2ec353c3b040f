// Settings: connections (list, add, edit, delete, test) and each plugin provider's
// configFields form. Keys are write-only: the page is told "set" or "not set",
// never a key, and a key typed here is sent once and the field emptied.

import { api } from "./api.js";
import { clear, h, toast } from "./dom.js";
import { loadModels } from "./models.js";

export const title = "Settings";

let table = null;
let providers = null;
let status = null;
let form = null;
let fields = null;
let compats = ["openai", "anthropic", "ollama"];
let rows = [];

export function init(section, { bus }) {
  status = h("p", { class: "muted", role: "status", id: "settings-status" });
  table = h("div", { id: "connection-table" });
  providers = h("div", { id: "provider-forms", class: "cards" });
  form = buildForm();
  section.append(
    h("h1", { id: "settings-title" }, "Settings"),
    h("h2", {}, "Connections"),
    h("p", { class: "muted" },
      "Saved to config.toml (its comments kept); keys go where `modelport keys set` puts them. ",
      "The running gateway uses a change from the next request on."),
    table,
    h("div", { class: "toolbar" },
      h("button", { type: "button", id: "connection-add", onclick: () => openForm(null) }, "Add connection")),
    form.element,
    status,
    h("h2", {}, "Plugin providers"),
    h("p", { class: "muted" }, "Settings each running plugin asks for (its configFields)."),
    providers,
  );
  bus.addEventListener("models-changed", () => {
    if (!section.hidden) refresh();
  });
}

export function show() {
  refresh();
}

async function refresh() {
  try {
    const data = await api("/admin/connections");
    rows = data.connections;
    compats = data.compats;
    renderTable();
    renderProviders();
  } catch (error) {
    status.textContent = `Could not read the settings: ${error.message}`;
  }
}

function keyText(key) {
  if (!key.set) return "not set";
  return key.source === "stored" ? "set (stored)" : `set (${key.source})`;
}

/** Why an edit here would change nothing: a project's config.toml sets this connection. */
function overrideText(row) {
  return `${row.overridden_by} sets [connections.${row.name}]; that project file overrides ` +
    "the global config.toml this page edits, so changes saved here have no effect " +
    "until you change or remove the table there.";
}

function renderTable() {
  clear(table);
  const configured = rows.filter((row) => row.configured);
  if (!configured.length) {
    table.append(h("p", { class: "muted" }, "No connections configured yet."));
    return;
  }
  const body = h("tbody");
  for (const row of configured) {
    const result = h("td", { colspan: "5", class: "test-result" });
    const resultRow = h("tr", { hidden: true }, result);
    body.append(h("tr", { "data-connection": row.name },
      h("th", { scope: "row" }, row.name),
      h("td", {}, row.compat),
      h("td", {}, row.base_url || h("span", { class: "muted" }, "default")),
      h("td", { class: "key-status" }, keyText(row.key)),
      h("td", { class: "buttons" },
        h("button", { type: "button", onclick: () => openForm(row), "aria-label": `Edit ${row.name}` }, "Edit"),
        h("button", { type: "button", onclick: () => test(row.name, resultRow, result), "aria-label": `Test ${row.name}` }, "Test"),
        h("button", { type: "button", class: "danger", onclick: () => remove(row.name), "aria-label": `Delete ${row.name}` }, "Delete")),
    ), resultRow);
    if (row.overridden_by) {
      body.append(h("tr", { class: "override" },
        h("td", { colspan: "5", class: "override-note", id: `override-${row.name}` },
          h("strong", {}, "Overridden: "), overrideText(row))));
    }
  }
  table.append(h("table", { class: "connections" },
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Name"),
      h("th", { scope: "col" }, "Compat"),
      h("th", { scope: "col" }, "Base URL"),
      h("th", { scope: "col" }, "Key"),
      h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
    body));
}

function input(id, labelText, attributes = {}) {
  const element = h("input", { id, name: id, ...attributes });
  return { element, field: h("div", { class: "field" }, h("label", { for: id }, labelText), element) };
}

function buildForm() {
  const name = input("conn-name", "Name", { required: true, autocomplete: "off", pattern: "[^/]+" });
  const compat = h("select", { id: "conn-compat", name: "compat" });
  const baseUrl = input("conn-base-url", "Base URL", { type: "url", placeholder: "http://localhost:11434/v1" });
  const keyEnv = input("conn-key-env", "Key environment variable", { placeholder: "e.g. WORK_LLM_KEY", autocomplete: "off" });
  const timeout = input("conn-timeout", "Timeout (seconds)", { type: "number", min: "0.1", step: "any" });
  const retries = input("conn-retries", "Max retries", { type: "number", min: "0", step: "1" });
  const key = input("conn-key", "API key", { type: "password", autocomplete: "new-password" });
  const keyState = h("p", { class: "muted", id: "conn-key-state" });
  key.element.setAttribute("aria-describedby", "conn-key-state");
  const forget = h("input", { type: "checkbox", id: "conn-forget-key" });
  const legend = h("legend", {}, "Add connection");
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const override = h("p", { class: "override-note", id: "conn-override", hidden: true });
  const element = h("form", { id: "connection-form", class: "card", hidden: true, onsubmit: (event) => {
    event.preventDefault();
    saveConnection();
  } },
    h("fieldset", {}, legend,
      name.field,
      h("div", { class: "field" }, h("label", { for: "conn-compat" }, "Compat"), compat),
      baseUrl.field, keyEnv.field, timeout.field, retries.field, key.field, keyState,
      h("div", { class: "field check" }, forget, h("label", { for: "conn-forget-key" }, "Forget the stored key"))),
    override,
    error,
    h("div", { class: "buttons" },
      h("button", { type: "submit", "aria-describedby": "conn-override" }, "Save connection"),
      h("button", { type: "button", onclick: closeForm }, "Cancel")));
  fields = {
    name: name.element, compat, baseUrl: baseUrl.element, keyEnv: keyEnv.element,
    timeout: timeout.element, retries: retries.element, key: key.element, keyState, forget, legend, error, override,
    editing: null,
  };
  return { element };
}

function openForm(row) {
  fields.editing = row;
  fields.legend.textContent = row ? `Edit ${row.name}` : "Add connection";
  fields.name.value = row ? row.name : "";
  fields.name.readOnly = Boolean(row);
  clear(fields.compat);
  const options = new Set(compats);
  if (row) options.add(row.compat);
  for (const compat of options) {
    fields.compat.append(h("option", { value: compat, selected: row ? row.compat === compat : compat === "openai" }, compat));
  }
  fields.baseUrl.value = row?.base_url || "";
  fields.keyEnv.value = row?.api_key_env || "";
  fields.timeout.value = row?.timeout ?? "";
  fields.retries.value = row?.max_retries ?? "";
  fields.key.value = "";
  fields.forget.checked = false;
  fields.keyState.textContent = row
    ? `Key: ${keyText(row.key)}. Leave empty to keep it.`
    : "Key: not set. Leave empty for a server that needs none.";
  fields.error.hidden = true;
  fields.override.hidden = !row?.overridden_by;
  fields.override.textContent = row?.overridden_by ? overrideText(row) : "";
  form.element.hidden = false;
  (row ? fields.compat : fields.name).focus();
}

function closeForm() {
  form.element.hidden = true;
  fields.key.value = "";
  document.getElementById("connection-add").focus();
}

function numberOrNull(value) {
  return value === "" ? null : Number(value);
}

async function saveConnection() {
  const name = fields.name.value.trim();
  const body = {
    compat: fields.compat.value,
    base_url: fields.baseUrl.value.trim() || null,
    api_key_env: fields.keyEnv.value.trim() || null,
    timeout: numberOrNull(fields.timeout.value),
    max_retries: numberOrNull(fields.retries.value),
  };
  if (fields.key.value) body.key = fields.key.value;
  else if (fields.forget.checked) body.clear_key = true;
  fields.key.value = ""; // sent once; never kept in the page
  try {
    const saved = await api(`/admin/connections/${encodeURIComponent(name)}`, { method: "PUT", body });
    form.element.hidden = true;
    // Never a silent no-op: say when the saved table is not the one in use.
    const message = saved.overridden_by
      ? `Saved ${name} to config.toml, but it has no effect: ${saved.overridden_by} overrides it.`
      : `Saved ${name}.`;
    toast(message);
    status.textContent = message;
    loadModels(true).catch(() => {});
    await refresh();
  } catch (error) {
    fields.error.textContent = error.message;
    fields.error.hidden = false;
  }
}

async function test(name, resultRow, cell) {
  resultRow.hidden = false;
  clear(cell).append(h("p", { class: "muted" }, `Testing ${name}…`));
  try {
    const report = await api(`/admin/connections/${encodeURIComponent(name)}/test`, { method: "POST" });
    const list = h("ul", { class: "checks", "aria-label": `Test of ${name}` });
    for (const check of report.checks) {
      const mark = { ok: "✓", problem: "✗", warning: "!", info: "·" }[check.level];
      list.append(h("li", { class: `check-${check.level}` },
        `${mark} `, check.label ? `${check.label}: ` : "", check.text,
        check.fix ? h("span", { class: "fix" }, ` — fix: ${check.fix}`) : null));
    }
    clear(cell).append(list);
  } catch (error) {
    clear(cell).append(h("p", { class: "error" }, error.message));
  }
}

async function remove(name) {
  if (!window.confirm(`Delete the connection ${name} from config.toml? Its stored key stays.`)) return;
  try {
    const deleted = await api(`/admin/connections/${encodeURIComponent(name)}`, { method: "DELETE" });
    const message = deleted.overridden_by
      ? `Deleted ${name} from config.toml; ${deleted.overridden_by} still sets it, so it stays in use.`
      : `Deleted ${name}.`;
    toast(message);
    status.textContent = message;
    loadModels(true).catch(() => {});
    await refresh();
  } catch (error) {
    status.textContent = error.message;
  }
}

function renderProviders() {
  clear(providers);
  const withFields = rows.filter((row) => row.config_fields.length);
  if (!withFields.length) {
    providers.append(h("p", { class: "muted" }, "No running plugin asks for settings."));
    return;
  }
  for (const row of withFields) providers.append(providerForm(row));
}

function providerForm(row) {
  const prefix = `provider-${row.name.replace(/[^\w-]/g, "_")}`;
  const inputs = [];
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const fieldset = h("fieldset", {}, h("legend", {}, `${row.name} (plugin ${row.plugin})`));
  for (const spec of row.config_fields) {
    const id = `${prefix}-${spec.key}`;
    const secret = spec.type === "password";
    const element = h("input", {
      id,
      type: secret ? "password" : "text",
      autocomplete: secret ? "new-password" : "off",
      value: secret ? "" : (row.options[spec.key] ?? ""),
      required: spec.required && !(secret && row.key.set),
    });
    const note = secret ? h("span", { class: "muted key-status", id: `${id}-state` }, keyText(row.key)) : null;
    if (note) element.setAttribute("aria-describedby", `${id}-state`);
    fieldset.append(h("div", { class: "field" },
      h("label", { for: id }, spec.label || spec.key, spec.required ? " (required)" : ""), element, note));
    inputs.push({ spec, element });
  }
  const formElement = h("form", { class: "card provider-form", id: `${prefix}-form`, onsubmit: async (event) => {
    event.preventDefault();
    const body = { compat: `plugin:${row.name}`, options: {} };
    for (const { spec, element } of inputs) {
      if (spec.type === "password") {
        if (element.value) body.key = element.value;
        element.value = ""; // sent once; never kept in the page
      } else {
        body.options[spec.key] = element.value.trim() || null;
      }
    }
    try {
      const saved = await api(`/admin/connections/${encodeURIComponent(row.name)}`, { method: "PUT", body });
      const message = saved.overridden_by
        ? `Saved the settings of ${row.name} to config.toml, but ${saved.overridden_by} overrides them.`
        : `Saved the settings of ${row.name}.`;
      toast(message);
      status.textContent = message;
      await refresh();
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    }
  } },
    fieldset,
    row.overridden_by ? h("p", { class: "override-note", id: `${prefix}-override` }, overrideText(row)) : null,
    error,
    h("div", { class: "buttons" }, h("button", { type: "submit" }, `Save ${row.name} settings`)));
  return formElement;
}
