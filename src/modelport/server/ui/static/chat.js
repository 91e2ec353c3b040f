// Chat: streams through the gateway's own /v1/chat/completions, as any OpenAI client would.
//
// The answer is read chunk by chunk from the response body; text is rendered
// as Markdown (markdown.js: text nodes only), reasoning goes in a collapsible
// block, tool calls show their name and arguments. Stop aborts the fetch,
// which closes the connection, and the gateway then cancels the upstream
// request. Errors show in place with the gateway's one-line message. The
// conversation lives in this browser's localStorage until cleared.

import { errorMessage } from "./api.js";
import { clear, h, toast } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { loadModels } from "./models.js";
import { readEvents } from "./sse.js";

export const title = "Chat";

const STORAGE_KEY = "modelport.chat.v1";

let select = null;
let log = null;
let input = null;
let sendButton = null;
let stopButton = null;
let clearButton = null;
let status = null;
let conversation = { model: null, messages: [] };
let controller = null;
let wanted = null; // a model asked for by the address (#/chat?model=…), until the list has it

function load() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
    if (saved && Array.isArray(saved.messages)) conversation = saved;
  } catch {
    conversation = { model: null, messages: [] };
  }
}

function save() {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(conversation));
  } catch {
    toast("This browser would not keep the conversation (storage full or disabled).");
  }
}

export function init(section, { bus }) {
  load();
  select = h("select", { id: "chat-model", onchange: () => {
    conversation.model = select.value;
    save();
  } });
  log = h("div", { id: "chat-log", class: "chat-log", role: "log", "aria-label": "Conversation" });
  input = h("textarea", {
    id: "chat-input",
    rows: "3",
    placeholder: "Ask something… (Enter sends, Shift+Enter starts a new line)",
    onkeydown: (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    },
  });
  sendButton = h("button", { type: "submit", id: "chat-send" }, "Send");
  stopButton = h("button", { type: "button", id: "chat-stop", disabled: true, onclick: stop }, "Stop");
  clearButton = h("button", { type: "button", id: "chat-clear", onclick: clearConversation },
    "Clear conversation");
  status = h("p", { id: "chat-status", class: "muted", role: "status" });
  const form = h("form", { class: "composer", onsubmit: (event) => {
    event.preventDefault();
    send();
  } },
    h("label", { for: "chat-input" }, "Message"),
    input,
    h("div", { class: "buttons" }, sendButton, stopButton, clearButton));
  section.append(
    h("h1", { id: "chat-title" }, "Chat"),
    h("div", { class: "toolbar" },
      h("label", { for: "chat-model" }, "Model"), select),
    log,
    status,
    form,
  );
  for (const message of conversation.messages) log.append(renderMessage(message).element);
  bus.addEventListener("models-changed", () => fillModels(true));
}

export function show(params) {
  const asked = params.get("model");
  if (asked) {
    wanted = asked;
    conversation.model = asked;
    save();
  }
  fillModels(false);
  scrollToEnd();
}

async function fillModels(force) {
  let data;
  try {
    data = await loadModels(force);
  } catch (error) {
    status.textContent = `Could not list models: ${error.message}`;
    return;
  }
  const chosen = wanted || conversation.model || select.value || data.default_model;
  clear(select);
  let found = false;
  for (const group of data.connections) {
    if (!group.models.length) continue;
    const optgroup = h("optgroup", { label: group.connection });
    for (const model of group.models) {
      const selected = model.address === chosen;
      found ||= selected;
      optgroup.append(h("option", { value: model.address, selected }, model.address));
    }
    select.append(optgroup);
  }
  if (chosen && !found) {
    // Not listed (yet): a plugin still starting, or an address typed by hand. Keep it.
    select.prepend(h("option", { value: chosen, selected: true }, `${chosen} (not listed)`));
  }
  if (found) wanted = null;
  conversation.model = select.value || null;
}

function scrollToEnd() {
  log.scrollTop = log.scrollHeight;
}

/** The element of one message and a function that redraws it as it grows. */
function renderMessage(message) {
  const body = h("div", { class: "body" });
  const element = h("article", { class: `message ${message.role}`, "aria-label": label(message) },
    h("p", { class: "role" }, message.role === "user" ? "You" : message.model || "Assistant"),
    body);
  const update = () => {
    clear(body);
    if (message.reasoning) {
      body.append(h("details", { class: "reasoning" },
        h("summary", {}, "Reasoning"),
        h("div", { class: "reasoning-text" }, renderMarkdown(message.reasoning))));
    }
    if (message.content) {
      if (message.role === "user") body.append(h("p", { class: "plain" }, message.content));
      else body.append(h("div", { class: "markdown" }, renderMarkdown(message.content)));
    }
    for (const call of message.tool_calls || []) {
      body.append(h("details", { class: "tool-call", open: true },
        h("summary", {}, "Tool call ", h("code", {}, call.name || "…")),
        h("pre", { tabindex: "0" }, h("code", {}, prettyJson(call.arguments)))));
    }
    if (message.error) body.append(h("p", { class: "error", role: "alert" }, message.error));
    if (message.stopped) body.append(h("p", { class: "muted" }, "Stopped."));
  };
  update();
  return { element, update };
}

function label(message) {
  return message.role === "user" ? "Your message" : "Answer";
}

function prettyJson(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text || "";
  }
}

function setBusy(busy) {
  sendButton.disabled = busy;
  stopButton.disabled = !busy;
  clearButton.disabled = busy;
  select.disabled = busy;
}

/** What the API is sent of the conversation: the turns, without failed or empty answers. */
function history() {
  return conversation.messages
    .filter((m) => m.role === "user" || (m.role === "assistant" && m.content))
    .map((m) => ({ role: m.role, content: m.content }));
}

async function send() {
  const text = input.value.trim();
  // The list may still be loading: the model asked for (or last used) is the choice then.
  const model = select.value || wanted || conversation.model;
  if (!text || controller) return;
  if (!model) {
    status.textContent = "Pick a model first.";
    return;
  }
  input.value = "";
  const user = { role: "user", content: text };
  conversation.messages.push(user);
  log.append(renderMessage(user).element);
  const answer = { role: "assistant", model, content: "", reasoning: "", tool_calls: [] };
  const request = history();
  conversation.messages.push(answer);
  const view = renderMessage(answer);
  log.append(view.element);
  scrollToEnd();
  save();
  controller = new AbortController();
  setBusy(true);
  status.textContent = `Asking ${model}…`;
  let frame = 0;
  const redraw = () => {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      view.update();
      scrollToEnd();
    });
  };
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      credentials: "same-origin",
      signal: controller.signal,
      body: JSON.stringify({
        model,
        messages: request,
        stream: true,
        stream_options: { include_usage: true },
      }),
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    for await (const data of readEvents(response)) {
      if (data === "[DONE]") break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message || "The stream failed.");
      apply(answer, chunk);
      redraw();
    }
    status.textContent = answer.usage
      ? `${answer.usage.prompt_tokens} tokens in, ${answer.usage.completion_tokens} out.`
      : "Done.";
  } catch (error) {
    if (error.name === "AbortError") {
      answer.stopped = true;
      status.textContent = "Stopped: the gateway cancelled the request upstream.";
    } else {
      answer.error = error.message;
      status.textContent = "The request failed.";
    }
  } finally {
    cancelAnimationFrame(frame);
    frame = 0;
    controller = null;
    setBusy(false);
    view.update();
    scrollToEnd();
    save();
    input.focus();
  }
}

function apply(answer, chunk) {
  if (chunk.usage) answer.usage = chunk.usage;
  const choice = chunk.choices?.[0];
  if (!choice) return;
  const delta = choice.delta || {};
  if (delta.reasoning_content) answer.reasoning += delta.reasoning_content;
  if (delta.content) answer.content += delta.content;
  for (const call of delta.tool_calls || []) {
    const index = call.index ?? answer.tool_calls.length;
    const slot = (answer.tool_calls[index] ||= { id: "", name: "", arguments: "" });
    if (call.id) slot.id = call.id;
    if (call.function?.name) slot.name += call.function.name;
    if (call.function?.arguments) slot.arguments += call.function.arguments;
  }
  if (choice.finish_reason) answer.finish_reason = choice.finish_reason;
}

function stop() {
  controller?.abort();
}

function clearConversation() {
  conversation.messages = [];
  save();
  clear(log);
  status.textContent = "Conversation cleared.";
  input.focus();
}
