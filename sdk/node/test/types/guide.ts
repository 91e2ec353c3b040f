// The public types, checked by example (tsc -p test/types): the guide's plugin shape.
import plugin, { llmProvider, RateLimitError, errorFromStatus } from "@modelport/plugin-sdk";
import type { ProviderRequest, PluginContext } from "@modelport/plugin-sdk";

plugin.onStart(async (ctx: PluginContext) => {
  console.log(ctx.pluginName, ctx.pluginDir);
  await llmProvider.register({
    providerId: "my-provider",
    name: "My LLM Provider",
    description: "Custom model provider for my API",
    capabilities: ["chat", "streaming", "somethingNew"],
    requiresKey: true,
    configFields: [
      { key: "apiKey", label: "API Key", type: "password", required: true },
      { key: "apiUrl", label: "API URL", type: "text", required: false },
    ],
    models: [{ id: "my-model-v1", name: "My Model v1", contextWindow: 8192 }],
  });
});

plugin.llmProvider.onCompletionRequest(async (req: ProviderRequest) => {
  const apiKey: string | undefined = req.options.providerConfig.apiKey ?? req.options.apiKey;
  if (!apiKey) throw new RateLimitError("slow down", { status: 429, retryAfter: 3 });
  req.signal.addEventListener("abort", () => undefined);
  llmProvider.sendReply(req.requestId, { choices: [] }, true);
});

llmProvider.onStreamRequest(async (req: any) => {
  llmProvider.sendChunk(req.requestId, { choices: [{ index: 0, delta: { content: "hi" } }] });
  llmProvider.sendChunk(req.requestId, "text works too");
  llmProvider.sendError(req.requestId, errorFromStatus(500, "boom"));
  llmProvider.sendError(req.requestId, "just a message");
});

plugin.onStop(async () => {
  await llmProvider.unregister("my-provider");
  plugin.log("bye", "info");
});
