// The plugin protocol's names and numbers: JSON-RPC 2.0, one JSON object per line over stdio.
//
// This file mirrors src/modelport/plugin_protocol.py, the one definition the host and the
// Python SDK share; tests/plugin_sdk/test_node_protocol.py fails if the two drift apart.
// Keep one `exports.NAME = value;` per line.
"use strict";

exports.PROTOCOL_VERSION = "1";
exports.MANIFEST_NAME = "modelport-plugin.toml";
exports.PACKAGE_JSON = "package.json";

// Host -> plugin.
exports.INITIALIZE = "initialize";
exports.PROVIDER_COMPLETE = "provider.complete";
exports.PROVIDER_STREAM = "provider.stream";
exports.PROVIDER_EMBED = "provider.embed";
exports.CANCEL_REQUEST = "$/cancelRequest";
exports.SHUTDOWN = "shutdown";
exports.EXIT = "exit";
// Plugin -> host.
exports.PROVIDER_REGISTER = "provider.register";
exports.PROVIDER_UNREGISTER = "provider.unregister";
exports.PROVIDER_CHUNK = "provider.chunk";
exports.LOG = "log";

// JSON-RPC error codes; every modelport error travels as SERVER_ERROR with its class in `data`.
exports.PARSE_ERROR = -32700;
exports.INVALID_REQUEST = -32600;
exports.METHOD_NOT_FOUND = -32601;
exports.INVALID_PARAMS = -32602;
exports.INTERNAL_ERROR = -32603;
exports.SERVER_ERROR = -32000;
exports.CANCELLED = -32800;
