// The Team page's budgets and rate limits: list, set (or change) and remove.
//
// A budget caps spend in dollars and/or tokens per day, week, month or in
// total for a key, a user or a team; a rate limit caps requests and tokens per
// minute for a key, a user, a team or a model. Either may be narrowed to one
// model. Setting one with the same scope, subject (and period) and model
// changes it: the gateway keeps one of each.

import { api } from "./api.js";
import { clear, formatNumber, h, toast } from "./dom.js";
import { loadModels } from "./models.js";

const PERIODS = [["day", "Per day"], ["week", "Per week"], ["month", "Per month"], ["total", "In total"]];
const SCOPE_NAMES = { key: "Key", user: "User", team: "Team", model: "Model" };

let budgetTable = null;
let limitTable = null;
let budgetForm = null;
let limitForm = null;
let modelList = null;
let subjectLists = null;
let budgetRows = [];
let limitRows = [];
let context = null;

/** The two sections, built once; ``keys()`` is the Team page's current list of keys. */
export function build({ onChange, keys }) {
  context = { onChange, keys };
  budgetTable = h("div", { id: "budget-table" });
  limitTable = h("div", { id: "limit-table" });
  modelList = h("datalist", { id: "team-model-list" });
  subjectLists = {
    user: h("datalist", { id: "team-user-list" }),
    team: h("datalist", { id: "team-team-list" }),
  };
  budgetForm = buildBudgetForm();
  limitForm = buildLimitForm();
  return h("div", { id: "team-limits" },
    modelList, subjectLists.user, subjectLists.team,
    h("h2", { id: "budgets-heading" }, "Budgets"),
    h("p", { class: "muted" },
      "Spend allowed per calendar day, week or month (UTC) or in total. A call is checked against every ",
      "budget that covers it and refused (429) when one has no room left; its output is clamped to what is left. ",
      "Spent is what the ledger holds for the current period (calls still running count once they end)."),
    budgetTable,
    budgetForm.element,
    h("h2", { id: "limits-heading" }, "Rate limits"),
    h("p", { class: "muted" }, "Requests and tokens per clock minute; past either, a call is refused (429) until the next minute."),
    limitTable,
    limitForm.element,
  );
}

export async function refresh() {
  const [budgetAnswer, limitAnswer] = await Promise.all([api("/admin/budgets"), api("/admin/limits")]);
  budgetRows = budgetAnswer.budgets;
  limitRows = limitAnswer.limits;
  renderBudgets();
  renderLimits();
  loadModels().then(fillModels, () => {});
}

/** The Team page read its keys again: the key pickers and the names in the tables follow. */
export function keysChanged() {
  const keys = context.keys();
  for (const form of [budgetForm, limitForm]) form.subject.setKeys(keys);
  fill(subjectLists.user, new Set(keys.map((key) => key.user).filter(Boolean)));
  fill(subjectLists.team, new Set(keys.map((key) => key.team).filter(Boolean)));
  renderBudgets();
  renderLimits();
}

function fill(list, values) {
  clear(list);
  for (const value of [...values].sort()) list.append(h("option", { value }));
}

function fillModels(data) {
  const addresses = new Set();
  for (const group of data.connections) for (const model of group.models) addresses.add(model.address);
  fill(modelList, addresses);
}

/** The budgets a key's calls count against: its own, its user's and its team's. */
export function covering(key) {
  const subjects = { key: key.id, user: key.user, team: key.team };
  return budgetRows.filter((row) => subjects[row.scope] === row.subject);
}

/** "$0.42 of $5 this month", "1,200 of 10,000 tokens today": spend against the cap. */
export function spendText(row) {
  const when = { day: "today", week: "this week", month: "this month", total: "in total" }[row.period] ?? row.period;
  const parts = [];
  if (row.max_cost !== null && row.max_cost !== undefined) {
    parts.push(`${dollars(row.spent?.cost ?? 0)} of ${dollars(row.max_cost)}`);
  }
  if (row.max_tokens !== null && row.max_tokens !== undefined) {
    parts.push(`${formatNumber(row.spent?.tokens ?? 0)} of ${formatNumber(row.max_tokens)} tokens`);
  }
  return `${parts.join(", ")} ${when}`;
}

/** "$0.42 · 1,200 tokens this month": what a key itself spent (``spent`` of ``GET /admin/keys``). */
export function keySpendText(spent) {
  return `${dollars(spent?.cost ?? 0)} · ${formatNumber(spent?.tokens ?? 0)} tokens this month`;
}

/** How full the budget is (0–1), by whichever cap is nearer. */
export function fullness(row) {
  const shares = [];
  if (row.max_cost) shares.push((row.spent?.cost ?? 0) / row.max_cost);
  if (row.max_tokens) shares.push((row.spent?.tokens ?? 0) / row.max_tokens);
  return shares.length ? Math.min(1, Math.max(...shares)) : 0;
}

function subjectText(scope, subject) {
  if (scope !== "key") return subject;
  const key = context.keys().find((k) => k.id === subject);
  return key ? `${key.name} (${subject})` : subject;
}

function subjectCell(row) {
  return h("th", { scope: "row" }, h("span", { class: "tag" }, SCOPE_NAMES[row.scope]), " ", subjectText(row.scope, row.subject));
}

function dollars(value) {
  return value === null || value === undefined ? "—" : `$${Number(value).toLocaleString("en-US", { maximumFractionDigits: 6 })}`;
}

function modelCell(model) {
  return h("td", {}, model ? h("span", { class: "address" }, model) : h("span", { class: "muted" }, "any"));
}

function actionCell(kind, row, label) {
  return h("td", { class: "buttons" },
    h("button", { type: "button", onclick: () => edit(kind, row), "aria-label": `Edit ${label}` }, "Edit"),
    h("button", { type: "button", class: "danger", onclick: () => remove(kind, row, label), "aria-label": `Remove ${label}` }, "Remove"));
}

function renderBudgets() {
  clear(budgetTable);
  if (!budgetRows.length) {
    budgetTable.append(h("p", { class: "muted" }, "No budgets: calls spend without a cap."));
    return;
  }
  const body = h("tbody");
  for (const row of budgetRows) {
    const period = PERIODS.find(([value]) => value === row.period)?.[1] ?? row.period;
    const label = `budget ${row.period} of ${row.scope} ${subjectText(row.scope, row.subject)}${row.model ? ` for ${row.model}` : ""}`;
    body.append(h("tr", { "data-budget": row.id },
      subjectCell(row),
      modelCell(row.model),
      h("td", {}, period.toLowerCase()),
      h("td", { class: "num" }, dollars(row.max_cost)),
      h("td", { class: "num" }, formatNumber(row.max_tokens)),
      h("td", {}, spendMeter(row)),
      actionCell("budget", row, label)));
  }
  budgetTable.append(h("table", { class: "budgets", "aria-labelledby": "budgets-heading" },
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Applies to"),
      h("th", { scope: "col" }, "Model"),
      h("th", { scope: "col" }, "Period"),
      h("th", { scope: "col", class: "num" }, "Dollars"),
      h("th", { scope: "col", class: "num" }, "Tokens"),
      h("th", { scope: "col" }, "Spent"),
      h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
    body));
}

/** The spend as words and a bar; the words are what a screen reader reads. */
export function spendMeter(row) {
  const share = fullness(row);
  return h("span", { class: "spend" },
    h("meter", { min: "0", max: "1", low: "0.75", high: "0.9", optimum: "0", value: String(share), "aria-hidden": "true" }),
    " ", spendText(row));
}

function renderLimits() {
  clear(limitTable);
  if (!limitRows.length) {
    limitTable.append(h("p", { class: "muted" }, "No rate limits."));
    return;
  }
  const body = h("tbody");
  for (const row of limitRows) {
    const label = `rate limit of ${row.scope} ${subjectText(row.scope, row.subject)}${row.model ? ` for ${row.model}` : ""}`;
    body.append(h("tr", { "data-limit": row.id },
      subjectCell(row),
      modelCell(row.model),
      h("td", { class: "num" }, formatNumber(row.rpm)),
      h("td", { class: "num" }, formatNumber(row.tpm)),
      actionCell("limit", row, label)));
  }
  limitTable.append(h("table", { class: "limits", "aria-labelledby": "limits-heading" },
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Applies to"),
      h("th", { scope: "col" }, "Model"),
      h("th", { scope: "col", class: "num" }, "Requests / min"),
      h("th", { scope: "col", class: "num" }, "Tokens / min"),
      h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
    body));
}

function field(id, labelText, element, hint = null) {
  element.id = id;
  const note = hint ? h("span", { class: "muted", id: `${id}-hint` }, hint) : null;
  if (note) element.setAttribute("aria-describedby", `${id}-hint`);
  return h("div", { class: "field" }, h("label", { for: id }, labelText), element, note);
}

/** A scope select and what it applies to: a key chosen from the list, else a name typed. */
function subjectPicker(prefix, scopes, onScope) {
  const scope = h("select", { onchange: sync }, scopes.map((value) => h("option", { value }, SCOPE_NAMES[value])));
  const key = h("select", {});
  const name = h("input", { autocomplete: "off" });
  const keyField = field(`${prefix}-key`, "Key", key);
  const nameField = field(`${prefix}-subject`, "Name", name);
  const nameLabel = nameField.querySelector("label");
  function sync() {
    const chosen = scope.value;
    keyField.hidden = chosen !== "key";
    nameField.hidden = chosen === "key";
    key.required = chosen === "key";
    name.required = chosen !== "key";
    nameLabel.textContent = { user: "User", team: "Team", model: "Model address" }[chosen] ?? "Name";
    if (chosen === "model") name.setAttribute("list", "team-model-list");
    else name.setAttribute("list", `team-${chosen}-list`);
    onScope?.(chosen);
  }
  function setKeys(keys) {
    const was = key.value;
    clear(key);
    const usable = keys.filter((k) => !k.revoked_at);
    if (!usable.length) key.append(h("option", { value: "" }, "no keys yet"));
    for (const k of usable) key.append(h("option", { value: k.id, selected: k.id === was }, `${k.name} (${k.id})`));
  }
  sync();
  return {
    fields: [field(`${prefix}-scope`, "Applies to", scope), keyField, nameField],
    setKeys,
    get: () => ({ scope: scope.value, subject: scope.value === "key" ? key.value : name.value.trim() }),
    set(row) {
      scope.value = row.scope;
      sync();
      if (row.scope === "key") key.value = row.subject;
      else name.value = row.subject;
    },
    focus: () => scope.focus(),
  };
}

function numberOrNull(element) {
  return element.value === "" ? null : Number(element.value);
}

function formShell(id, legend, submit, controls, onSubmit) {
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const element = h("form", { id, class: "card", onsubmit: async (event) => {
    event.preventDefault();
    error.hidden = true;
    try {
      await onSubmit();
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    }
  } },
    h("fieldset", {}, h("legend", {}, legend), controls),
    error,
    h("div", { class: "buttons" }, h("button", { type: "submit" }, submit)));
  return element;
}

function buildBudgetForm() {
  const subject = subjectPicker("budget", ["key", "user", "team"]);
  const period = h("select", {}, PERIODS.map(([value, text]) => h("option", { value, selected: value === "month" }, text)));
  const cost = h("input", { type: "number", min: "0", step: "any", inputmode: "decimal" });
  const tokens = h("input", { type: "number", min: "0", step: "1" });
  const model = h("input", { autocomplete: "off", list: "team-model-list" });
  const controls = [
    ...subject.fields,
    field("budget-period", "Period", period),
    field("budget-dollars", "Dollars", cost, "Most spend in the period, at the model's prices. Empty: no dollar cap."),
    field("budget-tokens", "Tokens", tokens, "Most tokens in and out in the period. Empty: no token cap."),
    field("budget-model", "Only for model", model, "Optional: count only calls asked of this model."),
  ];
  const element = formShell("budget-form", "Set a budget", "Set budget", controls, async () => {
    const body = {
      ...subject.get(),
      period: period.value,
      max_cost: numberOrNull(cost),
      max_tokens: numberOrNull(tokens),
      model: model.value.trim() || null,
    };
    const saved = await api("/admin/budgets", { method: "PUT", body });
    toast(`Budget ${saved.id} set.`);
    for (const input of [cost, tokens, model]) input.value = "";
    await context.onChange();
  });
  return {
    element, subject,
    fill(row) {
      subject.set(row);
      period.value = row.period;
      cost.value = row.max_cost ?? "";
      tokens.value = row.max_tokens ?? "";
      model.value = row.model ?? "";
    },
  };
}

function buildLimitForm() {
  const model = h("input", { autocomplete: "off", list: "team-model-list" });
  let modelField = null;
  const subject = subjectPicker("limit", ["key", "user", "team", "model"], (scope) => {
    // A model's own limit is for all tenants together: there is nothing to narrow.
    if (modelField) modelField.hidden = scope === "model";
  });
  const rpm = h("input", { type: "number", min: "0", step: "1" });
  const tpm = h("input", { type: "number", min: "0", step: "1" });
  modelField = field("limit-model", "Only for model", model, "Optional: count only calls asked of this model.");
  const controls = [
    ...subject.fields,
    field("limit-rpm", "Requests per minute", rpm),
    field("limit-tpm", "Tokens per minute", tpm),
    modelField,
  ];
  const element = formShell("limit-form", "Set a rate limit", "Set rate limit", controls, async () => {
    const chosen = subject.get();
    const body = {
      ...chosen,
      rpm: numberOrNull(rpm),
      tpm: numberOrNull(tpm),
      model: chosen.scope === "model" ? null : model.value.trim() || null,
    };
    const saved = await api("/admin/limits", { method: "PUT", body });
    toast(`Rate limit ${saved.id} set.`);
    for (const input of [rpm, tpm, model]) input.value = "";
    await context.onChange();
  });
  return {
    element, subject,
    fill(row) {
      subject.set(row);
      rpm.value = row.rpm ?? "";
      tpm.value = row.tpm ?? "";
      model.value = row.model ?? "";
    },
  };
}

function edit(kind, row) {
  const form = kind === "budget" ? budgetForm : limitForm;
  form.fill(row);
  form.subject.focus();
}

async function remove(kind, row, label) {
  if (!window.confirm(`Remove the ${label}? Calls it covers are no longer capped by it.`)) return;
  const path = kind === "budget" ? "/admin/budgets/" : "/admin/limits/";
  try {
    await api(path + encodeURIComponent(row.id), { method: "DELETE" });
    toast(`Removed the ${label}.`);
    await context.onChange();
  } catch (error) {
    toast(error.message);
  }
}
