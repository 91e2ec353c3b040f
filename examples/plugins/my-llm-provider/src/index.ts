import plugin, { llmProvider } from '@modelport/plugin-sdk';

const PROVIDER_ID = 'my-provider';

plugin.onStart(async (ctx: any) => {
  console.log('[MyProvider] Starting...');
  await llmProvider.register({
    providerId: PROVIDER_ID,
    name: 'My LLM Provider',
    description: 'Custom model provider for my API',
    capabilities: ['chat', 'streaming'],
    requiresKey: true,
    configFields: [
      { key: 'apiKey', label: 'API Key', type: 'password', required: true },
      { key: 'apiUrl', label: 'API URL', type: 'text', required: false },
    ],
    models: [
      { id: 'my-model-v1', name: 'My Model v1' },
      { id: 'my-model-fast', name: 'My Model (Fast)' },
    ],
  });
  console.log('[MyProvider] Registered');
});

function resolveAuth(options: any) {
  const config = options?.providerConfig || {};
  const apiKey = config.apiKey?.trim();
  if (!apiKey) {
    throw new Error('API key is required. Set it in provider settings.');
  }
  return {
    bearer: apiKey,
    baseUrl: (config.apiUrl || 'https://api.example.com/v1').replace(/\/+$/, ''),
  };
}

function buildRequestBody(options: any) {
  return {
    model: options.model || 'my-model-v1',
    messages: options.messages,
    temperature: options.temperature,
    max_tokens: options.max_tokens,
    tools: options.tools,
    tool_choice: options.tool_choice,
  };
}

llmProvider.onCompletionRequest(async (req: any) => {
  try {
    const auth = resolveAuth(req.options);
    const response = await fetch(`${auth.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'Authorization': `Bearer ${auth.bearer}`,
      },
      body: JSON.stringify(buildRequestBody(req.options)),
    });
    const data = await response.json();
    llmProvider.sendReply(req.requestId, data, true);
  } catch (error: any) {
    llmProvider.sendError(req.requestId, error.message);
  }
});

llmProvider.onStreamRequest(async (req: any) => {
  try {
    const { requestId, options } = req;
    const auth = resolveAuth(options);
    const response = await fetch(`${auth.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'Authorization': `Bearer ${auth.bearer}`,
      },
      body: JSON.stringify({ ...buildRequestBody(options), stream: true }),
    });

    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    let finalResponse: any = null;

    while (true) {
      const { done, value } = await reader.read();
      if (done) break;

      buffer += decoder.decode(value, { stream: true });
      const lines = buffer.split('\n');
      buffer = lines.pop() || '';

      for (const line of lines) {
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') continue;
        try {
          const chunk = JSON.parse(data);
          llmProvider.sendChunk(requestId, chunk);
          finalResponse = chunk;
        } catch {
          // Skip malformed chunks
        }
      }
    }

    // Send the final aggregated response
    if (finalResponse) {
      llmProvider.sendReply(requestId, finalResponse, true);
    }
  } catch (error: any) {
    llmProvider.sendError(req.requestId, error.message);
  }
});

plugin.onStop(async () => {
  await llmProvider.unregister(PROVIDER_ID);
  console.log('[MyProvider] Unregistered');
});
