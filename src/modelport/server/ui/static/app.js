// The shell: one section per page, shown by the address's #fragment, and the live poll.
//
// Pages are built once and kept, so a chat keeps streaming while another page
// is open. Every two seconds (while the tab is visible) the shell asks the
// gateway for its plugins and tells the pages; when a plugin registers or drops
// a provider, the pages that list models fetch them again: no reload needed.

import { api } from "./api.js";
import { h } from "./dom.js";
import * as chat from "./chat.js";
import * as models from "./models.js";
import * as plugins from "./plugins.js";
import * as settings from "./settings.js";
import * as team from "./team.js";
import * as usage from "./usage.js";

const PAGES = { models, chat, plugins, settings, usage, team };
const DEFAULT_PAGE = "chat";
const POLL_MS = 2000;

const main = document.getElementById("main");
const built = new Map();
let current = null;

/** Events the pages listen to: "plugins" (the list), "models-changed". */
export const bus = new EventTarget();

function parseHash() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const name = PAGES[path] ? path : DEFAULT_PAGE;
  return { name, params: new URLSearchParams(query) };
}

function show() {
  const { name, params } = parseHash();
  if (current && current !== name) {
    PAGES[current].hide?.();
    built.get(current).hidden = true;
  }
  let section = built.get(name);
  if (!section) {
    section = h("section", { id: `page-${name}`, class: "page", "aria-labelledby": `${name}-title` });
    main.append(section);
    built.set(name, section);
    PAGES[name].init(section, { bus });
  }
  section.hidden = false;
  current = name;
  document.title = `${PAGES[name].title} · modelport`;
  for (const link of document.querySelectorAll("nav a[data-page]")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  PAGES[name].show?.(params);
}

let fingerprint = null;

async function poll() {
  if (document.visibilityState === "visible") {
    try {
      const { plugins: list } = await api("/plugins");
      bus.dispatchEvent(new CustomEvent("plugins", { detail: list }));
      const now = JSON.stringify(
        list.map((p) => [p.name, p.state, p.providers.map((v) => [v.id, v.models])]),
      );
      if (fingerprint !== null && now !== fingerprint) {
        bus.dispatchEvent(new Event("models-changed"));
      }
      fingerprint = now;
    } catch {
      // No plugin host (503), or the gateway is restarting: try again next time.
    }
  }
  setTimeout(poll, POLL_MS);
}

window.addEventListener("hashchange", show);
show();
poll();
