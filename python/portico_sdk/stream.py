"""One protocol v2 stream (docs/protocol.md §3-§6) as the adapters see it: an Exchange.

Everything here runs on the event loop thread. The connection's read loop calls the on_* methods
(one per frame portico sent for the stream); the adapter's task awaits the rest. An Exchange is
what ASGI, WSGI and the plain handler are written against; protocol v1 has one too (v1.py), so the
same adapter code serves both protocols.
"""
from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING

from .frames import (
    DATA, END, HEAD, MAX_DATA_FRAME, MAX_PAYLOAD, RESET, WINDOW, WS, WS_CLOSE, close_payload, frame, json_bytes,
)

if TYPE_CHECKING:
    from .connection import Connection


class ClientDisconnected(OSError):
    """The client went away, the route timed out, or the stream is otherwise over (ASGI: send()
    on a closed connection raises an OSError)."""


class Stream:
    """One request on a v2 connection, with its flow control (§4)."""

    def __init__(self, conn: Connection, stream_id: int, head: dict, ended: bool):
        self.conn = conn
        self.id = stream_id
        self.head = head
        self.credit = conn.send_window  # what we may still send before portico grants more
        self.body: collections.deque[bytes] = collections.deque()  # request body not read yet
        self.messages: collections.deque[tuple[int, bytes]] = collections.deque()  # WS messages
        self.remote_ended = ended  # portico sent END: the request body is complete
        self.local_ended = False  # our response is complete
        self.head_sent = False
        self.websocket = False  # we accepted a WebSocket (101)
        self.reset_code: str | None = None  # why portico reset the stream
        self.closed = False  # the stream is over and forgotten by the connection
        self.peer_closed = False  # portico sent a WebSocket close
        self.discarding = False  # the handler is done: drop what still comes
        self.unacked = 0  # consumed bytes not granted back yet
        self._waiters: list[asyncio.Future] = []

    # -- what the request is ----------------------------------------------------------------------

    @property
    def disconnected(self) -> bool:
        return self.reset_code is not None

    # -- reading ----------------------------------------------------------------------------------

    async def read(self) -> bytes:
        """The next chunk of the request body, b"" once it is complete. Reading grants credit
        back (§4): a slow reader slows the upload down."""
        await self._wait(lambda: self.body or self.remote_ended or self.closed)
        self._raise_if_reset()
        if self.body:
            chunk = self.body.popleft()
            self._consumed(len(chunk))
            return chunk
        return b""

    @property
    def body_complete(self) -> bool:
        return self.remote_ended and not self.body

    async def wait_done(self) -> None:
        """Resolves once the client went away or our response is complete (ASGI http.disconnect)."""
        await self._wait(lambda: self.closed or self.local_ended)

    # -- writing an HTTP response -----------------------------------------------------------------

    async def respond(self, status: int, headers: list, body: bytes = b"", end: bool = True) -> None:
        """The response HEAD, and with it `body`; end=True completes the response. A small whole
        response leaves in one write, so portico sees it whole and adds Content-Length."""
        self._check_usable()
        if self.head_sent:
            raise RuntimeError("the response has already started")
        self.head_sent = True
        head = {"status": status, "headers": headers}
        if self.head.get("method") == "HEAD" and status != 101:
            body, end = b"", True  # §3: END on the HEAD, no DATA
        if not body:
            self.conn.write(frame(HEAD, END if end else 0, self.id, json_bytes(head)))
            if end:
                self._ended_locally()
            return
        if len(body) <= min(self.credit, MAX_DATA_FRAME):
            # The head and the first body bytes in one write: one trip through the pipe (the first
            # event of an SSE stream, say), and the whole of a small response.
            self.credit -= len(body)
            self.conn.write(frame(HEAD, 0, self.id, json_bytes(head)) + frame(DATA, END if end else 0, self.id, body))
            if end:
                self._ended_locally()
            return
        self.conn.write(frame(HEAD, 0, self.id, json_bytes(head)))
        await self.write(body, end)

    async def write(self, data: bytes, end: bool = False) -> None:
        """Body bytes as DATA frames of at most 64 KiB within the credit; waits while out of it."""
        if self.local_ended and self.head.get("method") == "HEAD":
            return  # the GET's body, for a HEAD request: nothing goes out
        self._check_usable()
        if not self.head_sent:
            raise RuntimeError("respond() before write()")
        view = memoryview(data)
        while view:
            # Wait for a whole frame's worth (or what is left), not every trickle of credit; never
            # for more than half the window, which the receiver may hold back to batch its grants.
            want = min(len(view), MAX_DATA_FRAME, max(1, self.conn.send_window // 2))
            if self.credit < want:
                await self._wait(lambda: self.credit >= want or self.closed)
                self._check_usable()
            n = min(len(view), MAX_DATA_FRAME, self.credit)
            self.credit -= n
            last = end and n == len(view)
            self.conn.write(frame(DATA, END if last else 0, self.id, bytes(view[:n])))
            view = view[n:]
            if last:
                self._ended_locally()
                return
            await self.conn.drain()
        if end:
            self.conn.write(frame(DATA, END, self.id))
            self._ended_locally()

    def reset(self, code: str, message: str | None = None) -> None:
        """Ends the stream at once (§5): "cancel" (gave up) or "error" (failed). Never after our
        response END: that could cut the response short on its way (§4)."""
        if self.closed or (self.local_ended and not self.websocket):
            return
        self._close()
        self.conn.write(frame(RESET, 0, self.id, json_bytes({"code": code, "message": message} if message else {"code": code})))

    # -- WebSockets (§6) --------------------------------------------------------------------------

    async def accept(self, headers: list) -> None:
        self.websocket = True
        await self.respond(101, headers, end=False)

    async def ws_receive(self) -> tuple[int, bytes]:
        """The next message from the client: (opcode, payload). A close (opcode 8) is the last."""
        await self._wait(lambda: self.messages or self.closed)
        if self.messages:
            opcode, payload = self.messages.popleft()
            if opcode != WS_CLOSE:
                self._consumed(len(payload))
            return opcode, payload
        self._raise_if_reset()
        raise ClientDisconnected("the WebSocket is closed")

    async def ws_send(self, opcode: int, payload: bytes) -> None:
        """One message as one WS frame: never split, so it goes once the credit covers it (or half
        the window, for a big one, which then runs the credit negative)."""
        if self.peer_closed or self.closed:
            raise ClientDisconnected("the WebSocket is closed")
        if len(payload) > MAX_PAYLOAD:
            raise ValueError("a WebSocket message is at most 16 MiB (one frame, docs/protocol.md §6)")
        want = min(len(payload), max(1, self.conn.send_window // 2))
        if self.credit < want:
            await self._wait(lambda: self.credit >= want or self.closed)
            if self.closed:
                raise ClientDisconnected("the WebSocket is closed")
        self.credit -= len(payload)
        self.conn.write(frame(WS, opcode, self.id, payload))
        await self.conn.drain()

    def ws_close(self, code: int | None, reason: str = "") -> None:
        """Sends our close. If the client closed first, portico has forgotten the stream already:
        this is the echo, sent without credit, and the stream is over. Otherwise portico answers
        with the client's close, which ws_receive() returns."""
        if self.closed:
            return
        self.conn.write(frame(WS, WS_CLOSE, self.id, close_payload(code, reason)))
        self.local_ended = True
        if self.peer_closed:
            self._close()

    # -- after the handler returned ---------------------------------------------------------------

    def finish(self) -> None:
        """The handler is done: drop what still comes, granting credit for it so portico can finish
        sending and the stream can end."""
        self.discarding = True
        dropped = sum(len(c) for c in self.body) + sum(len(p) for _, p in self.messages)
        self.body.clear()
        self.messages.clear()
        self._consumed(dropped)
        if self.websocket and not self.closed:
            if not self.local_ended:
                self.ws_close(1000 if not self.peer_closed else None)
            self._close()
        self._close_if_done()

    # -- frames from portico (called by the read loop) --------------------------------------------

    def on_data(self, chunk: bytes, end: bool) -> None:
        if self.remote_ended or self.discarding:
            self._consumed(len(chunk))
        elif chunk:
            self.body.append(chunk)
        if end:
            self.remote_ended = True
            self._close_if_done()
        self._notify()

    def on_ws(self, opcode: int, payload: bytes) -> None:
        if self.discarding or self.peer_closed:
            self._consumed(len(payload))
            return
        self.messages.append((opcode, payload))
        if opcode == WS_CLOSE:
            self.peer_closed = True
            if self.local_ended:
                self._close()  # the answer to our close: the exchange is over
        self._notify()

    def on_window(self, n: int) -> None:
        self.credit += n
        self._notify()

    def on_reset(self, code: str) -> None:
        self.reset_code = code
        self._close()

    # -- internals --------------------------------------------------------------------------------

    def _consumed(self, n: int) -> None:
        """Grants credit back for n consumed bytes, in batches of a quarter window (§4)."""
        if n == 0 or self.closed or (self.remote_ended and not self.websocket) or self.peer_closed:
            return
        self.unacked += n
        if self.unacked < self.conn.grant_batch:
            return
        n, self.unacked = self.unacked, 0
        self.conn.write(frame(WINDOW, 0, self.id, n.to_bytes(4, "big")))

    def _ended_locally(self) -> None:
        self.local_ended = True
        self._close_if_done()
        self._notify()

    def _close_if_done(self) -> None:
        if self.local_ended and self.remote_ended and not self.websocket:
            self._close()

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            self.conn.forget(self.id)
            self._notify()

    def _raise_if_reset(self) -> None:
        if self.reset_code is not None:
            raise ClientDisconnected(f"stream reset by portico: {self.reset_code}")

    def _check_usable(self) -> None:
        self._raise_if_reset()
        if self.closed or self.local_ended:
            raise ClientDisconnected("the response is already complete")

    async def _wait(self, ready) -> None:
        loop = asyncio.get_running_loop()
        while not ready():
            fut = loop.create_future()
            self._waiters.append(fut)
            await fut

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)
