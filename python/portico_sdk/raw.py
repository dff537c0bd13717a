"""`serve(handler)`: no framework, plain blocking code on worker threads, streaming both ways.

    def handler(request, response):
        if request.route_path == "/echo":
            response.start(200, [("Content-Type", "application/octet-stream")])
            while chunk := request.read(65536):
                response.write(chunk)          # blocks while the client reads slower
            return                             # the response is ended for you
        response.send(200, [("Content-Type", "text/plain")], "hello\\n")
"""
from __future__ import annotations

import threading

from .frames import WS_BINARY, WS_CLOSE, WS_TEXT, parse_close
from .heads import RequestInfo, header_pairs
from .stream import ClientDisconnected
from .threads import BodyReader, Bridge, ThreadedAdapter


class WebSocketClosed(ClientDisconnected):
    """The WebSocket is closed: `code` and `reason` are the client's (1006 if it vanished)."""

    def __init__(self, code: int, reason: str = ""):
        super().__init__(f"WebSocket closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason


class Request:
    """method, path (full, prefix included), root_path (the mount prefix), route_path (the path
    after it), query (raw, without "?"), headers ([(name, value)], in order), upgrade ("websocket"
    on an upgrade request), cancelled (a threading.Event set when the client goes away or the
    route times out), and the body: read(n), readline(), or iterate over it."""

    def __init__(self, info: RequestInfo, body: BodyReader, cancelled: threading.Event):
        self.method = info.method
        self.path = info.path
        self.root_path = info.root_path
        self.route_path = info.route_path
        self.query = info.query
        self.headers = [(k, v) for k, v in info.headers]
        self.upgrade = info.upgrade
        self.cancelled = cancelled
        self.body = body
        self._info = info

    def header(self, name: str, default: str | None = None) -> str | None:
        return self._info.header(name, default)

    def read(self, size: int = -1) -> bytes:
        return self.body.read(size)

    def readline(self, size: int = -1) -> bytes:
        return self.body.readline(size)

    def __iter__(self):
        while chunk := self.body.read1():
            yield chunk


def _bytes(data) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


class Response:
    def __init__(self, bridge: Bridge, ex):
        self._call = bridge.call
        self._ex = ex

    @property
    def started(self) -> bool:
        return self._ex.head_sent

    def start(self, status: int, headers=()) -> None:
        """Sends the status and headers; the body follows with write() and end()."""
        self._call(self._ex.respond(int(status), header_pairs(headers), b"", end=False))

    def write(self, data) -> None:
        """Sends body bytes (a str is UTF-8); blocks while the client reads slower."""
        data = _bytes(data)
        if data:
            self._call(self._ex.write(data))

    def end(self, data=b"") -> None:
        self._call(self._ex.write(_bytes(data), end=True))

    def send(self, status: int, headers=(), body=b"") -> None:
        """A whole response at once."""
        self._call(self._ex.respond(int(status), header_pairs(headers), _bytes(body), end=True))

    def accept_websocket(self, subprotocol: str | None = None, headers=()) -> WebSocket:
        """Accepts a WebSocket upgrade (request.upgrade == "websocket", protocol v2 only)."""
        pairs = header_pairs(headers)
        if subprotocol:
            pairs.append(["Sec-WebSocket-Protocol", subprotocol])
        self._call(self._ex.accept(pairs))
        return WebSocket(self._call, self._ex)


class WebSocket:
    def __init__(self, call, ex):
        self._call = call
        self._ex = ex
        self.closed: WebSocketClosed | None = None

    def receive(self) -> str | bytes:
        """The next message: str for text, bytes for binary. Raises WebSocketClosed."""
        if self.closed:
            raise self.closed
        while True:
            try:
                opcode, payload = self._call(self._ex.ws_receive())
            except ClientDisconnected:
                self.closed = WebSocketClosed(1006)
                raise self.closed from None
            if opcode == WS_TEXT:
                return payload.decode("utf-8", "replace")
            if opcode == WS_BINARY:
                return payload
            if opcode == WS_CLOSE:
                self.closed = WebSocketClosed(*parse_close(payload))
                raise self.closed

    def send(self, message) -> None:
        if isinstance(message, str):
            self._call(self._ex.ws_send(WS_TEXT, message.encode()))
        else:
            self._call(self._ex.ws_send(WS_BINARY, bytes(message)))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Closes with `code`; when the client closed first, this is the echo."""
        self._call(_close(self._ex, code, reason))


async def _close(ex, code: int, reason: str) -> None:
    ex.ws_close(code, reason)


class RawAdapter(ThreadedAdapter):
    def __init__(self, handler, threads: int = 32):
        super().__init__(threads)
        self.handler = handler

    def _run(self, ex, cancelled: threading.Event) -> None:
        request = Request(RequestInfo(ex.head), BodyReader(self.bridge, ex), cancelled)
        response = Response(self.bridge, ex)
        self.handler(request, response)
        if ex.head_sent and not ex.local_ended and not ex.websocket:
            response.end()
