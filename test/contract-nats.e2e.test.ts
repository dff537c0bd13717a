/**
 * The exchange contract (test/contract/exchanges.ts) across NATS: a gateway process and a host
 * process, joined by a real nats-server whose max_payload is 64 KiB, so every body, frame and
 * WebSocket message bigger than that crosses in pieces.
 */
import { exchangeContract } from "./contract/exchanges.js";
import { startGateway, startHost, waitForPlugins } from "./support/nats-portico.js";
import { startNatsServer } from "./support/nats-server.js";

exchangeContract("NATS (gateway + host, max_payload 64 KiB)", async (plugins) => {
  const nats = await startNatsServer({ maxPayload: 64 * 1024 });
  const host = await startHost(nats.url, plugins);
  const gateway = await startGateway(nats.url);
  await waitForPlugins(
    gateway.url,
    plugins.map((p) => p.id),
  );
  return {
    url: gateway.url,
    close: async () => {
      await gateway.stop();
      await host.stop();
      await nats.stop();
    },
  };
});
