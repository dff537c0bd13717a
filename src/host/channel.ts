/**
 * What the supervisor drives in one run of a plugin, whatever the plugin speaks: a connection over
 * its stdio (nexo's v1 or portico's v2: src/connection) or an app's own HTTP server on a loopback
 * port (src/ownserver). The supervisor knows processes and this; the gateway knows only exchanges.
 */
import type { Exchange, RequestHead } from "../exchange/index.js";
import type { PluginProcess } from "./process.js";

/** 1: nexo's, 2: portico's streaming protocol, "http": an app serving HTTP itself. */
export type PluginProtocol = 1 | 2 | "http";

export interface RunChannel {
  readonly protocol: PluginProtocol;
  /** Exchanges open right now. */
  readonly inFlight: number;
  /** Bytes on their way to the plugin that it has not taken yet. */
  readonly queued: number;
  /** Bytes the plugin has taken so far (grows while it reads). */
  readonly taken: number;
  /**
   * Resolves once the plugin can take exchanges; rejects with why not (the supervisor then ends
   * the process). `timeoutMs` is the stdio handshake's; a channel may keep its own deadline.
   */
  initialize(timeoutMs: number): Promise<{ serverVersion: string | undefined }>;
  open(head: RequestHead, end: boolean): Exchange;
  /** Asks the plugin to finish its work and exit; resolves when it was asked (or answered). */
  shutdown(): Promise<unknown>;
  /** Nothing more goes to the plugin. */
  endInput(): void;
  /** The process is gone (`reason` in words): every exchange in flight ends. */
  close(reason: string): void;
}

/** One run: the process, portico's channel to it, and what being ready means for it (for messages). */
export interface Run {
  process: PluginProcess;
  connection: RunChannel;
  /** Completes "exited before …": `initialize`, or the app's first healthy answer. */
  readiness: string;
}
