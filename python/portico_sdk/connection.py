"""Protocol v2 after the switch (docs/protocol.md §2, §7): reads frames, routes them to streams,
runs one adapter task per stream, answers `shutdown`."""
from __future__ import annotations

import asyncio
import json
import logging

from .frames import (
    DATA, END, HEAD, HEADER, MAX_PAYLOAD, RESET, RPC, WINDOW, WS, WS_CLOSE, ProtocolError, close_payload, json_frame,
)
from .stdio import Output
from .stream import ClientDisconnected, Stream

log = logging.getLogger("portico_sdk")


class Connection:
    def __init__(self, reader: asyncio.StreamReader, out: Output, send_window: int, recv_window: int, adapter):
        self.reader = reader
        self.out = out
        self.send_window = send_window  # portico's offer: the initial credit of each of our streams
        self.grant_batch = max(1, recv_window // 4)  # §4: never hold back more than a quarter
        self.adapter = adapter
        self.streams: dict[int, Stream] = {}
        self.tasks: set[asyncio.Task] = set()
        self.shutting_down = False
        self.idle = asyncio.Event()
        self.idle.set()

    # -- output -----------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.out.write(data)

    async def drain(self) -> None:
        await self.out.drain()

    def forget(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)

    # -- input ------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Reads frames until portico closes stdin (then returns) or breaks the protocol (raises)."""
        read = self.reader.readexactly
        while True:
            try:
                header = await read(HEADER.size)
                ftype, flags, stream_id, length = HEADER.unpack(header)
                if length > MAX_PAYLOAD:
                    raise ProtocolError(f"frame of {length} bytes")
                payload = await read(length) if length else b""
            except asyncio.IncompleteReadError:
                return
            try:
                self.dispatch(ftype, flags, stream_id, payload)
            except (ValueError, AttributeError, TypeError, KeyError) as exc:  # bad JSON or bad shape
                raise ProtocolError(f"frame type {ftype} on stream {stream_id}: {exc!r}") from exc

    def dispatch(self, ftype: int, flags: int, stream_id: int, payload: bytes) -> None:
        if ftype == RPC:
            self.on_rpc(json.loads(payload))
            return
        if stream_id == 0:
            return  # stream 0 carries RPC frames only
        stream = self.streams.get(stream_id)
        if stream is None:
            if ftype == HEAD:
                self.open(stream_id, json.loads(payload), bool(flags & END))
            return  # a late frame for a stream that is over: ignored (§5)
        if ftype == DATA:
            stream.on_data(payload, bool(flags & END))
        elif ftype == WINDOW:
            stream.on_window(int.from_bytes(payload[:4], "big"))
        elif ftype == WS:
            stream.on_ws(flags, payload)
        elif ftype == RESET:
            code = (json.loads(payload) if payload else {}).get("code", "error")
            stream.on_reset(str(code))
        # unknown frame types, and a second HEAD, are ignored

    def open(self, stream_id: int, head: dict, ended: bool) -> None:
        if not isinstance(head, dict):
            raise ValueError("request HEAD is not an object")
        stream = Stream(self, stream_id, head, ended)
        self.streams[stream_id] = stream
        task = asyncio.get_running_loop().create_task(self.serve(stream))
        self.tasks.add(task)
        self.idle.clear()
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not self.tasks:
            self.idle.set()

    async def serve(self, stream: Stream) -> None:
        try:
            if self.shutting_down:  # §7: portico opens no stream after shutdown; answer one anyway
                await stream.respond(503, [["Content-Type", "text/plain; charset=utf-8"]], b"shutting down\n")
            else:
                await self.adapter.handle(stream)
            if not stream.closed and not stream.local_ended:
                if not stream.head_sent:
                    log.error("%s %s: the app returned without a response", stream.head.get("method"), stream.head.get("path"))
                    await stream.respond(500, [["Content-Type", "text/plain; charset=utf-8"]], b"internal server error\n")
                elif not stream.websocket:
                    log.error("%s %s: the app returned before finishing its response", stream.head.get("method"), stream.head.get("path"))
                    stream.reset("error", "response not finished")
        except ClientDisconnected:
            pass
        except Exception:
            if not stream.disconnected:
                log.exception("%s %s: the app failed", stream.head.get("method"), stream.head.get("path"))
            try:
                if stream.head_sent or stream.closed:
                    stream.reset("error", "the app failed")
                else:
                    await stream.respond(500, [["Content-Type", "text/plain; charset=utf-8"]], b"internal server error\n")
            except ClientDisconnected:
                pass
        finally:
            stream.finish()

    # -- control (§7) -----------------------------------------------------------------------------

    def on_rpc(self, msg: dict) -> None:
        method, msg_id = msg.get("method"), msg.get("id")
        if method == "shutdown" and msg_id is not None:
            if not self.shutting_down:
                self.shutting_down = True
                asyncio.get_running_loop().create_task(self.shutdown(msg_id))
        elif method and msg_id is not None:
            self.write(json_frame(RPC, 0, 0, {"jsonrpc": "2.0", "id": msg_id, "error": {"code": -32601, "message": f"method not found: {method}"}}))

    async def shutdown(self, msg_id) -> None:
        """Stop taking work, close WebSockets with 1001, let streams finish, run the app's own
        shutdown (ASGI lifespan), answer ok, exit (the caller's run() returns on our stdin's end,
        or main exits after this)."""
        log.info("shutdown: finishing %d stream(s)", len(self.tasks))
        for stream in list(self.streams.values()):
            if stream.websocket and not stream.local_ended:
                stream.ws_close(1001, "going away")
                stream.on_ws(WS_CLOSE, close_payload(1001, "going away"))  # the app sees it closed
        await self.idle.wait()
        await self.adapter.shutdown()
        self.write(json_frame(RPC, 0, 0, {"jsonrpc": "2.0", "id": msg_id, "result": {"ok": True}}))
        await self.out.flush()
        self.out.exit(0)

    async def abort_all(self) -> None:
        """portico went away: every exchange is over."""
        for stream in list(self.streams.values()):
            stream.on_reset("cancel")
        for task in list(self.tasks):
            task.cancel()
