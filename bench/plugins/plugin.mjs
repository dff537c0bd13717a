// The benchmark's portico plugin: bench/plugins/logic.mjs served with portico's SDK.
// The argument --protocol=1 (or PORTICO_BENCH_PROTOCOL=1) forces protocol v1, nexo's wire (JSON
// lines with base64 bodies, one buffered exchange per request); otherwise it takes v2 when portico
// offers it (streamed binary frames, WebSockets).
// Plain .mjs, so the plugin starts without a TypeScript loader.
import { serve, upgradeWebSocket } from "portico/sdk";
import { makeFetchHandler } from "./logic.mjs";

// The module path is relative to this file; the manifest (./nexo-plugin.toml) to the cwd, the plugin folder.
const protocol = process.argv.includes("--protocol=1") || process.env.PORTICO_BENCH_PROTOCOL === "1" ? 1 : 2;
// --prefix=/v1: the mount prefix, for a host that sends no X-Forwarded-Prefix (nexo's design).
const prefix = process.argv.find((a) => a.startsWith("--prefix="))?.slice("--prefix=".length) ?? "";
serve({ fetch: makeFetchHandler({ upgradeWebSocket, prefix }), protocol, serverVersion: `portico-bench/v${protocol}` });
