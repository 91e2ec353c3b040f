// A Node plugin without an SDK whose behaviour the test picks: node _scripted_plugin.js MODE ID
// Modes: ok, crash_mid_stream, garbage, exit_in_initialize, hang.
"use strict";
const readline = require("node:readline");

const [mode = "ok", providerId = "node-scripted"] = process.argv.slice(2);
const send = (m) => process.stdout.write(JSON.stringify({ jsonrpc: "2.0", ...m }) + "\n");
const chunk = (requestId, delta, finish = null) =>
  send({
    method: "provider.chunk",
    params: {
      requestId,
      chunk: { object: "chat.completion.chunk", choices: [{ index: 0, delta, finish_reason: finish }] },
    },
  });

process.stderr.write(`node scripted plugin in mode ${mode}\n`);
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const { id, method, params } = JSON.parse(line);
  if (method === undefined) {
    if (id === 1000) send({ id: pendingInit, result: {} }); // our register was accepted
    return;
  }
  if (method === "initialize") {
    if (mode === "exit_in_initialize") {
      process.stderr.write("node: cannot initialize\n");
      process.exit(7);
    }
    pendingInit = id;
    send({ id: 1000, method: "provider.register", params: { providerId, models: [{ id: "m1" }] } });
  } else if (method === "provider.stream" || method === "provider.complete") {
    if (mode === "hang") return;
    chunk(params.requestId, { content: "Hel" });
    if (mode === "crash_mid_stream") {
      process.stderr.write("node: dying mid-stream\n");
      process.exit(5);
    }
    if (mode === "garbage") {
      process.stdout.write("<html>not json</html>\n");
      return;
    }
    chunk(params.requestId, { content: "lo" }, "stop");
    const message = { role: "assistant", content: "Hello" };
    send({ id, result: { object: "chat.completion", choices: [{ index: 0, message, finish_reason: "stop" }] } });
  } else if (method === "shutdown") {
    send({ id, result: {} });
  } else if (method === "exit") {
    process.exit(0);
  }
});
let pendingInit = null;
