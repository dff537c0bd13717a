/**
 * Apps that bring their own HTTP server (`[capabilities.http_server]`, docs/own-server.md): spawned
 * and supervised like any plugin, reached over loopback HTTP instead of stdio. To the gateway such
 * an app is one more Upstream: its exchanges have the same shape as a stdio plugin's.
 */
import { randomBytes } from "node:crypto";
import type { Run } from "../host/channel.js";
import type { LogLine } from "../host/log-limit.js";
import { PluginProcess } from "../host/process.js";
import type { Logger } from "../log.js";
import type { PluginHttpServer, PluginManifest } from "../manifest/index.js";
import { AppChannel } from "./channel.js";

/**
 * Spawns one run of the app. A fresh token each start (32 random bytes, base64url): one that
 * leaked from a past run is worth nothing against the next. Throws when there is nothing to spawn.
 */
export function startApp(manifest: PluginManifest, server: PluginHttpServer, log: Logger, logLine: LogLine): Run {
  const token = server.tokenEnv ? randomBytes(32).toString("base64url") : undefined;
  const env = server.tokenEnv && token ? { [server.tokenEnv]: token } : {};
  const proc = new PluginProcess(manifest, logLine, { env, ownServer: true });
  const channel = new AppChannel(server, token, log, {
    kill: (reason) => proc.kill(reason),
    terminate: () => proc.terminate(),
  });
  return { process: proc, connection: channel, readiness: "its health check passed" };
}
