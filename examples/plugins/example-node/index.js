// example-node: a modelport plugin in plain Node.js, no SDK and no dependencies.
//
// The plugin protocol is JSON-RPC 2.0, one JSON object per line, over stdin and
// stdout; stderr is our log. This plugin wraps an OpenAI-compatible chat API:
// the user's settings arrive with every request as options.providerConfig
// (apiKey from the keyring or the variable api_key_env names, baseUrl from
// [connections.example-node] in config.toml).
"use strict";

const readline = require("node:readline");

const PROVIDER_ID = "example-node";
const DEFAULT_BASE_URL = "https://api.openai.com/v1";
const MODELS = [{ id: "gpt-4o-mini", name: "GPT-4o mini", contextWindow: 128000 }];

let nextId = 1;
const waiting = new Map(); // our own requests to the host, by JSON-RPC id
const running = new Map(); // requestId -> AbortController, for $/cancelRequest

function send(message) {
  process.stdout.write(JSON.stringify({ jsonrpc: "2.0", ...message }) + "\n");
}

function call(method, params) {
  const id = nextId++;
  send({ id, method, params });
  return new Promise((resolve, reject) => waiting.set(id, { resolve, reject }));
}

function log(...parts) {
  process.stderr.write(parts.join(" ") + "\n");
}

// An error whose data names the modelport error class, so the host raises the same one.
function apiError(status, text, headers) {
  const data = { class: "UpstreamError", status };
  if (status === 401 || status === 403) data.class = "AuthError";
  else if (status === 400) data.class = "InvalidRequestError";
  else if (status === 404) data.class = "ModelNotFoundError";
  else if (status === 429) {
    data.class = "RateLimitError";
    // Only a header that is there and is a number of seconds (Number(null) would be 0).
    const header = headers.get("retry-after");
    const retryAfter = header === null || header.trim() === "" ? NaN : Number(header);
    if (Number.isFinite(retryAfter) && retryAfter >= 0) data.retry_after = retryAfter;
  }
  return { code: -32000, message: `The API answered ${status}: ${text.slice(0, 500)}`, data };
}

// The chat.completion.chunk objects of a server-sent-events body.
async function* sseChunks(body) {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const bytes of body) {
    buffer += decoder.decode(bytes, { stream: true });
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (data === "[DONE]") return;
      yield JSON.parse(data);
    }
  }
}

// The final answer to provider.stream is the whole response the chunks add up
// to: text joined, tool calls joined and ordered by index, finish reason, usage.
function assemble(chunks, model) {
  let id = `chatcmpl-${Date.now()}`;
  let content = "";
  let reasoning = "";
  let finish = null;
  let usage;
  const calls = new Map();
  for (const chunk of chunks) {
    if (chunk.id) id = chunk.id;
    if (chunk.usage) usage = chunk.usage;
    const choice = (chunk.choices || []).find((c) => (c.index ?? 0) === 0);
    if (!choice) continue;
    const delta = choice.delta || {};
    if (delta.content) content += delta.content;
    if (delta.reasoning_content) reasoning += delta.reasoning_content;
    for (const fragment of delta.tool_calls || []) {
      const index = fragment.index ?? 0;
      const entry = calls.get(index) || {
        id: "",
        type: "function",
        function: { name: "", arguments: "" },
      };
      if (fragment.id) entry.id = fragment.id;
      if (fragment.function?.name) entry.function.name = fragment.function.name;
      if (fragment.function?.arguments) entry.function.arguments += fragment.function.arguments;
      calls.set(index, entry);
    }
    if (choice.finish_reason) finish = choice.finish_reason;
  }
  const toolCalls = [...calls.entries()].sort((a, b) => a[0] - b[0]).map(([, c]) => c);
  if (toolCalls.length && (finish === null || finish === "stop")) finish = "tool_calls";
  const message = { role: "assistant", content: content || (toolCalls.length ? null : "") };
  if (reasoning) message.reasoning_content = reasoning;
  if (toolCalls.length) message.tool_calls = toolCalls;
  const result = {
    id,
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [{ index: 0, message, finish_reason: finish || "stop" }],
  };
  if (usage) result.usage = usage;
  return result;
}

async function handleProviderRequest(id, method, params) {
  const { requestId, options } = params;
  const { providerConfig = {}, ...body } = options;
  if (params.providerId !== PROVIDER_ID) {
    const message = `This plugin has no provider ${JSON.stringify(params.providerId)}`;
    send({ id, error: { code: -32000, message, data: { class: "ModelNotFoundError" } } });
    return;
  }
  const controller = new AbortController();
  running.set(requestId, controller);
  try {
    const baseUrl = (providerConfig.baseUrl || DEFAULT_BASE_URL).replace(/\/+$/, "");
    const response = await fetch(`${baseUrl}/chat/completions`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${providerConfig.apiKey}`,
      },
      body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
      signal: controller.signal,
    });
    if (!response.ok) {
      send({ id, error: apiError(response.status, await response.text(), response.headers) });
      return;
    }
    const chunks = [];
    for await (const chunk of sseChunks(response.body)) {
      chunks.push(chunk);
      if (method === "provider.stream") {
        send({ method: "provider.chunk", params: { requestId, chunk } });
      }
    }
    send({ id, result: assemble(chunks, body.model) });
  } catch (err) {
    if (controller.signal.aborted) {
      send({ id, error: { code: -32800, message: "request cancelled" } });
    } else {
      const message = `Could not reach the API: ${err.message}`;
      send({ id, error: { code: -32000, message, data: { class: "NetworkError" } } });
    }
  } finally {
    running.delete(requestId);
  }
}

function register() {
  return call("provider.register", {
    providerId: PROVIDER_ID,
    name: "example-node",
    requiresKey: true,
    configFields: [
      { key: "apiKey", label: "API key", type: "password", required: true },
      { key: "baseUrl", label: "Base URL", type: "text", required: false },
    ],
    models: MODELS,
  });
}

const input = readline.createInterface({ input: process.stdin });
input.on("line", (line) => {
  if (!line.trim()) return;
  let message;
  try {
    message = JSON.parse(line);
  } catch {
    log("ignoring a line from the host that is not JSON");
    return;
  }
  const { id, method, params } = message;
  if (method === undefined) {
    const pending = waiting.get(id);
    if (pending) {
      waiting.delete(id);
      if (message.error) pending.reject(message.error);
      else pending.resolve(message.result);
    }
    return;
  }
  switch (method) {
    case "initialize":
      // Register before answering, so the models exist once we are "running".
      register().then(
        () => send({ id, result: {} }),
        (error) => send({ id, error }),
      );
      break;
    case "provider.stream":
    case "provider.complete":
      handleProviderRequest(id, method, params);
      break;
    case "$/cancelRequest":
      running.get(params.requestId)?.abort();
      break;
    case "shutdown":
      for (const controller of running.values()) controller.abort();
      send({ id, result: {} });
      break;
    case "exit":
      process.exit(0);
    default:
      if (id !== undefined) {
        send({ id, error: { code: -32601, message: `no method ${method}` } });
      }
  }
});
input.on("close", () => process.exit(0));
log(`${PROVIDER_ID} plugin started (node ${process.version})`);
