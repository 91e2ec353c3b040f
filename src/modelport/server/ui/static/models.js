// Models: every model of every connection and plugin, grouped by connection, filterable.

import { api } from "./api.js";
import { clear, formatNumber, formatPrice, h } from "./dom.js";

export const title = "Models";

let root = null;
let results = null;
let filter = null;
let status = null;
let data = null;

const CAPABILITIES = [
  ["tools", "tools"],
  ["vision", "vision"],
  ["reasoning", "reasoning"],
  ["prompt_cache", "prompt cache"],
  ["streaming", "streaming"],
];

/** Everything /admin/models knows, fetched once per change and shared with the chat page. */
let pending = null;
export function loadModels(force = false) {
  if (!pending || force) {
    pending = api("/admin/models").catch((error) => {
      pending = null;
      throw error;
    });
  }
  return pending;
}

export function init(section, { bus }) {
  root = section;
  filter = h("input", {
    id: "model-filter",
    type: "search",
    placeholder: "name, connection or capability",
    oninput: render,
    autocomplete: "off",
  });
  status = h("p", { class: "muted", role: "status" });
  results = h("div", { id: "model-groups" });
  root.append(
    h("h1", { id: "models-title" }, "Models"),
    h("div", { class: "toolbar" },
      h("label", { for: "model-filter" }, "Filter models"),
      filter,
      h("button", { type: "button", onclick: () => refresh(true) }, "Refresh")),
    status,
    results,
  );
  bus.addEventListener("models-changed", () => refresh(true));
}

export function show() {
  refresh(false);
}

async function refresh(force) {
  status.textContent = "Loading models…";
  try {
    data = await loadModels(force);
    render();
  } catch (error) {
    status.textContent = `Could not list models: ${error.message}`;
  }
}

function matches(group, model, words) {
  const haystack = [
    model.address,
    model.name || "",
    group.compat || "",
    group.plugin || "",
    ...CAPABILITIES.filter(([key]) => model.capabilities[key]).map(([, label]) => label),
  ].join(" ").toLowerCase();
  return words.every((word) => haystack.includes(word));
}

function render() {
  if (!data) return;
  const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
  clear(results);
  let shown = 0;
  for (const group of data.connections) {
    const models = group.models.filter((model) => matches(group, model, words));
    if (words.length && !models.length) continue;
    shown += models.length;
    const heading = `${group.connection}`;
    const detail = [group.compat, group.plugin ? `plugin ${group.plugin}` : null]
      .filter(Boolean).join(" · ");
    const section = h("section", { class: "group", "aria-label": `Connection ${heading}` },
      h("h2", {}, heading, detail ? h("span", { class: "muted" }, ` ${detail}`) : null));
    if (group.error) {
      section.append(h("p", { class: "error" }, group.error.message));
    }
    if (models.length) section.append(table(models));
    else if (!group.error) section.append(h("p", { class: "muted" }, "No models."));
    results.append(section);
  }
  status.textContent = words.length
    ? `${shown} models match.`
    : `${shown} models in ${data.connections.length} connections.`;
}

function table(models) {
  const body = h("tbody");
  for (const model of models) {
    const capabilities = CAPABILITIES.filter(([key]) => model.capabilities[key])
      .map(([, label]) => h("span", { class: "tag" }, label));
    body.append(h("tr", { "data-address": model.address },
      h("th", { scope: "row" },
        h("span", { class: "address" }, model.address),
        model.name && model.name !== model.id ? h("span", { class: "muted" }, ` ${model.name}`) : null),
      h("td", { class: "num" }, formatNumber(model.context_window)),
      h("td", { class: "num" }, formatNumber(model.max_output_tokens)),
      h("td", { class: "num" }, formatPrice(model.prices.input)),
      h("td", { class: "num" }, formatPrice(model.prices.output)),
      h("td", {}, capabilities),
      h("td", {},
        h("a", {
          class: "button",
          href: `#/chat?model=${encodeURIComponent(model.address)}`,
          "aria-label": `Chat with ${model.address}`,
        }, "Chat")),
    ));
  }
  return h("table", { class: "models" },
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Model"),
      h("th", { scope: "col", class: "num" }, "Context"),
      h("th", { scope: "col", class: "num" }, "Max output"),
      h("th", { scope: "col", class: "num" }, "Input $/M"),
      h("th", { scope: "col", class: "num" }, "Output $/M"),
      h("th", { scope: "col" }, "Capabilities"),
      h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
    body);
}
