/** portico as a library: mount the gateway's request handler in your own Node server. */
export { createPortico, type Portico, type PorticoOptions } from "./gateway/index.js";
export { DEFAULT_CONFIG, loadConfigFile, parseListen, resolveConfig, type PorticoConfig, ConfigError } from "./config.js";
export { GatewayError, type GatewayErrorCode, errorResponse, statusOf } from "./errors.js";
export { discoverPlugins, loadManifest, parseManifest, formatProblem, type PluginManifest, type ManifestProblem } from "./manifest/index.js";
export { normalizeTarget, type Target } from "./target/index.js";
export { Router, RouteError, DEFAULT_RESERVED_PREFIXES, type Route, type Match } from "./router/index.js";
export type { PluginState, PluginStatus, SupervisorOptions } from "./host/index.js";
export { createLogger, type Logger } from "./log.js";
