// A plugin written with the SDK, run by the real host: `modelport serve` spawned from here.
//
// MODELPORT_BIN names the modelport command (default: the repository's .venv/bin/modelport).
"use strict";

const assert = require("node:assert/strict");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const { spawn } = require("node:child_process");
const { test, after } = require("node:test");

const SDK = path.resolve(__dirname, "..");
const MODELPORT = process.env.MODELPORT_BIN || path.resolve(SDK, "..", "..", ".venv", "bin", "modelport");

const PLUGIN = `
const plugin = require("@modelport/plugin-sdk");
const { llmProvider } = plugin;
plugin.onStart(async () => {
  console.log("echo starting"); // stdout is the protocol's: this must reach the log instead
  await llmProvider.register({
    providerId: "echo", name: "Echo", capabilities: ["chat", "streaming"], models: [{ id: "e1" }],
  });
});
llmProvider.onStreamRequest(async (req) => {
  const words = String(req.options.messages.at(-1).content).split(" ");
  let last = null;
  for (const [i, word] of words.entries()) {
    last = { choices: [{ index: 0, delta: { content: word + " " }, finish_reason: i === words.length - 1 ? "stop" : null }] };
    llmProvider.sendChunk(req.requestId, last);
  }
  llmProvider.sendReply(req.requestId, last, true);
});
`;

function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const children = [];
after(() => children.forEach((child) => child.kill("SIGKILL")));

async function waitFor(check, what, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test("modelport serve runs an SDK plugin beside a broken manifest", async () => {
  assert.ok(fs.existsSync(MODELPORT), `no modelport command at ${MODELPORT}: run make test, or set MODELPORT_BIN`);
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "modelport-node-sdk-"));
  const echo = path.join(home, "plugins", "echo");
  fs.mkdirSync(path.join(echo, "node_modules", "@modelport"), { recursive: true });
  fs.symlinkSync(SDK, path.join(echo, "node_modules", "@modelport", "plugin-sdk"), "dir");
  fs.writeFileSync(path.join(echo, "index.js"), PLUGIN);
  fs.writeFileSync(
    path.join(echo, "package.json"),
    JSON.stringify({
      name: "echo",
      version: "1.0.0",
      main: "index.js",
      modelport: { plugin: { type: "llmProvider", triggers: [{ type: "startup" }] } },
    }),
  );
  const broken = path.join(home, "plugins", "broken");
  fs.mkdirSync(broken);
  fs.writeFileSync(path.join(broken, "modelport-plugin.toml"), 'name = "broken"\ntriggers = [{type = ["startup"]}, [1]]\n');

  const port = await freePort();
  const server = spawn(MODELPORT, ["serve", "--port", String(port), "--no-access-log"], {
    cwd: home,
    env: { ...process.env, MODELPORT_HOME: home },
    stdio: ["ignore", "ignore", "pipe"],
  });
  children.push(server);
  let log = "";
  server.stderr.on("data", (data) => (log += data));
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitFor(async () => {
      const info = await (await fetch(`${base}/plugins/echo`)).json();
      return info.state === "running";
    }, "the echo plugin to run");

    const listing = await (await fetch(`${base}/plugins`)).json();
    const broken = listing.plugins.find((p) => p.name === "broken");
    assert.equal(broken.state, "invalid");
    assert.match(broken.problems[0], /'name' must be|'triggers' must be|'version' must be/);

    const body = { model: "echo/e1", messages: [{ role: "user", content: "hello from node" }] };
    const headers = { "content-type": "application/json" };
    const completion = await (
      await fetch(`${base}/v1/chat/completions`, { method: "POST", headers, body: JSON.stringify(body) })
    ).json();
    assert.equal(completion.choices[0].message.content, "hello from node ");
    assert.equal(completion.choices[0].finish_reason, "stop");

    const streamed = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers,
      body: JSON.stringify({ ...body, stream: true }),
    });
    const text = await streamed.text();
    const deltas = text
      .split("\n")
      .filter((line) => line.startsWith("data: ") && line !== "data: [DONE]")
      .flatMap((line) => JSON.parse(line.slice(6)).choices.map((c) => c.delta.content || ""));
    assert.equal(deltas.join(""), "hello from node ");
    assert.match(text, /data: \[DONE\]/);

    const detail = await (await fetch(`${base}/plugins/echo`)).json();
    assert.ok(detail.stderr.includes("echo starting"), detail.stderr.join("\n"));
    assert.deepEqual(detail.problems, []);
  } finally {
    server.kill("SIGTERM");
    await new Promise((resolve) => server.on("exit", resolve));
    fs.rmSync(home, { recursive: true, force: true });
  }
  assert.doesNotMatch(log, /Traceback/);
});
