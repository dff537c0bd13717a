/**
 * The exchange contract (test/contract/exchanges.ts) over the stdio transport: the embedded
 * default, portico in this process with its plugins as child processes on stdin/stdout.
 */
import { exchangeContract } from "./contract/exchanges.js";
import { startPortico } from "./support/portico.js";

exchangeContract("stdio (embedded)", async (plugins) => {
  const p = await startPortico(plugins);
  return { url: p.url, close: () => p.close() };
});
