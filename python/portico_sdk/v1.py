"""nexo's protocol v1 (README "In any other language"): one JSON line per request, the body whole
in base64, one JSON line back. The adapters run unchanged on a BufferedExchange."""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from datetime import datetime, timezone

from .stream import ClientDisconnected

log = logging.getLogger("portico_sdk")

# A v1 reply is one line: keep it within what portico (32 MiB lines) and nexo's SDKs take.
MAX_REPLY_BODY = 16 * 1024 * 1024


class BufferedExchange:
    """The Exchange interface of stream.Stream, for v1: the request body arrived whole, the reply
    leaves whole when the handler is done. There is no cancellation and there are no WebSockets."""

    websocket = False
    disconnected = False
    peer_closed = False

    def __init__(self, head: dict, body: bytes):
        self.head = head
        self._body = body
        self.status = 500
        self.headers: list = []
        self.out = bytearray()
        self.head_sent = False
        self.local_ended = False
        self.closed = False
        self._done = asyncio.Event()

    @property
    def body_complete(self) -> bool:
        return not self._body

    async def read(self) -> bytes:
        chunk, self._body = self._body, b""
        return chunk

    async def wait_done(self) -> None:
        await self._done.wait()

    async def respond(self, status: int, headers: list, body: bytes = b"", end: bool = True) -> None:
        if self.head_sent:
            raise RuntimeError("the response has already started")
        self.status, self.headers, self.head_sent = status, headers, True
        await self.write(body, end)

    async def write(self, data: bytes, end: bool = False) -> None:
        if self.local_ended:
            if self.head.get("method") == "HEAD":
                return
            raise ClientDisconnected("the response is already complete")
        if self.head.get("method") != "HEAD":
            if len(self.out) + len(data) > MAX_REPLY_BODY:
                raise ValueError("response too large for protocol v1 (16 MiB): stream it under portico's v2")
            self.out += data
        if end:
            self.local_ended = True
            self._done.set()

    def reset(self, code: str, message: str | None = None) -> None:
        self.status, self.headers, self.out = 502, [["Content-Type", "text/plain; charset=utf-8"]], bytearray(b"response cut short\n")
        self.local_ended = True
        self._done.set()

    async def accept(self, headers: list) -> None:
        raise RuntimeError("WebSockets need portico's protocol v2")

    def finish(self) -> None:
        self._done.set()


class V1Session:
    def __init__(self, reader: asyncio.StreamReader, out, manifest: dict, adapter):
        self.reader = reader
        self.out = out
        self.plugin_id = str((manifest.get("plugin") or {}).get("id", ""))
        self.adapter = adapter
        self.tasks: set[asyncio.Task] = set()

    def send(self, obj: dict) -> None:
        self.out.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n")

    async def run(self) -> None:
        while True:
            try:
                line = await self.reader.readuntil(b"\n")
            except asyncio.IncompleteReadError:
                return
            except asyncio.LimitOverrunError as exc:
                log.error("dropped a request line over %d bytes", exc.consumed)
                await self.reader.readexactly(exc.consumed)
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                log.warning("ignored a line that is not JSON")
                continue
            method, msg_id = msg.get("method"), msg.get("id")
            if method == "broker.event":
                message = ((msg.get("params") or {}).get("event") or {}).get("payload") or {}
                if message.get("reply_to") and isinstance(message.get("payload"), dict):
                    task = asyncio.get_running_loop().create_task(self.exchange(message["reply_to"], message["payload"]))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
            elif method == "shutdown" and msg_id is not None:
                if self.tasks:
                    await asyncio.wait(list(self.tasks))
                await self.adapter.shutdown()
                self.send({"jsonrpc": "2.0", "id": msg_id, "result": {"ok": True}})
                await self.out.flush()
                self.out.exit(0)
            elif method and msg_id is not None:
                self.send({"jsonrpc": "2.0", "id": msg_id, "error": {"code": -32601, "message": f"method not found: {method}"}})

    async def exchange(self, reply_to: str, request: dict) -> None:
        body = base64.b64decode(request.get("body_base64") or "")
        ex = BufferedExchange(request, body)
        try:
            await self.adapter.handle(ex)
            if not ex.local_ended:
                if ex.head_sent:
                    log.error("%s %s: the app returned before finishing its response", request.get("method"), request.get("path"))
                else:
                    log.error("%s %s: the app returned without a response", request.get("method"), request.get("path"))
                    ex.status, ex.headers, ex.out = 500, [["Content-Type", "text/plain; charset=utf-8"]], bytearray(b"internal server error\n")
        except Exception:
            log.exception("%s %s: the app failed", request.get("method"), request.get("path"))
            ex.status, ex.headers, ex.out = 500, [["Content-Type", "text/plain; charset=utf-8"]], bytearray(b"internal server error\n")
        finally:
            ex.finish()
        reply = {"status": ex.status, "headers": ex.headers, "body_base64": base64.b64encode(ex.out).decode("ascii")}
        now = datetime.now(timezone.utc).isoformat()
        self.send({"jsonrpc": "2.0", "method": "broker.publish", "params": {"topic": reply_to, "event": {
            "id": str(uuid.uuid4()), "timestamp": now, "topic": reply_to, "source": self.plugin_id, "session_id": None,
            "payload": {"id": str(uuid.uuid4()), "topic": reply_to, "reply_to": None, "payload": reply}}}})
