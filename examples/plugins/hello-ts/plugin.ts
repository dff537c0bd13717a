// A portico plugin in TypeScript: one WHATWG fetch handler. Any framework that exposes one
// (Hono's app.fetch, itty-router's router.fetch) can be passed as `fetch` unchanged.
import { serve, upgradeWebSocket } from "portico/sdk";

const text = (body: string, status = 200) => new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8" } });

serve({
  async fetch(request) {
    const url = new URL(request.url);
    const prefix = request.headers.get("x-forwarded-prefix") ?? "";
    const path = url.pathname.slice(prefix.length) || "/";
    switch (path) {
      case "/":
        return text("hello from TypeScript\n");
      case "/json":
        return Response.json({ plugin: "hello_ts", query: Object.fromEntries(url.searchParams) });
      case "/echo":
        // request.body streams in and the response streams out: any size, in bounded memory.
        return new Response(request.body, {
          headers: { "content-type": request.headers.get("content-type") ?? "application/octet-stream" },
        });
      case "/events": {
        // Server-sent events: each enqueue reaches the client at once. request.signal fires when
        // the client goes away, which stops the timer.
        const count = Number(url.searchParams.get("n") ?? 10);
        let timer: NodeJS.Timeout | undefined;
        const body = new ReadableStream<string>({
          start(controller) {
            let i = 0;
            const tick = () => {
              controller.enqueue(`data: ${JSON.stringify({ i, at: new Date().toISOString() })}\n\n`);
              if (++i >= count) return controller.close();
              timer = setTimeout(tick, 1000);
            };
            tick();
            request.signal.addEventListener("abort", () => clearTimeout(timer));
          },
          cancel: () => clearTimeout(timer),
        }).pipeThrough(new TextEncoderStream());
        return new Response(body, { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } });
      }
      case "/ws": {
        if (request.headers.get("upgrade") !== "websocket") return text("connect with a WebSocket client\n", 426);
        const { socket, response } = upgradeWebSocket(request);
        socket.onmessage = (e) => socket.send(typeof e.data === "string" ? `echo: ${e.data}` : e.data);
        return response;
      }
      default:
        return Response.json({ error: "not found", path }, { status: 404 });
    }
  },
});
