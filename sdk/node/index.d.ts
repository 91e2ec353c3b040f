// Types for @modelport/plugin-sdk (hand-written; the runtime is plain JavaScript).

/** What the host said in `initialize`. */
export interface PluginContext {
  pluginName: string;
  pluginDir: string;
  host: { name?: string; version?: string };
  protocolVersion: string;
}

export interface ConfigField {
  key: string;
  label?: string;
  /** An "oauth" field receives the access token when the host runs the login. */
  type?: "text" | "password" | "oauth";
  required?: boolean;
}

/** Capability names; anything else is accepted with a warning in the plugin's problems. */
export type Capability =
  | "chat"
  | "completion"
  | "streaming"
  | "tools"
  | "vision"
  | "reasoning"
  | "promptCache";

export type Capabilities = Array<Capability | (string & {})> | Partial<Record<Capability, boolean>>;

export interface ModelSpec {
  id: string;
  name?: string;
  contextWindow?: number;
  maxOutputTokens?: number;
  /** US dollars per million tokens. */
  prices?: { input?: number; output?: number; cacheRead?: number; cacheWrite?: number };
  capabilities?: Capabilities;
  [key: string]: unknown;
}

export interface ProviderSpec {
  providerId: string;
  name?: string;
  description?: string;
  capabilities?: Capabilities;
  requiresKey?: boolean;
  configFields?: ConfigField[];
  models: ModelSpec[];
  /** Where users log in (the host runs the login and keeps tokens fresh); see docs/oauth.md. */
  oauth?: {
    authorizeUrl: string;
    tokenUrl: string;
    clientId: string;
    scopes?: string[];
    redirectPort?: number;
    redirectPath?: string;
    redirectHost?: string;
    params?: Record<string, string>;
  };
}

/** The request in OpenAI Chat Completions form, plus `providerConfig`. */
export interface RequestOptions {
  model: string;
  messages: Array<Record<string, any>>;
  temperature?: number;
  top_p?: number;
  max_tokens?: number;
  tools?: Array<Record<string, any>>;
  tool_choice?: any;
  response_format?: any;
  stop?: any;
  stream?: boolean;
  /** The user's values for the provider's configFields. */
  providerConfig: Record<string, any>;
  /** Each providerConfig value is readable here too (not enumerable). */
  [key: string]: any;
}

export interface ProviderRequest {
  requestId: string;
  providerId: string;
  method: string;
  /** True for provider.stream: chunks sent with sendChunk reach the caller as they go. */
  stream: boolean;
  options: RequestOptions;
  /** `options` without providerConfig: ready to forward to an OpenAI-compatible API. */
  body: Omit<RequestOptions, "providerConfig">;
  /** Aborted when the host cancels the request or stops the plugin. */
  signal: AbortSignal;
  /** For provider.embed: the texts (or token arrays) to embed. */
  inputs: Array<string | number[]>;
}

/** A handler answers with sendReply/sendError, or returns the chat.completion; an async
 * handler that returns nothing after sendChunk is answered with what the chunks add up to. */
export type RequestHandler = (request: ProviderRequest) => unknown;

export interface LlmProvider {
  register(spec: ProviderSpec): Promise<{}>;
  unregister(providerId: string): Promise<{}>;
  onCompletionRequest(handler: RequestHandler): void;
  onStreamRequest(handler: RequestHandler): void;
  /** provider.embed: return one vector per `req.inputs`, or a whole embeddings list. */
  onEmbedRequest(handler: (request: ProviderRequest) => unknown): void;
  /** One chat.completion.chunk (or plain text) for a request. */
  sendChunk(requestId: string, chunk: Record<string, any> | string): void;
  /** The answer: a chat.completion, the last chunk, or nothing (the chunks added up);
   * `success: false` fails the request with the message `response` carries. */
  sendReply(requestId: string, response?: unknown, success?: boolean): void;
  sendError(requestId: string, error: string | Error): void;
}

export interface Plugin {
  onStart(handler: (ctx: PluginContext) => unknown): void;
  onStop(handler: () => unknown): void;
  log(message: string, level?: "debug" | "info" | "warning" | "error"): void;
  run(): void;
  readonly info: PluginContext | null;
  llmProvider: LlmProvider;
}

export interface ErrorFields {
  status?: number;
  /** Seconds; only for RateLimitError. */
  retryAfter?: number;
  body?: string;
  limit?: number;
  actual?: number;
}

export class ModelportError extends Error {
  constructor(message: string, fields?: ErrorFields);
  status?: number;
  retryAfter?: number;
  toRpcError(): { code: number; message: string; data: Record<string, unknown> };
}
export class AuthError extends ModelportError {}
export class RateLimitError extends ModelportError {}
export class InvalidRequestError extends ModelportError {}
export class ContextTooLongError extends ModelportError {}
export class ModelNotFoundError extends ModelportError {}
export class UpstreamError extends ModelportError {}
export class NetworkError extends ModelportError {}
export class ParseError extends ModelportError {}
export class PluginError extends ModelportError {}

export function errorFromStatus(
  status: number,
  text: string,
  headers?: { get(name: string): string | null },
): ModelportError;

export interface CreatePluginOptions {
  /** A readable stream of the host's lines (process.stdin for a real plugin). */
  input: any;
  output: (line: string) => void;
  exit?: (code: number) => void;
}
export function createPlugin(options: CreatePluginOptions): Plugin;

export declare const protocol: Readonly<Record<string, string | number>>;
export declare const llmProvider: LlmProvider;
export declare const plugin: Plugin;
declare const _default: Plugin;
export default _default;
