// The ES module face of the SDK: `import plugin, { llmProvider } from "@modelport/plugin-sdk"`.
import plugin from "./index.js";

export default plugin;
export const {
  llmProvider,
  createPlugin,
  protocol,
  ModelportError,
  AuthError,
  RateLimitError,
  InvalidRequestError,
  ContextTooLongError,
  ModelNotFoundError,
  UpstreamError,
  NetworkError,
  ParseError,
  PluginError,
  errorFromStatus,
} = plugin;
export { plugin };
