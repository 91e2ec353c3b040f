// Folding chat.completion.chunk objects into the chat.completion they add up to: text
// joined, reasoning joined, tool calls joined by index and listed in index order, the
// finish reason ("tool_calls" whenever tools were called) and the usage. The same fold as
// modelport.plugin_sdk.ChunkAssembler.
"use strict";

const { randomUUID } = require("node:crypto");

/** A full chat.completion.chunk from what a handler sent (a chunk object or plain text). */
function normaliseChunk(chunk, { id, model, created }) {
  if (typeof chunk === "string") chunk = { choices: [{ index: 0, delta: { content: chunk } }] };
  if (chunk === null || typeof chunk !== "object" || Array.isArray(chunk)) {
    throw new TypeError(`sendChunk takes a chat.completion.chunk object or text, not ${typeof chunk}`);
  }
  return { id, object: "chat.completion.chunk", created, model, ...chunk, choices: chunk.choices || [] };
}

/** Whether `value` is a chat.completion.chunk rather than a chat.completion. */
function isChunk(value) {
  if (value === null || typeof value !== "object") return false;
  const first = Array.isArray(value.choices) ? value.choices[0] : undefined;
  return (
    value.object === "chat.completion.chunk" ||
    (first !== null && typeof first === "object" && "delta" in first && !("message" in first))
  );
}

class ChunkAssembler {
  constructor({ model = "", id } = {}) {
    this.id = id || `chatcmpl-${randomUUID().replace(/-/g, "")}`;
    this.model = model;
    this.created = Math.floor(Date.now() / 1000);
    this.count = 0;
    this._content = "";
    this._reasoning = "";
    this._refusal = "";
    this._calls = new Map();
    this._finish = null;
    this._usage = undefined;
  }

  add(chunk) {
    this.count += 1;
    if (chunk.usage && typeof chunk.usage === "object") this._usage = chunk.usage;
    for (const choice of chunk.choices || []) {
      if (!choice || typeof choice !== "object" || (choice.index || 0) !== 0) continue;
      const delta = choice.delta || {};
      if (typeof delta.content === "string") this._content += delta.content;
      if (typeof delta.reasoning_content === "string") this._reasoning += delta.reasoning_content;
      if (typeof delta.refusal === "string") this._refusal += delta.refusal;
      for (const fragment of delta.tool_calls || []) {
        const index = Number(fragment.index || 0);
        const call = this._calls.get(index) || { id: "", name: "", arguments: "" };
        if (fragment.id) call.id = fragment.id;
        if (fragment.function && fragment.function.name) call.name = fragment.function.name;
        if (fragment.function && fragment.function.arguments) {
          call.arguments += fragment.function.arguments;
        }
        this._calls.set(index, call);
      }
      if (choice.finish_reason) this._finish = choice.finish_reason;
    }
  }

  result() {
    const calls = [...this._calls.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([index, call]) => ({
        id: call.id || `call_${index}`,
        type: "function",
        function: { name: call.name, arguments: call.arguments || "{}" },
      }));
    let finish = this._finish;
    if (calls.length && (finish === null || finish === "stop")) finish = "tool_calls";
    const message = {
      role: "assistant",
      content: this._content || !calls.length ? this._content : null,
    };
    if (this._reasoning) message.reasoning_content = this._reasoning;
    if (this._refusal) message.refusal = this._refusal;
    if (calls.length) message.tool_calls = calls;
    const result = {
      id: this.id,
      object: "chat.completion",
      created: this.created,
      model: this.model,
      choices: [{ index: 0, message, finish_reason: finish || "stop" }],
    };
    if (this._usage !== undefined) result.usage = this._usage;
    return result;
  }
}

module.exports = { ChunkAssembler, isChunk, normaliseChunk };
