// Plugins: state, pid, restarts, problems and a live tail of each plugin's log;
// Reload (rescan the folders), Start, Stop, Restart and Trust.

import { api } from "./api.js";
import { clear, h, toast } from "./dom.js";

export const title = "Plugins";

const LOG_POLL_MS = 1000;
const VERBS = { start: "Starting", stop: "Stopping", restart: "Restarting", trust: "Trusting" };

let list = null;
let status = null;
let visible = false;
const cards = new Map(); // name → {element, refs, log: {pre, next, timer}}

export function init(section, { bus }) {
  status = h("p", { class: "muted", role: "status" });
  list = h("div", { id: "plugin-list", class: "cards" });
  section.append(
    h("h1", { id: "plugins-title" }, "Plugins"),
    h("div", { class: "toolbar" },
      h("button", { type: "button", id: "plugins-reload", onclick: reload }, "Reload plugins"),
      h("span", { class: "muted" },
        "Rescans the plugin folders, starts the startup plugins and re-reads stored keys.")),
    status,
    list,
  );
  bus.addEventListener("plugins", (event) => {
    if (visible) render(event.detail);
  });
}

export async function show() {
  visible = true;
  await refresh();
  for (const card of cards.values()) startTail(card);
}

export function hide() {
  visible = false;
  for (const card of cards.values()) stopTail(card);
}

async function refresh() {
  try {
    const { plugins } = await api("/plugins");
    render(plugins);
  } catch (error) {
    status.textContent = error.status === 503 ? "This gateway runs without plugins." : error.message;
  }
}

async function reload() {
  status.textContent = "Reloading plugins…";
  try {
    const { plugins } = await api("/plugins/load", { method: "POST" });
    render(plugins);
    status.textContent = "Plugins reloaded.";
  } catch (error) {
    status.textContent = `Reload failed: ${error.message}`;
  }
}

async function act(name, action) {
  const card = cards.get(name);
  card?.refs.buttons.forEach((button) => { button.disabled = true; });
  status.textContent = `${VERBS[action]} ${name}…`;
  try {
    if (action === "restart") {
      await api(`/plugins/${encodeURIComponent(name)}/stop`, { method: "POST" });
      action = "start";
    }
    const info = await api(`/plugins/${encodeURIComponent(name)}/${action}`, { method: "POST" });
    update(info);
    status.textContent = `${name}: ${info.state}.`;
    toast(`${name} is ${info.state}.`);
  } catch (error) {
    status.textContent = `${name}: ${error.message}`;
    await refresh();
  } finally {
    const again = cards.get(name);
    again?.refs.buttons.forEach((button) => { button.disabled = false; });
    if (again) syncButtons(again, again.info);
  }
}

function render(plugins) {
  const names = new Set(plugins.map((p) => p.name));
  for (const [name, card] of cards) {
    if (!names.has(name)) {
      stopTail(card);
      card.element.remove();
      cards.delete(name);
    }
  }
  for (const info of plugins) update(info);
  if (!plugins.length) {
    status.textContent = "No plugins found. Put one in MODELPORT_HOME/plugins/ (see `modelport plugins new`), then Reload.";
  } else if (status.textContent.startsWith("No plugins")) {
    status.textContent = "";
  }
}

function update(info) {
  let card = cards.get(info.name);
  if (!card) {
    card = build(info);
    cards.set(info.name, card);
    list.append(card.element);
    if (visible) startTail(card);
  }
  card.info = info;
  const { refs } = card;
  refs.state.textContent = info.state;
  refs.state.className = `badge state-${info.state}`;
  refs.pid.textContent = info.pid ?? "—";
  refs.restarts.textContent = String(info.restarts ?? 0);
  refs.exit.textContent = info.exit_code ?? "—";
  refs.providers.textContent = info.providers.length
    ? info.providers.map((p) => `${p.id} (${p.models.length} models)`).join(", ")
    : "none registered";
  clear(refs.problems);
  const problems = [...(info.error ? [info.error] : []), ...(info.problems || [])];
  for (const problem of problems) refs.problems.append(h("li", {}, problem));
  refs.problemsBlock.hidden = !problems.length;
  syncButtons(card, info);
}

function syncButtons(card, info) {
  const { refs } = card;
  const running = info.state === "running" || info.state === "starting";
  refs.start.disabled = running || info.state === "invalid";
  refs.stop.disabled = !running;
  refs.restart.disabled = info.state === "invalid";
  const needsTrust = info.source === "project" && !info.trusted;
  refs.trustBlock.hidden = !needsTrust;
}

function build(info) {
  const id = `plugin-${info.name.replace(/[^\w-]/g, "_")}`;
  const refs = {
    state: h("span", { class: "badge" }),
    pid: h("dd"),
    restarts: h("dd"),
    exit: h("dd"),
    providers: h("dd"),
    problems: h("ul", { class: "problems" }),
  };
  refs.problemsBlock = h("div", { class: "error-block" }, h("h3", {}, "Problems"), refs.problems);
  refs.start = h("button", { type: "button", onclick: () => act(info.name, "start"), "aria-label": `Start ${info.name}` }, "Start");
  refs.stop = h("button", { type: "button", onclick: () => act(info.name, "stop"), "aria-label": `Stop ${info.name}` }, "Stop");
  refs.restart = h("button", { type: "button", onclick: () => act(info.name, "restart"), "aria-label": `Restart ${info.name}` }, "Restart");
  const trust = h("button", { type: "button", onclick: () => act(info.name, "trust"), "aria-label": `Trust ${info.name}` }, "Trust this folder");
  refs.trustBlock = h("div", { class: "trust" },
    h("h3", {}, "Not trusted"),
    h("p", {},
      "This plugin comes from a project folder (",
      h("code", {}, info.dir),
      "), so it runs only once you trust it. Trusting lets modelport run ",
      h("code", {}, (info.command || []).join(" ") || "its command"),
      " there with your permissions. It trusts every plugin in that folder and the project's ",
      h("code", {}, ".modelport/config.toml"),
      " as they are now; a changed file needs trust again (",
      h("code", {}, "modelport plugins trust"), " does the same)."),
    trust);
  refs.buttons = [refs.start, refs.stop, refs.restart, trust];
  const pre = h("pre", { class: "log", id: `${id}-log`, tabindex: "0", "aria-label": `Log of ${info.name}` });
  const element = h("article", { class: "card plugin", id, "aria-labelledby": `${id}-name` },
    h("header", {},
      h("h2", { id: `${id}-name` }, info.name),
      refs.state,
      h("span", { class: "muted" }, [info.version ? `v${info.version}` : null, info.source].filter(Boolean).join(" · "))),
    info.description ? h("p", {}, info.description) : null,
    h("dl", { class: "facts" },
      h("dt", {}, "pid"), refs.pid,
      h("dt", {}, "restarts"), refs.restarts,
      h("dt", {}, "exit code"), refs.exit,
      h("dt", {}, "providers"), refs.providers,
      h("dt", {}, "folder"), h("dd", {}, h("code", {}, info.dir))),
    refs.problemsBlock,
    refs.trustBlock,
    h("div", { class: "buttons" }, refs.start, refs.stop, refs.restart),
    h("details", { class: "log-block", open: true },
      h("summary", {}, "Log (live)"), pre),
  );
  return { element, refs, info, log: { pre, next: 0, timer: null, name: info.name } };
}

function startTail(card) {
  if (card.log.timer !== null) return;
  const tick = async () => {
    try {
      const { lines, next } = await api(
        `/plugins/${encodeURIComponent(card.log.name)}/log?after=${card.log.next}`);
      if (lines.length) {
        const atEnd = card.log.pre.scrollTop + card.log.pre.clientHeight >= card.log.pre.scrollHeight - 4;
        card.log.pre.append(document.createTextNode(lines.join("\n") + "\n"));
        // Keep the tail in view unless the reader scrolled up to read.
        if (atEnd) card.log.pre.scrollTop = card.log.pre.scrollHeight;
      }
      card.log.next = next;
    } catch {
      // A plugin removed by a reload: the card goes with the next render.
    }
    if (card.log.timer !== null) card.log.timer = setTimeout(tick, LOG_POLL_MS);
  };
  card.log.timer = setTimeout(tick, 0);
}

function stopTail(card) {
  clearTimeout(card.log.timer);
  card.log.timer = null;
}
