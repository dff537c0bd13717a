// A portico plugin in TypeScript: one WHATWG fetch handler. Any framework that exposes one
// (Hono's app.fetch, itty-router's router.fetch) can be passed as `fetch` unchanged.
import { serve } from "portico/sdk";

serve({
  async fetch(request) {
    const url = new URL(request.url);
    const prefix = request.headers.get("x-forwarded-prefix") ?? "";
    const path = url.pathname.slice(prefix.length) || "/";
    switch (path) {
      case "/":
        return new Response("hello from TypeScript\n", { headers: { "content-type": "text/plain; charset=utf-8" } });
      case "/json":
        return Response.json({ plugin: "hello_ts", query: Object.fromEntries(url.searchParams) });
      case "/echo":
        return new Response(await request.arrayBuffer(), {
          status: 200,
          headers: { "content-type": request.headers.get("content-type") ?? "application/octet-stream" },
        });
      default:
        return Response.json({ error: "not found", path }, { status: 404 });
    }
  },
});
