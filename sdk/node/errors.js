// Errors a handler may throw (or pass to sendError) so that the caller gets the same
// modelport error class, with its status and retry-after. The class names are those of
// modelport.errors; tests/plugin_sdk/test_node_protocol.py checks that each exists there.
"use strict";

class ModelportError extends Error {
  /**
   * @param {string} message
   * @param {{status?: number, retryAfter?: number, body?: string, limit?: number, actual?: number}} [fields]
   */
  constructor(message, fields = {}) {
    super(message);
    this.name = new.target.name;
    Object.assign(this, fields);
  }

  /** The JSON-RPC error object the host turns back into this class. */
  toRpcError() {
    const data = { class: this.name };
    if (this.status !== undefined) data.status = this.status;
    if (this.retryAfter !== undefined) data.retry_after = this.retryAfter;
    for (const key of ["body", "limit", "actual"]) {
      if (this[key] !== undefined) data[key] = this[key];
    }
    return { code: -32000, message: this.message, data };
  }
}

class AuthError extends ModelportError {}
class RateLimitError extends ModelportError {}
class InvalidRequestError extends ModelportError {}
class ContextTooLongError extends ModelportError {}
class ModelNotFoundError extends ModelportError {}
class UpstreamError extends ModelportError {}
class NetworkError extends ModelportError {}
class ParseError extends ModelportError {}
class PluginError extends ModelportError {}

/**
 * The error for an HTTP error answer from an upstream API: 401/403 AuthError, 400
 * InvalidRequestError, 404 ModelNotFoundError, 429 RateLimitError (with the retry-after
 * header's seconds), anything else UpstreamError.
 * @param {number} status
 * @param {string} text the response body
 * @param {{get(name: string): string | null}} [headers]
 */
function errorFromStatus(status, text, headers) {
  const message = `The API answered ${status}: ${String(text).slice(0, 500)}`;
  if (status === 401 || status === 403) return new AuthError(message, { status });
  if (status === 400) return new InvalidRequestError(message, { status });
  if (status === 404) return new ModelNotFoundError(message, { status });
  if (status === 429) {
    const header = headers ? headers.get("retry-after") : null;
    const seconds = header === null || header.trim() === "" ? NaN : Number(header);
    const fields = { status };
    if (Number.isFinite(seconds) && seconds >= 0) fields.retryAfter = seconds;
    return new RateLimitError(message, fields);
  }
  return new UpstreamError(message, { status });
}

module.exports = {
  AuthError,
  ContextTooLongError,
  InvalidRequestError,
  ModelNotFoundError,
  ModelportError,
  NetworkError,
  ParseError,
  PluginError,
  RateLimitError,
  UpstreamError,
  errorFromStatus,
};
