// example-ts: a modelport plugin wrapping an OpenAI-compatible chat API, with @modelport/plugin-sdk.
//
// Build with `npm run build` (dist/index.js is what runs). The user's settings arrive with
// every request as req.options.providerConfig: apiKey from the keyring
// (`modelport keys set example-ts`) or the variable that api_key_env names under
// [connections.example-ts] in config.toml, and baseUrl from that table.
import plugin, { llmProvider, NetworkError, errorFromStatus } from "@modelport/plugin-sdk";
import type { ProviderRequest } from "@modelport/plugin-sdk";

const PROVIDER_ID = "example-ts";
const DEFAULT_BASE_URL = "https://api.openai.com/v1";

plugin.onStart(async () => {
  await llmProvider.register({
    providerId: PROVIDER_ID,
    name: "example-ts",
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

// Read a server-sent-events body, sending each chat.completion.chunk on as it arrives.
async function relayChunks(requestId: string, body: ReadableStream<Uint8Array>): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    const lines = buffer.split("\n");
    buffer = lines.pop() || "";
    for (const line of lines) {
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (data === "[DONE]") return;
      llmProvider.sendChunk(requestId, JSON.parse(data));
    }
  }
}

// One handler serves provider.stream and, with its chunks added up, provider.complete.
llmProvider.onStreamRequest(async (req: ProviderRequest) => {
  const config = req.options.providerConfig;
  const baseUrl = String(config.baseUrl || DEFAULT_BASE_URL).replace(/\/+$/, "");
  let response: Response;
  try {
    response = await fetch(`${baseUrl}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${config.apiKey}` },
      // req.body is the request without providerConfig: the key goes in the header only.
      body: JSON.stringify({ ...req.body, stream: true, stream_options: { include_usage: true } }),
      signal: req.signal, // aborted when the caller goes away
    });
  } catch (error: any) {
    if (req.signal.aborted) throw error;
    throw new NetworkError(`Could not reach ${baseUrl}: ${error.cause?.message || error.message}`);
  }
  if (!response.ok) {
    // The caller gets the same class: AuthError, RateLimitError with its retry-after, ...
    throw errorFromStatus(response.status, await response.text(), response.headers);
  }
  await relayChunks(req.requestId, response.body!);
  llmProvider.sendReply(req.requestId); // no argument: the chunks, added up
});
