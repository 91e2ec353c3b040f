// @modelport/plugin-sdk: write a modelport plugin in Node the way provider plugins are
// usually written.
//
//   const plugin = require("@modelport/plugin-sdk");      // or: import plugin, { llmProvider } from
//   const { llmProvider } = plugin;
//   plugin.onStart(async (ctx) => { await llmProvider.register({ providerId: "acme", models: [...] }); });
//   llmProvider.onStreamRequest(async (req) => { llmProvider.sendChunk(req.requestId, chunk); ... });
//
// The plugin speaks JSON-RPC 2.0, one JSON object per line, on stdin/stdout (protocol.js).
// Once the plugin first uses the SDK, stdout belongs to the protocol: console.log and
// process.stdout.write go to stderr, the plugin's log. No dependencies.
"use strict";

const readline = require("node:readline");
const protocol = require("./protocol");
const errors = require("./errors");
const { ChunkAssembler, isChunk, normaliseChunk } = require("./assemble");

/** The provider id as the host stores it: lower case, runs of spaces to "-". */
function normaliseId(id) {
  return String(id).trim().toLowerCase().replace(/\s+/g, "-");
}

/** A JSON-RPC error object for anything a handler throws or passes to sendError. */
function toRpcError(error) {
  if (error && typeof error.toRpcError === "function") return error.toRpcError();
  const message =
    typeof error === "string" ? error : (error && error.message) || "the plugin reported an error";
  return { code: protocol.SERVER_ERROR, message, data: { class: "PluginError" } };
}

/** The error a JSON-RPC error from the host stands for, as one of errors.js's classes. */
function fromRpcError(error) {
  const name = error && error.data && error.data.class;
  const Class = typeof name === "string" && errors[name] && name !== "errorFromStatus" ? errors[name] : errors.PluginError;
  return new Class(String((error && error.message) || "the host refused"), {});
}

/** What a sendReply(..., false) payload says went wrong. */
function failureMessage(response) {
  if (typeof response === "string" && response) return response;
  if (response && typeof response === "object") {
    const error = response.error;
    if (error && typeof error.message === "string") return error.message;
    if (typeof error === "string" && error) return error;
    if (typeof response.message === "string") return response.message;
  }
  return "the plugin reported a failure";
}

/**
 * The request a handler receives. `options` is the request in OpenAI form with
 * `providerConfig` as the host sent it; each providerConfig value is also readable as
 * `options.<key>` (not enumerable, so `{...options}` and JSON.stringify leave it out);
 * `body` is `options` without providerConfig, ready to forward to an OpenAI-compatible
 * API; `signal` aborts when the host cancels the request or shuts the plugin down.
 */
function makeRequest(method, params, signal) {
  const options = params && typeof params.options === "object" && params.options ? params.options : {};
  const providerConfig =
    options.providerConfig && typeof options.providerConfig === "object" ? options.providerConfig : {};
  options.providerConfig = providerConfig;
  for (const [key, value] of Object.entries(providerConfig)) {
    if (!(key in options)) {
      Object.defineProperty(options, key, { value, enumerable: false, writable: true, configurable: true });
    }
  }
  const { providerConfig: _omitted, ...body } = options;
  const input = options.input;
  return {
    requestId: String(params.requestId),
    providerId: String(params.providerId),
    method,
    stream: method === protocol.PROVIDER_STREAM,
    options,
    body,
    signal,
    // What a provider.embed request asks to embed: texts (or token arrays).
    inputs: input === undefined || input === null ? [] : typeof input === "string" ? [input] : [...input],
  };
}

/** An embed handler's result as an OpenAI embeddings list: the whole object, or one
 * vector per input (wrapped, with no usage). */
function embeddingsAnswer(produced, request) {
  if (produced && typeof produced === "object" && !Array.isArray(produced)) return produced;
  if (Array.isArray(produced) && produced.every((vector) => Array.isArray(vector))) {
    return {
      object: "list",
      data: produced.map((embedding, index) => ({ object: "embedding", index, embedding })),
      model: String(request.options.model || ""),
      usage: { prompt_tokens: 0, total_tokens: 0 },
    };
  }
  throw new errors.PluginError("An embed handler must return an embeddings list object or one vector per input");
}

class Runtime {
  constructor({ input, write, exit, onFirstUse }) {
    this.input = input;
    this.write = write;
    this.exit = exit;
    this.onFirstUse = onFirstUse;
    this.started = false;
    this.startHandlers = [];
    this.stopHandlers = [];
    this.requestHandlers = new Map(); // protocol method -> handler
    this.registered = new Set();
    this.waiting = new Map(); // our requests to the host, by JSON-RPC id
    this.open = new Map(); // requestId -> the host's request we still owe an answer
    this.nextId = 1;
    this.info = null;
  }

  /** Begin serving (once): called by every public method, so a plugin need not. */
  use() {
    if (this.started) return;
    this.started = true;
    if (this.onFirstUse) this.onFirstUse();
    const lines = readline.createInterface({ input: this.input, crlfDelay: Infinity });
    lines.on("line", (line) => this.receive(line));
    lines.on("close", () => this.exit(0));
  }

  send(message) {
    this.write(JSON.stringify({ jsonrpc: "2.0", ...message }) + "\n");
  }

  notify(method, params) {
    this.send({ method, params });
  }

  call(method, params) {
    this.use();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.send({ id, method, params });
    });
  }

  log(message, level = "info") {
    this.use();
    this.notify(protocol.LOG, { level, message: String(message) });
  }

  receive(line) {
    if (!line.trim()) return;
    let message;
    try {
      message = JSON.parse(line);
    } catch {
      process.stderr.write(`@modelport/plugin-sdk: ignoring a line from the host that is not JSON\n`);
      return;
    }
    if (!message || typeof message !== "object") return;
    const { id, method, params } = message;
    if (method === undefined) {
      const pending = this.waiting.get(id);
      if (pending) {
        this.waiting.delete(id);
        if (message.error) pending.reject(fromRpcError(message.error));
        else pending.resolve(message.result);
      }
      return;
    }
    if (id === undefined) {
      if (method === protocol.EXIT) this.exit(0);
      else if (method === protocol.CANCEL_REQUEST) this.cancel(params && params.requestId);
      return;
    }
    if (method === protocol.INITIALIZE) this.initialize(id, params || {});
    else if (method === protocol.SHUTDOWN) this.shutdown(id);
    else if (this.handlerFor(method) !== undefined || this.isRequestMethod(method)) {
      this.serve(id, method, params || {});
    } else {
      this.send({ id, error: { code: protocol.METHOD_NOT_FOUND, message: `this plugin has no method ${method}` } });
    }
  }

  isRequestMethod(method) {
    return method === protocol.PROVIDER_STREAM || method === protocol.PROVIDER_COMPLETE;
  }

  /** The handler for a provider request; a stream falls back to the completion handler
   * (no chunks, the completion as its answer) and a completion to the stream handler
   * (its chunks added up, none sent). Another request kind (an embedding, say) is one
   * more entry in requestHandlers, with no fallback. */
  handlerFor(method) {
    const own = this.requestHandlers.get(method);
    if (own !== undefined) return own;
    if (method === protocol.PROVIDER_STREAM) return this.requestHandlers.get(protocol.PROVIDER_COMPLETE);
    if (method === protocol.PROVIDER_COMPLETE) return this.requestHandlers.get(protocol.PROVIDER_STREAM);
    return undefined;
  }

  async initialize(id, params) {
    const plugin = params.plugin || {};
    this.info = {
      pluginName: String(plugin.name || ""),
      pluginDir: String(plugin.dir || ""),
      host: params.host || {},
      protocolVersion: String(params.protocolVersion || ""),
    };
    try {
      for (const handler of this.startHandlers) await handler(this.info);
    } catch (error) {
      process.stderr.write(`onStart failed: ${(error && error.stack) || error}\n`);
      this.send({ id, error: toRpcError(error) });
      return;
    }
    this.send({ id, result: {} });
  }

  async shutdown(id) {
    for (const requestId of [...this.open.keys()]) this.cancel(requestId);
    for (const handler of this.stopHandlers) {
      try {
        await handler();
      } catch (error) {
        process.stderr.write(`onStop failed: ${(error && error.stack) || error}\n`);
      }
    }
    this.send({ id, result: {} });
  }

  cancel(requestId) {
    const entry = this.open.get(requestId);
    if (!entry) return;
    this.open.delete(requestId);
    entry.controller.abort();
    this.send({ id: entry.rpcId, error: { code: protocol.CANCELLED, message: "request cancelled" } });
  }

  async serve(id, method, params) {
    const controller = new AbortController();
    const request = makeRequest(method, params, controller.signal);
    const entry = {
      rpcId: id,
      request,
      controller,
      assembler: new ChunkAssembler({ model: String(request.options.model || "") }),
      lastChunk: undefined,
    };
    this.open.set(request.requestId, entry);
    const rid = request.requestId;
    if (!this.registered.has(request.providerId)) {
      const error = new errors.ModelNotFoundError(`This plugin has no provider ${JSON.stringify(request.providerId)}`);
      this.sendError(rid, error);
      return;
    }
    const handler = this.handlerFor(method);
    if (handler === undefined) {
      this.sendError(rid, new errors.PluginError(`this plugin has no handler for ${method}`));
      return;
    }
    try {
      if (method === protocol.PROVIDER_EMBED) {
        const vectors = await handler(request);
        if (this.open.has(rid)) this.sendReply(rid, embeddingsAnswer(vectors, request), true);
        return;
      }
      const produced = handler(request);
      if (!produced || typeof produced.then !== "function") {
        // A plain function answers through sendReply/sendError, now or later.
        if (produced !== undefined) this.sendReply(rid, produced, true);
        return;
      }
      const value = await produced;
      if (!this.open.has(rid)) return;
      if (value !== undefined && value !== null) this.sendReply(rid, value, true);
      else if (entry.assembler.count > 0) this.sendReply(rid, undefined, true);
      else {
        this.sendError(
          rid,
          new errors.PluginError("the request handler finished without sendReply or sendError"),
        );
      }
    } catch (error) {
      if (this.open.has(rid)) {
        if (!(error instanceof errors.ModelportError)) {
          process.stderr.write(`request ${rid} failed: ${(error && error.stack) || error}\n`);
        }
        this.sendError(rid, error);
      }
    }
  }

  sendChunk(requestId, chunk) {
    const entry = this.open.get(requestId);
    if (!entry) return; // answered or cancelled: the host no longer listens
    const { assembler, request } = entry;
    const full = normaliseChunk(chunk, { id: assembler.id, model: assembler.model, created: assembler.created });
    assembler.add(full);
    entry.lastChunk = chunk;
    if (request.stream) this.notify(protocol.PROVIDER_CHUNK, { requestId, chunk: full });
  }

  sendReply(requestId, response, success = true) {
    const entry = this.open.get(requestId);
    if (!entry) return;
    if (success === false) {
      this.sendError(requestId, new errors.PluginError(failureMessage(response)));
      return;
    }
    const { assembler } = entry;
    if (isChunk(response)) {
      // The last chunk as the final answer: answer with the whole response instead.
      if (response !== entry.lastChunk) {
        assembler.add(normaliseChunk(response, { id: assembler.id, model: assembler.model, created: assembler.created }));
      }
      response = undefined;
    }
    const whole =
      response && typeof response === "object" && Object.keys(response).length ? response : assembler.result();
    this.open.delete(requestId);
    this.send({ id: entry.rpcId, result: whole });
  }

  sendError(requestId, error) {
    const entry = this.open.get(requestId);
    if (!entry) return;
    this.open.delete(requestId);
    this.send({ id: entry.rpcId, error: toRpcError(error) });
  }
}

/**
 * A plugin object over the given streams: what the default export is over stdin/stdout.
 * Tests and embedders pass their own `input` (a readable stream) and `output` (a
 * function taking one line); `exit` is called on the host's "exit" and at end of input.
 */
function createPlugin({ input, output, exit = () => {}, onFirstUse } = {}) {
  const runtime = new Runtime({ input, write: output, exit, onFirstUse });

  const llmProvider = {
    /** Register a provider; its models become "<providerId>/<model id>" at once. */
    async register(spec) {
      if (!spec || typeof spec !== "object") throw new TypeError("register takes the provider's description");
      await runtime.call(protocol.PROVIDER_REGISTER, spec);
      runtime.registered.add(normaliseId(spec.providerId));
      return {};
    },
    /** Withdraw a provider and its models. */
    async unregister(providerId) {
      await runtime.call(protocol.PROVIDER_UNREGISTER, { providerId });
      runtime.registered.delete(normaliseId(providerId));
      return {};
    },
    onCompletionRequest(handler) {
      runtime.use();
      runtime.requestHandlers.set(protocol.PROVIDER_COMPLETE, handler);
    },
    onStreamRequest(handler) {
      runtime.use();
      runtime.requestHandlers.set(protocol.PROVIDER_STREAM, handler);
    },
    /** provider.embed: return one vector per `req.inputs`, or a whole embeddings list.
     * Without it the plugin answers -32601, which the host reads as "no embeddings". */
    onEmbedRequest(handler) {
      runtime.use();
      runtime.requestHandlers.set(protocol.PROVIDER_EMBED, handler);
    },
    sendChunk: (requestId, chunk) => runtime.sendChunk(requestId, chunk),
    sendReply: (requestId, response, success = true) => runtime.sendReply(requestId, response, success),
    sendError: (requestId, error) => runtime.sendError(requestId, error),
  };

  const plugin = {
    /** Run `handler(ctx)` on initialize, before answering: register providers here. */
    onStart(handler) {
      runtime.use();
      runtime.startHandlers.push(handler);
    },
    /** Run `handler()` on shutdown, before answering. */
    onStop(handler) {
      runtime.use();
      runtime.stopHandlers.push(handler);
    },
    /** A line for this plugin's log in the host (stderr works too). */
    log: (message, level) => runtime.log(message, level),
    /** Start serving now (any other call does this too). */
    run: () => runtime.use(),
    get info() {
      return runtime.info;
    },
    llmProvider,
  };
  return plugin;
}

/** The default plugin over stdin/stdout. Its first use gives stdout to the protocol. */
function stdioPlugin() {
  const stdout = process.stdout;
  const protocolWrite = stdout.write.bind(stdout);
  return createPlugin({
    input: process.stdin,
    output: (line) => protocolWrite(line),
    exit: (code) => process.exit(code),
    onFirstUse() {
      // console.log and stray writes would corrupt the protocol: they go to the log.
      stdout.write = process.stderr.write.bind(process.stderr);
      process.on("unhandledRejection", (reason) => {
        process.stderr.write(`unhandled rejection: ${(reason && reason.stack) || reason}\n`);
      });
    },
  });
}

const plugin = stdioPlugin();
Object.assign(plugin, errors, { createPlugin, protocol, plugin, default: plugin });
Object.defineProperty(plugin, "__esModule", { value: true });

module.exports = plugin;
