// The SDK's side of the protocol, driven line by line as the host drives it.
"use strict";

const assert = require("node:assert/strict");
const { PassThrough } = require("node:stream");
const { spawn } = require("node:child_process");
const path = require("node:path");
const { test } = require("node:test");

const sdk = require("..");
const protocol = require("../protocol");

/** A plugin over in-memory pipes, and a fake host that speaks to it. */
function harness() {
  const input = new PassThrough();
  const lines = [];
  const waiters = [];
  const exits = [];
  const plugin = sdk.createPlugin({
    input,
    output: (line) => {
      const message = JSON.parse(line);
      const waiter = waiters.shift();
      if (waiter) waiter(message);
      else lines.push(message);
    },
    exit: (code) => exits.push(code),
  });
  const host = {
    send: (message) => input.write(JSON.stringify({ jsonrpc: "2.0", ...message }) + "\n"),
    next: () =>
      lines.length
        ? Promise.resolve(lines.shift())
        : new Promise((resolve) => waiters.push(resolve)),
    async initialize() {
      host.send({ id: 1, method: "initialize", params: { protocolVersion: "1", plugin: { name: "p", dir: "/x" } } });
      const register = await host.next();
      assert.equal(register.method, "provider.register");
      host.send({ id: register.id, result: {} });
      const answer = await host.next();
      assert.deepEqual(answer, { jsonrpc: "2.0", id: 1, result: {} });
      return register.params;
    },
    request(id, method, content, providerConfig = {}) {
      const options = { model: "m1", messages: [{ role: "user", content }], providerConfig };
      host.send({ id, method, params: { requestId: `req-${id}`, providerId: "acme", options } });
    },
  };
  return { plugin, host, exits };
}

function acme(plugin) {
  plugin.onStart(async (ctx) => {
    assert.equal(ctx.pluginName, "p");
    await plugin.llmProvider.register({
      providerId: "ACME",
      capabilities: ["chat", "streaming"],
      models: [{ id: "m1" }],
    });
  });
}

test("registration happens before initialize is answered", async () => {
  const { plugin, host } = harness();
  acme(plugin);
  const params = await host.initialize();
  assert.deepEqual(params.capabilities, ["chat", "streaming"]);
  assert.equal(plugin.info.pluginDir, "/x");
});

test("the guide's stream handler: chunks, then the last chunk as the reply", async () => {
  const { plugin, host } = harness();
  acme(plugin);
  const { llmProvider } = plugin;
  llmProvider.onStreamRequest(async (req) => {
    let last = null;
    for (const text of ["Hel", "lo"]) {
      last = { choices: [{ index: 0, delta: { content: text }, finish_reason: text === "lo" ? "stop" : null }] };
      llmProvider.sendChunk(req.requestId, last);
    }
    llmProvider.sendReply(req.requestId, last, true);
  });
  await host.initialize();
  host.request(7, "provider.stream", "hi");
  const first = await host.next();
  assert.equal(first.method, "provider.chunk");
  assert.equal(first.params.requestId, "req-7");
  assert.equal(first.params.chunk.object, "chat.completion.chunk");
  assert.equal(first.params.chunk.model, "m1");
  assert.equal((await host.next()).params.chunk.choices[0].delta.content, "lo");
  const answer = await host.next();
  assert.equal(answer.id, 7);
  assert.equal(answer.result.object, "chat.completion");
  assert.equal(answer.result.choices[0].message.content, "Hello");
  assert.equal(answer.result.choices[0].finish_reason, "stop");
});

test("options carry providerConfig, its values, and a body without them", async () => {
  const { plugin, host } = harness();
  acme(plugin);
  plugin.llmProvider.onCompletionRequest(async (req) => {
    return {
      choices: [
        {
          index: 0,
          message: {
            content: JSON.stringify({
              config: req.options.providerConfig,
              apiKey: req.options.apiKey,
              spread: Object.keys({ ...req.options }).sort(),
              body: Object.keys(req.body).sort(),
            }),
          },
        },
      ],
    };
  });
  await host.initialize();
  host.request(3, "provider.complete", "hi", { apiKey: "sk-1", apiUrl: "http://x" });
  const seen = JSON.parse((await host.next()).result.choices[0].message.content);
  assert.deepEqual(seen.config, { apiKey: "sk-1", apiUrl: "http://x" });
  assert.equal(seen.apiKey, "sk-1");
  assert.deepEqual(seen.spread, ["messages", "model", "providerConfig"]);
  assert.deepEqual(seen.body, ["messages", "model"]);
});

test("sendReply(id, response, false) and sendError fail the request", async () => {
  const { plugin, host } = harness();
  acme(plugin);
  const { llmProvider } = plugin;
  llmProvider.onCompletionRequest(async (req) => {
    const text = req.options.messages[0].content;
    if (text === "false") llmProvider.sendReply(req.requestId, { error: { message: "nope" } }, false);
    else if (text === "error") llmProvider.sendError(req.requestId, "broken");
    else if (text === "rate") throw new sdk.RateLimitError("slow down", { status: 429, retryAfter: 3 });
    else throw new Error("a bug");
  });
  await host.initialize();
  host.request(2, "provider.complete", "false");
  assert.deepEqual((await host.next()).error, { code: -32000, message: "nope", data: { class: "PluginError" } });
  host.request(3, "provider.complete", "error");
  assert.equal((await host.next()).error.message, "broken");
  host.request(4, "provider.complete", "rate");
  assert.deepEqual((await host.next()).error.data, { class: "RateLimitError", status: 429, retry_after: 3 });
  host.request(5, "provider.complete", "bug");
  assert.equal((await host.next()).error.message, "a bug");
});

test("an async handler that returns after sending chunks is answered with their sum", async () => {
  const { plugin, host } = harness();
  acme(plugin);
  plugin.llmProvider.onStreamRequest(async (req) => {
    plugin.llmProvider.sendChunk(req.requestId, "just ");
    plugin.llmProvider.sendChunk(req.requestId, "text");
  });
  await host.initialize();
  host.request(2, "provider.complete", "hi"); // the stream handler answers completions too
  const answer = await host.next();
  assert.equal(answer.result.choices[0].message.content, "just text");
  host.request(3, "provider.stream", "hi");
  await host.next();
  await host.next();
  assert.equal((await host.next()).result.choices[0].message.content, "just text");
});

test("$/cancelRequest aborts the request's signal and answers -32800", async () => {
  const { plugin, host } = harness();
  acme(plugin);
  let aborted = null;
  plugin.llmProvider.onStreamRequest(async (req) => {
    plugin.llmProvider.sendChunk(req.requestId, "waiting");
    aborted = new Promise((resolve) => req.signal.addEventListener("abort", () => resolve(true)));
    await aborted;
    plugin.llmProvider.sendChunk(req.requestId, "too late");
    plugin.llmProvider.sendReply(req.requestId);
  });
  await host.initialize();
  host.request(2, "provider.stream", "hi");
  assert.equal((await host.next()).method, "provider.chunk");
  host.send({ method: "$/cancelRequest", params: { requestId: "req-2" } });
  const answer = await host.next();
  assert.deepEqual(answer.error, { code: protocol.CANCELLED, message: "request cancelled" });
  assert.equal(await aborted, true);
  host.request(3, "provider.stream", "again"); // nothing more for req-2, and still serving
  assert.equal((await host.next()).params.requestId, "req-3");
});

test("unknown providers and methods, shutdown and exit", async () => {
  const { plugin, host, exits } = harness();
  acme(plugin);
  const stopped = [];
  plugin.onStop(async () => {
    stopped.push("stop");
    await plugin.llmProvider.unregister("acme").catch(() => undefined);
  });
  await host.initialize();
  host.send({ id: 2, method: "provider.complete", params: { requestId: "r", providerId: "nope", options: {} } });
  assert.equal((await host.next()).error.data.class, "ModelNotFoundError");
  host.send({ id: 3, method: "no.such.method" });
  assert.equal((await host.next()).error.code, protocol.METHOD_NOT_FOUND);
  host.send({ id: 4, method: "shutdown" });
  const unregister = await host.next();
  assert.equal(unregister.method, "provider.unregister");
  host.send({ id: unregister.id, result: {} });
  assert.deepEqual(await host.next(), { jsonrpc: "2.0", id: 4, result: {} });
  assert.deepEqual(stopped, ["stop"]);
  host.send({ method: "exit" });
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(exits, [0]);
});

test("a refused registration rejects register() with the host's class", async () => {
  const { plugin, host } = harness();
  let caught = null;
  plugin.onStart(async () => {
    try {
      await plugin.llmProvider.register({ providerId: "openai", models: [] });
    } catch (error) {
      caught = error;
    }
  });
  host.send({ id: 1, method: "initialize", params: {} });
  const register = await host.next();
  host.send({
    id: register.id,
    error: { code: -32000, message: "would shadow", data: { class: "InvalidRequestError" } },
  });
  assert.deepEqual((await host.next()).result, {});
  assert.ok(caught instanceof sdk.InvalidRequestError);
  assert.equal(caught.message, "would shadow");
});

test("the real stdio plugin sends console.log to stderr, not into the protocol", async () => {
  const script = `
    const plugin = require(${JSON.stringify(path.resolve(__dirname, ".."))});
    plugin.onStart(() => { console.log("hello from console.log"); });
    console.log("also after first use");
    Promise.reject(new Error("a stray rejection"));
  `;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (data) => (stdout += data));
  child.stderr.on("data", (data) => (stderr += data));
  child.stdin.write(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: {} }) + "\n");
  while (!stdout.includes("\n")) await new Promise((resolve) => setTimeout(resolve, 10));
  child.stdin.write(JSON.stringify({ jsonrpc: "2.0", method: "exit" }) + "\n");
  const code = await new Promise((resolve) => child.on("exit", resolve));
  assert.equal(code, 0);
  assert.deepEqual(stdout.trim().split("\n").map((line) => JSON.parse(line)), [{ jsonrpc: "2.0", id: 1, result: {} }]);
  assert.match(stderr, /also after first use/);
  assert.match(stderr, /hello from console.log/);
  assert.match(stderr, /unhandled rejection: Error: a stray rejection/); // logged, still serving
});

test("the ES module face has the same names", async () => {
  const esm = await import("../index.mjs");
  assert.equal(esm.default, sdk);
  assert.equal(esm.llmProvider, sdk.llmProvider);
  assert.equal(esm.RateLimitError, sdk.RateLimitError);
});

test("onEmbedRequest answers provider.embed; without it the method is not found", async () => {
  const { plugin, host } = harness();
  acme(plugin);
  await host.initialize();
  const embed = { requestId: "e-1", providerId: "acme", options: { model: "m1", input: ["a", "bb"] } };
  host.send({ id: 2, method: "provider.embed", params: embed });
  assert.equal((await host.next()).error.code, protocol.METHOD_NOT_FOUND);
  plugin.llmProvider.onEmbedRequest(async (req) => req.inputs.map((text) => [text.length, 0.5]));
  host.send({ id: 3, method: "provider.embed", params: { ...embed, requestId: "e-2" } });
  const answer = (await host.next()).result;
  assert.equal(answer.object, "list");
  assert.deepEqual(answer.data.map((d) => [d.index, d.embedding]), [[0, [1, 0.5]], [1, [2, 0.5]]]);
});
