"""ASGI 3 (HTTP, WebSocket, lifespan) on an Exchange: the app runs on the SDK's event loop."""
from __future__ import annotations

import asyncio
import logging
import sys

from .frames import WS_BINARY, WS_CLOSE, WS_TEXT, parse_close
from .heads import RequestInfo, decoded_path, header_pairs
from .lifespan import Lifespan
from .stream import ClientDisconnected

log = logging.getLogger("portico_sdk")

ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}


def path_includes_root_path() -> bool:
    """Whether scope["path"] should carry the mount prefix. The ASGI spec says yes, and so does
    Starlette from 0.35 on, which strips root_path itself when it routes (get_route_path). Older
    Starlette (Debian 12 has 0.26, under FastAPI 0.92) routes on scope["path"] as given and
    expects it without root_path, as uvicorn gave it before. Either way, the app's routes are
    written without the prefix."""
    if "starlette" not in sys.modules:
        return True
    import starlette.routing

    return hasattr(starlette.routing, "get_route_path")


class ASGIAdapter:
    def __init__(self, app, lifespan: str = "auto", full_path: bool | None = None):
        self.app = app
        self.lifespan = Lifespan(app, lifespan)
        self.full_path = path_includes_root_path() if full_path is None else full_path

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        pass

    async def startup(self) -> None:
        await self.lifespan.startup()

    async def shutdown(self) -> None:
        await self.lifespan.shutdown()

    def scope(self, ex, kind: str) -> dict:
        info = RequestInfo(ex.head)
        path = info.path if self.full_path else info.route_path
        host, port = info.server()
        scope = {
            "type": kind,
            "asgi": ASGI_VERSION,
            "http_version": "1.1",
            "scheme": info.scheme if kind == "http" else ("wss" if info.scheme == "https" else "ws"),
            "path": decoded_path(path),
            "raw_path": path.encode("latin-1", "replace"),
            "query_string": info.query.encode("latin-1", "replace"),
            "root_path": info.root_path,
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1", "replace")) for k, v in info.headers],
            "client": (info.client, 0) if info.client else None,
            "server": (host, port),
            "state": dict(self.lifespan.state),
        }
        if kind == "http":
            scope["method"] = info.method
        else:
            protocols = info.header("sec-websocket-protocol") or ""
            scope["subprotocols"] = [p.strip() for p in protocols.split(",") if p.strip()]
        return scope

    async def handle(self, ex) -> None:
        if ex.head.get("upgrade") == "websocket" and ex.head.get("method", "GET") == "GET":
            await self._websocket(ex)
        else:
            await self._http(ex)

    # -- HTTP -------------------------------------------------------------------------------------

    async def _http(self, ex) -> None:
        body_done = False
        started: tuple[int, list] | None = None

        async def receive() -> dict:
            nonlocal body_done
            if not body_done:
                try:
                    chunk = await ex.read()
                except ClientDisconnected:
                    return {"type": "http.disconnect"}
                more = bool(chunk) and not ex.body_complete
                body_done = not more
                return {"type": "http.request", "body": chunk, "more_body": more}
            # Nothing more to read: wait until the client goes away or the response is complete.
            await ex.wait_done()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            nonlocal started
            kind = message["type"]
            if kind == "http.response.start":
                if started is not None:
                    raise RuntimeError("http.response.start sent twice")
                started = (int(message["status"]), header_pairs(message.get("headers") or []))
            elif kind == "http.response.body":
                if started is None:
                    raise RuntimeError("http.response.body before http.response.start")
                if ex.disconnected:
                    raise ClientDisconnected("the client went away")
                body = bytes(message.get("body") or b"")
                more = bool(message.get("more_body", False))
                if not ex.head_sent:
                    await ex.respond(started[0], started[1], body, end=not more)
                elif ex.local_ended:
                    if ex.head.get("method") != "HEAD":
                        raise RuntimeError("http.response.body after the response was complete")
                else:
                    await ex.write(body, end=not more)
            # other message types (extensions not offered in scope) are ignored

        await self.app(self.scope(ex, "http"), receive, send)

    # -- WebSocket --------------------------------------------------------------------------------

    async def _websocket(self, ex) -> None:
        connected = False
        accepted = False
        gone: dict | None = None  # the disconnect event, once it happened

        async def receive() -> dict:
            nonlocal connected, gone
            if not connected:
                connected = True
                return {"type": "websocket.connect"}
            if gone is not None or not accepted:
                return gone or {"type": "websocket.disconnect", "code": 1006, "reason": ""}
            while True:
                try:
                    opcode, payload = await ex.ws_receive()
                except ClientDisconnected:
                    gone = {"type": "websocket.disconnect", "code": 1006, "reason": ""}
                    return gone
                if opcode == WS_TEXT:
                    return {"type": "websocket.receive", "text": payload.decode("utf-8", "replace")}
                if opcode == WS_BINARY:
                    return {"type": "websocket.receive", "bytes": payload}
                if opcode == WS_CLOSE:
                    code, reason = parse_close(payload)
                    gone = {"type": "websocket.disconnect", "code": code, "reason": reason}
                    return gone
                # pongs: nothing for the app

        async def send(message: dict) -> None:
            nonlocal accepted
            kind = message["type"]
            if kind == "websocket.accept":
                if accepted:
                    raise RuntimeError("websocket.accept sent twice")
                headers = header_pairs(message.get("headers") or [])
                if message.get("subprotocol"):
                    headers.append(["Sec-WebSocket-Protocol", message["subprotocol"]])
                accepted = True
                await ex.accept(headers)
            elif kind == "websocket.send":
                if not accepted:
                    raise RuntimeError("websocket.send before websocket.accept")
                if message.get("bytes") is not None:
                    await ex.ws_send(WS_BINARY, bytes(message["bytes"]))
                else:
                    await ex.ws_send(WS_TEXT, str(message.get("text") or "").encode())
            elif kind == "websocket.close":
                if not accepted:
                    # Refused before the handshake: an HTTP 403, as the ASGI spec says.
                    if not ex.head_sent:
                        await ex.respond(403, [["Content-Type", "text/plain; charset=utf-8"]], b"WebSocket refused\n")
                    return
                if gone is not None and ex.closed:
                    return  # the client closed first and portico forgot the stream
                ex.ws_close(int(message.get("code") or 1000), str(message.get("reason") or ""))

        await self.app(self.scope(ex, "websocket"), receive, send)
        if not accepted and not ex.head_sent:  # returned without accepting: refused, as ASGI says
            await ex.respond(403, [["Content-Type", "text/plain; charset=utf-8"]], b"WebSocket refused\n")
