/** portico as a library: mount the gateway's request handler in your own Node server. */

export { ConfigError, DEFAULT_CONFIG, loadConfigFile, type PorticoConfig, parseListen, resolveConfig } from "./config.js";
export { errorResponse, GatewayError, type GatewayErrorCode, statusOf } from "./errors.js";
export { createPortico, type Portico, type PorticoOptions } from "./gateway/index.js";
export type { PluginState, PluginStatus, SupervisorOptions } from "./host/index.js";
export { createLogger, type Logger } from "./log.js";
export {
  discoverPlugins,
  formatProblem,
  loadManifest,
  type ManifestProblem,
  type PluginManifest,
  parseManifest,
} from "./manifest/index.js";
export { DEFAULT_RESERVED_PREFIXES, type Match, type Route, RouteError, Router } from "./router/index.js";
export { normalizeTarget, type Target } from "./target/index.js";
