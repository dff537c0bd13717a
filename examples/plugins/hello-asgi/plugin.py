"""A plain ASGI 3 app (no framework) served as a portico plugin by the Python SDK.

    GET {prefix}/                 JSON: what the app was asked
    GET {prefix}/events?n=5       server-sent events, one every 200 ms
    ws  {prefix}/ws               WebSocket echo

The app sees its routes without the mount prefix: scope["root_path"] is the prefix.
"""
import asyncio
import json
from urllib.parse import parse_qs

from portico_sdk import serve_asgi


def route(scope):
    """The path after the mount prefix (scope["path"] may or may not carry it, see docs/python.md)."""
    path, root = scope["path"], scope.get("root_path", "")
    return (path[len(root):] or "/") if root and path.startswith(root) else path


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()  # lifespan.startup
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown: portico asked the plugin to stop
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", **{k: v for k, v in message.items() if k in ("text", "bytes")}})
        return
    path = route(scope)
    if path == "/events":
        n = int(parse_qs(scope["query_string"].decode()).get("n", ["5"])[0])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for i in range(n):
            await send({"type": "http.response.body", "body": f"data: {i}\n\n".encode(), "more_body": True})
            await asyncio.sleep(0.2)
        await send({"type": "http.response.body", "body": b""})
        return
    status = 200 if path == "/" else 404
    body = json.dumps({"plugin": "hello_asgi", "method": scope["method"], "path": path, "root_path": scope["root_path"]})
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body.encode()})


if __name__ == "__main__":
    serve_asgi(app)
