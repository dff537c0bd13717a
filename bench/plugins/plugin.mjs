// The benchmark's portico plugin: bench/plugins/logic.mjs served with portico's SDK.
// PORTICO_BENCH_PROTOCOL (set in the manifest's [plugin.entrypoint] env) picks the protocol:
// "2" takes v2 when portico offers it (streamed binary frames, WebSockets); "1" forces the seed's
// design (nexo's JSON lines with base64 bodies, one buffered exchange per request).
// Plain .mjs, so the plugin starts without a TypeScript loader.
import { serve, upgradeWebSocket } from "portico/sdk";
import { makeFetchHandler } from "./logic.mjs";

// The module path is relative to this file; the manifest (./nexo-plugin.toml) to the cwd, the plugin folder.
const protocol = process.env.PORTICO_BENCH_PROTOCOL === "1" ? 1 : 2;
serve({ fetch: makeFetchHandler({ upgradeWebSocket }), protocol, serverVersion: `portico-bench/v${protocol}` });
