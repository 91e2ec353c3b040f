// example-node: a modelport plugin wrapping an OpenAI-compatible chat API, with @modelport/plugin-sdk.
//
// The user's settings arrive with every request as req.options.providerConfig: apiKey from
// the keyring (`modelport keys set example-node`) or the variable that api_key_env names
// under [connections.example-node] in config.toml, and baseUrl from that table.
"use strict";

const plugin = require("@modelport/plugin-sdk");
const { llmProvider, NetworkError, errorFromStatus } = plugin;

const PROVIDER_ID = "example-node";
const DEFAULT_BASE_URL = "https://api.openai.com/v1";

plugin.onStart(async () => {
  await llmProvider.register({
    providerId: PROVIDER_ID,
    name: "example-node",
    description: "Models of an OpenAI-compatible API",
    capabilities: ["chat", "streaming", "tools"],
    requiresKey: true,
    configFields: [
      { key: "apiKey", label: "API key", type: "password", required: true },
      { key: "baseUrl", label: "Base URL", type: "text", required: false },
    ],
    models: [{ id: "gpt-4o-mini", name: "GPT-4o mini", contextWindow: 128000 }],
  });
});

// The chat.completion.chunk objects of a server-sent-events body.
async function* sseChunks(body) {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const bytes of body) {
    buffer += decoder.decode(bytes, { stream: true });
    const lines = buffer.split("\n");
    buffer = lines.pop();
    for (const line of lines) {
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (data === "[DONE]") return;
      yield JSON.parse(data);
    }
  }
}

// One handler serves provider.stream and, with its chunks added up, provider.complete.
llmProvider.onStreamRequest(async (req) => {
  const config = req.options.providerConfig;
  const baseUrl = (config.baseUrl || DEFAULT_BASE_URL).replace(/\/+$/, "");
  let response;
  try {
    response = await fetch(`${baseUrl}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${config.apiKey}` },
      // req.body is the request without providerConfig: the key goes in the header only.
      body: JSON.stringify({ ...req.body, stream: true, stream_options: { include_usage: true } }),
      signal: req.signal, // aborted when the caller goes away
    });
  } catch (error) {
    if (req.signal.aborted) throw error;
    throw new NetworkError(`Could not reach ${baseUrl}: ${error.cause?.message || error.message}`);
  }
  if (!response.ok) {
    // The caller gets the same class: AuthError, RateLimitError with its retry-after, ...
    throw errorFromStatus(response.status, await response.text(), response.headers);
  }
  for await (const chunk of sseChunks(response.body)) {
    llmProvider.sendChunk(req.requestId, chunk);
  }
  llmProvider.sendReply(req.requestId); // no argument: the chunks, added up
});
