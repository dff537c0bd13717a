"""A portico plugin speaking protocol v2, in plain Python 3.11 (standard library only).

Read it top to bottom to learn how to write a v2 plugin in any language. docs/protocol.md is the
specification; the § numbers below point into it.

  §1  Handshake: one JSON line each way, as in v1. If portico offers protocol 2 and we take it, the
      next byte on both pipes is the first byte of a binary frame.
  §2  Frames: a 10-byte header (type, flags, stream id, length), then `length` bytes of payload.
  §3  Streams: portico opens one stream per request with a HEAD frame. DATA frames carry the bodies
      both ways, the last one flagged END. Either side may RESET a stream to cancel it.
  §4  Flow control: per stream, never send more DATA than the credit portico granted, and grant
      credit back (WINDOW frames) as the handler consumes the request body.
  §6  WebSockets: after a 101, messages travel as WS frames (flags = opcode).
  §7  Control: `shutdown` arrives as a JSON-RPC message in an RPC frame on stream 0.

How this file is built. Threads, because they keep every handler ordinary blocking code:

  main thread         reads frames from stdin and hands each one to its Stream; it never waits
                      for a handler, so WINDOW and RESET frames always get through
  one thread/stream   runs the route handler, which reads and writes through its Stream object and
                      blocks while it waits for body bytes or for credit
  send_frame()        one lock around stdout, so frames from different threads never interleave

The route handlers (see ROUTES) only use a small interface: read, respond, write, end, sleep, plus
the WebSocket calls. If the host does not offer v2 (nexo itself, say), the same handlers run over
protocol v1, where the request body arrives whole and the response leaves whole (see run_v1).

stdout (fd 1) carries protocol bytes only. Log to stderr; print() is redirected there.
"""
from __future__ import annotations

import base64
import collections
import hashlib
import json
import os
import struct
import sys
import threading
import time
import tomllib
import traceback
import urllib.parse
import uuid
from datetime import datetime, timezone
from pathlib import Path

# The manifest travels in the initialize reply: read it from the file next to this one.
MANIFEST = tomllib.loads((Path(__file__).resolve().parent / "nexo-plugin.toml").read_text("utf-8"))
PLUGIN_ID = MANIFEST["plugin"]["id"]
SERVER_VERSION = f"stream-python/{MANIFEST['plugin']['version']}"

# ---------------------------------------------------------------------------------------------
# Protocol v2 constants (§2, §4, §6)
# ---------------------------------------------------------------------------------------------

RPC, HEAD, DATA, WINDOW, RESET, WS = 0, 1, 2, 3, 4, 5  # frame types
END = 0x01                                             # flag on HEAD and DATA: no more DATA from the sender
FRAME_HEADER = struct.Struct(">BBII")                  # type u8, flags u8, stream id u32, length u32 (big-endian)
MAX_PAYLOAD = 16 * 1024 * 1024                         # a longer frame is a protocol error
MAX_DATA_FRAME = 64 * 1024                             # §4: bigger DATA frames hold up the other streams
DEFAULT_WINDOW = 1024 * 1024
OUR_WINDOW = 1024 * 1024                               # per-stream credit we give portico for request bodies
GRANT_BATCH = OUR_WINDOW // 4                          # return credit in batches of this size, not per frame

WS_TEXT, WS_BINARY, WS_CLOSE, WS_PING, WS_PONG = 1, 2, 8, 9, 10  # WS frame flags = WebSocket opcode

# ---------------------------------------------------------------------------------------------
# Plumbing: stdin, stdout, stderr
# ---------------------------------------------------------------------------------------------

# stdin is binary from the start: the bytes right after the handshake line are frames already. Every
# read goes through this one buffered reader, which may hold bytes that followed the handshake line,
# so never mix it with os.read(0, ...).
STDIN = sys.stdin.buffer
STDOUT_FD = 1
sys.stdout = sys.stderr  # a stray print() must not corrupt the protocol stream

_write_lock = threading.Lock()


def log(*args):
    print(f"{PLUGIN_ID}:", *args, file=sys.stderr, flush=True)


def read_exact(n):
    """Exactly n bytes from stdin, or None if stdin ends first."""
    parts, missing = [], n
    while missing:
        chunk = STDIN.read(missing)
        if not chunk:
            return None
        parts.append(chunk)
        missing -= len(chunk)
    return b"".join(parts)


def _write_all(data):
    # os.write may write less than asked (a pipe takes 64 KiB at a time): loop until all is out.
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(STDOUT_FD, view):]
    except BrokenPipeError:
        log("stdout closed: portico went away")
        os._exit(0)


def send_line(obj):
    """One JSON-RPC message as one line (the handshake, and everything in protocol v1)."""
    line = json.dumps(obj, separators=(",", ":")) + "\n"  # json.dumps escapes any newline in strings
    with _write_lock:
        _write_all(line.encode())


def send_frame(ftype, flags, stream_id, payload=b""):
    """One whole frame. The lock keeps frames written by different threads from interleaving."""
    header = FRAME_HEADER.pack(ftype, flags, stream_id, len(payload))
    with _write_lock:
        _write_all(header)
        if payload:
            _write_all(payload)


def send_json_frame(ftype, flags, stream_id, obj):
    send_frame(ftype, flags, stream_id, json.dumps(obj, separators=(",", ":")).encode())


class StreamReset(Exception):
    """portico reset the stream (§5): "cancel" when the client went away, "timeout", or "error"."""

    def __init__(self, code, message=None):
        super().__init__(f"stream reset by portico: {code}" + (f" ({message})" if message else ""))
        self.code = code


class HttpError(Exception):
    """Raised by a handler that has not responded yet: answered as a plain-text error response."""

    def __init__(self, status, text):
        super().__init__(text)
        self.status = status
        self.text = text


class Tracker:
    """Counts running handlers, so that `shutdown` can wait for them to finish."""

    def __init__(self):
        self._cond = threading.Condition()
        self._running = 0

    def start(self):
        with self._cond:
            self._running += 1

    def done(self):
        with self._cond:
            self._running -= 1
            self._cond.notify_all()

    def wait_idle(self):
        with self._cond:
            self._cond.wait_for(lambda: self._running == 0)


# ---------------------------------------------------------------------------------------------
# Protocol v2: one Stream per request
# ---------------------------------------------------------------------------------------------


class Stream:
    """One request (§3) with its flow control (§4), as its handler thread sees it.

    The main thread feeds it frames (the on_* methods); the handler thread calls the rest. One
    Condition guards what the two share, and wakes the handler when body bytes, credit or a RESET
    arrive. Frames are never written while holding it.
    """

    def __init__(self, conn, stream_id, remote_ended):
        self.conn = conn
        self.id = stream_id
        self.cond = threading.Condition()
        self.credit = conn.send_window        # DATA/WS bytes we may still send before portico grants more
        self.body = collections.deque()       # request body chunks the handler has not read yet
        self.messages = collections.deque()   # WebSocket messages (opcode, payload) not read yet
        self.remote_ended = remote_ended      # portico sent END: the request body is complete
        self.local_ended = False              # we sent END
        self.head_sent = False
        self.websocket = False                # we accepted a WebSocket upgrade (101)
        self.reset_code = None                # set when portico reset the stream
        self.closed = False                   # the stream is over for us and its id forgotten
        self.discarding = False               # the handler returned: drop what still comes
        self.unacked = 0                      # consumed bytes not yet granted back with WINDOW

    # -- used by the handler thread: an HTTP response --------------------------------------------

    def respond(self, status, headers, end=False):
        """Sends the response HEAD (§3); end=True when there is no body. May come before the
        request body was read (full duplex)."""
        with self.cond:
            self._check_usable()
            if self.head_sent:
                raise RuntimeError("response HEAD already sent")
            self.head_sent = True
        send_json_frame(HEAD, END if end else 0, self.id, {"status": status, "headers": headers})
        if end:
            self._ended_locally()

    def write(self, data):
        """Sends body bytes as DATA frames of at most 64 KiB, each within the credit portico
        granted. Blocks while out of credit: a client that reads slowly slows this handler down."""
        view = memoryview(data)
        while view:
            with self.cond:
                if not self.head_sent:
                    raise RuntimeError("respond() before write()")
                # Wait for enough credit for a whole frame (or for what is left, if less) rather
                # than sending every trickle of credit as a tiny frame; this also keeps a small
                # write, like one SSE event, in one frame. Never wait for more than half the
                # window, though: the receiver may keep some credit back to grant in batches.
                want = min(len(view), MAX_DATA_FRAME, max(1, self.conn.send_window // 2))
                self.cond.wait_for(lambda: self.credit >= want or self.closed)
                self._check_usable()
                n = min(len(view), MAX_DATA_FRAME, self.credit)
                self.credit -= n
            send_frame(DATA, 0, self.id, view[:n])
            view = view[n:]

    def end(self):
        """Ends the response body (an empty DATA frame with END)."""
        with self.cond:
            self._check_usable()
            if not self.head_sent:
                raise RuntimeError("respond() before end()")
        send_frame(DATA, END, self.id)
        self._ended_locally()

    def read(self):
        """The next chunk of the request body, or b"" once it is complete. Reading is what grants
        credit back to portico (§4), so a slow handler slows the upload down and at most one
        window of body is ever queued here."""
        with self.cond:
            self.cond.wait_for(lambda: self.body or self.remote_ended or self.closed)
            self._raise_if_reset()
            if self.body:
                chunk = self.body.popleft()
            elif self.remote_ended:
                return b""
            else:
                raise RuntimeError("the stream is over")
        self._consumed(len(chunk))
        return chunk

    def sleep(self, seconds):
        """time.sleep that raises StreamReset as soon as portico resets the stream."""
        with self.cond:
            self.cond.wait_for(lambda: self.reset_code is not None, timeout=seconds)
            self._raise_if_reset()

    def reset(self, code, message=None):
        """Ends the stream at once, both ways (§5): "cancel" (gave up) or "error" (failed)."""
        with self.cond:
            if self.closed:
                return
            self._close()
        send_json_frame(RESET, 0, self.id, {"code": code, "message": message} if message else {"code": code})

    def fail(self, status, text):
        """The handler failed: an error response if nothing was sent yet, else RESET "error"."""
        try:
            if self.closed or self.local_ended:
                return  # too late to change anything
            if self.head_sent:
                self.reset("error", text.strip())
            else:
                send_body(self, status, "text/plain; charset=utf-8", text.encode())
        except StreamReset:
            pass

    # -- used by the handler thread: a WebSocket (§6) ---------------------------------------------

    def accept_websocket(self):
        with self.cond:
            self.websocket = True
        self.respond(101, [])

    def ws_receive(self):
        """The next message from the client: (opcode, payload)."""
        with self.cond:
            self.cond.wait_for(lambda: self.messages or self.closed)
            self._raise_if_reset()
            if not self.messages:
                raise RuntimeError("the stream is over")
            opcode, payload = self.messages.popleft()
        self._consumed(len(payload))
        return opcode, payload

    def ws_send(self, opcode, payload):
        """One message, as one WS frame. It counts against the credit like DATA, but it cannot be
        split: wait until the credit covers it (or half the window, for a bigger message, which
        then runs the credit negative until portico grants more)."""
        with self.cond:
            want = min(len(payload), max(1, self.conn.send_window // 2))
            self.cond.wait_for(lambda: self.credit >= want or self.closed)
            self._check_usable()
            self.credit -= len(payload)
        send_frame(WS, opcode, self.id, payload)

    def ws_close(self, payload, reply=False):
        """Sends a close (u16 code + reason, or empty) and forgets the stream: nothing more comes
        for it. If we close first, portico closes the client with the same code and reason.
        If the client closed first (reply=True), portico finished the stream when it sent us the
        close and does not await our echo: send it without waiting for credit, which portico will
        not return any more."""
        if not reply:
            self.ws_send(WS_CLOSE, payload)
        with self.cond:
            self._raise_if_reset()
            self._close()
        if reply:
            send_frame(WS, WS_CLOSE, self.id, payload)

    # -- called by Connection once the handler returned -------------------------------------------

    def after_handler(self):
        if not self.closed and not self.local_ended:
            self.fail(500, "the handler returned without finishing its response\n")
        # The response is complete but portico may still be sending the request body: drop it,
        # granting credit as it comes so portico can finish sending and the stream can end.
        with self.cond:
            self.discarding = True
            dropped = sum(len(c) for c in self.body) + sum(len(p) for _, p in self.messages)
            self.body.clear()
            self.messages.clear()
        self._consumed(dropped)

    # -- called by the main thread, one per frame that portico sent for this stream ---------------

    def on_data(self, chunk, end):
        with self.cond:
            drop = self.discarding
            if chunk and not drop:
                self.body.append(chunk)
            if end:
                self.remote_ended = True
                self._close_if_done()
            self.cond.notify_all()
        if drop:
            self._consumed(len(chunk))

    def on_ws(self, opcode, payload):
        with self.cond:
            drop = self.discarding
            if not drop:
                self.messages.append((opcode, payload))
                self.cond.notify_all()
        if drop:
            self._consumed(len(payload))

    def on_window(self, n):
        with self.cond:
            self.credit += n
            self.cond.notify_all()

    def on_reset(self, code, message):
        log(f"stream {self.id}: reset by portico ({code}{': ' + message if message else ''})")
        with self.cond:
            self.reset_code = code
            self._close()

    # -- internals --------------------------------------------------------------------------------

    def _consumed(self, n):
        """Grants credit back for n bytes the handler used (§4), in batches of GRANT_BATCH.
        Holding back less than the window keeps portico sending meanwhile."""
        with self.cond:
            if n == 0 or self.closed or (self.remote_ended and not self.websocket):
                return  # nothing more will come: no credit needed
            self.unacked += n
            if self.unacked < GRANT_BATCH:
                return
            n, self.unacked = self.unacked, 0
        send_frame(WINDOW, 0, self.id, n.to_bytes(4, "big"))

    def _ended_locally(self):
        with self.cond:
            self.local_ended = True
            self._close_if_done()

    def _close_if_done(self):  # holding self.cond
        # §3: a stream is done when both sides sent END. A WebSocket ends with a close instead.
        if self.local_ended and self.remote_ended and not self.websocket:
            self._close()

    def _close(self):  # holding self.cond
        if not self.closed:
            self.closed = True
            self.conn.forget(self.id)
            self.cond.notify_all()

    def _raise_if_reset(self):  # holding self.cond
        if self.reset_code is not None:
            raise StreamReset(self.reset_code)

    def _check_usable(self):  # holding self.cond
        self._raise_if_reset()
        if self.closed or self.local_ended:
            raise RuntimeError("the response is already complete")


class Connection:
    """Protocol v2 after the switch: reads frames, routes them to streams, answers RPCs (§7)."""

    def __init__(self, send_window):
        self.send_window = send_window  # portico's offer: the initial credit of each of our streams
        self.streams = {}
        self.lock = threading.Lock()    # guards self.streams
        self.handlers = Tracker()
        self.shutting_down = False

    def run(self):
        while True:
            header = read_exact(FRAME_HEADER.size)
            if header is None:
                break
            ftype, flags, stream_id, length = FRAME_HEADER.unpack(header)
            if length > MAX_PAYLOAD:
                log(f"protocol error: frame of {length} bytes")
                os._exit(1)
            payload = read_exact(length)
            if payload is None:
                break
            try:
                self.dispatch(ftype, flags, stream_id, payload)
            except (ValueError, AttributeError) as exc:  # bad JSON, or JSON of the wrong shape
                log(f"protocol error: {exc!r}")
                os._exit(1)
        # §7 and the brief of every plugin: when portico goes away, so do we. os._exit because
        # handler threads may be blocked; nothing is lost since stdout/stderr are unbuffered.
        log("stdin closed: exiting")
        os._exit(0)

    def dispatch(self, ftype, flags, stream_id, payload):
        if ftype == RPC:
            self.on_rpc(json.loads(payload))
            return
        if stream_id == 0:
            return  # stream 0 is for RPC frames only
        with self.lock:
            stream = self.streams.get(stream_id)
        if stream is None:
            if ftype == HEAD:
                self.open_stream(stream_id, json.loads(payload), bool(flags & END))
            return  # otherwise a late frame for a stream that is over: ignore it (§5)
        if ftype == DATA:
            stream.on_data(payload, bool(flags & END))
        elif ftype == WINDOW:
            stream.on_window(int.from_bytes(payload, "big"))
        elif ftype == RESET:
            body = json.loads(payload) if payload else {}
            stream.on_reset(body.get("code", "error"), body.get("message"))
        elif ftype == WS:
            stream.on_ws(flags, payload)  # flags carry the WebSocket opcode
        # anything else (unknown frame types, a second HEAD) is ignored

    def open_stream(self, stream_id, head, end):
        stream = Stream(self, stream_id, remote_ended=end)
        with self.lock:
            self.streams[stream_id] = stream
        if self.shutting_down:  # §7: no new work once shutdown was asked
            send_body(stream, 503, "text/plain; charset=utf-8", b"shutting down\n")
            stream.after_handler()
            return
        self.handlers.start()
        threading.Thread(target=self.run_handler, args=(stream, head), name=f"stream-{stream_id}", daemon=True).start()

    def run_handler(self, stream, head):
        try:
            serve(Request(head), stream)
            stream.after_handler()
        except Exception:  # serve() handles the handler's own errors: this is a bug in this file
            log(traceback.format_exc())
            stream.reset("error", "plugin failure")
        finally:
            self.handlers.done()

    def forget(self, stream_id):
        with self.lock:
            self.streams.pop(stream_id, None)

    def on_rpc(self, msg):
        method, msg_id = msg.get("method"), msg.get("id")
        if method == "shutdown" and msg_id is not None:
            self.shutting_down = True
            # Wait in another thread: the main thread must keep reading frames for running streams.
            threading.Thread(target=self.shutdown, args=(msg_id,), daemon=True).start()
        elif method and msg_id is not None:
            send_json_frame(RPC, 0, 0, {"jsonrpc": "2.0", "id": msg_id, "error": {"code": -32601, "message": f"method not found: {method}"}})
        # notifications we do not know, and replies (we send no requests), are ignored

    def shutdown(self, msg_id):
        log("shutdown: waiting for running streams")
        self.handlers.wait_idle()
        send_json_frame(RPC, 0, 0, {"jsonrpc": "2.0", "id": msg_id, "result": {"ok": True}})
        log("shutdown: done")
        os._exit(0)  # the main thread is blocked reading stdin: leave from here


# ---------------------------------------------------------------------------------------------
# The application: routes, written against the small interface Stream and BufferedExchange share
# ---------------------------------------------------------------------------------------------


class Request:
    """A request HEAD (§3). protocol v1's request object has the same fields, minus `upgrade`."""

    def __init__(self, head):
        self.method = head.get("method", "GET")
        self.headers = head.get("headers") or []
        self.prefix = self.header("x-forwarded-prefix", "").rstrip("/")
        path = head.get("path") or "/"
        if self.prefix and path.startswith(self.prefix):
            path = path[len(self.prefix):]
        self.path = path or "/"                  # the path after the mount prefix
        self.query = urllib.parse.parse_qs(head.get("query") or "")
        self.upgrade = head.get("upgrade")       # "websocket" on an upgrade request (§6)

    def header(self, name, default=None):
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), default)

    def int_param(self, name, default, lo, hi):
        raw = self.query.get(name, [None])[0]
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            raise HttpError(400, f"{name} must be an integer in {lo}..{hi}\n")
        return value


def send_body(ex, status, content_type, body):
    """A whole response with a known length."""
    headers = [["Content-Type", content_type], ["Content-Length", str(len(body))]]
    ex.respond(status, headers, end=not body)
    if body:
        ex.write(body)
        ex.end()


INDEX = """stream_python: a portico protocol v2 plugin in plain Python.

  GET  {p}/                              this text
  GET  {p}/events?n=10&interval_ms=100   server-sent events: "data: <i>", one every interval_ms
  POST {p}/echo                          the request body, streamed back as it arrives
  POST {p}/count                         {{"bytes": N, "sha256": "<hex>"}} of the request body
  GET  {p}/bytes?n=N                     N bytes; byte i is i % 251
  GET  {p}/ws                            WebSocket echo; send "close:<code>" to be closed with <code>
"""


def index(req, ex):
    send_body(ex, 200, "text/plain; charset=utf-8", INDEX.format(p=req.prefix).encode())


def events(req, ex):
    n = req.int_param("n", 10, 0, 100_000)
    interval = req.int_param("interval_ms", 100, 0, 60_000) / 1000
    ex.respond(200, [["Content-Type", "text/event-stream"], ["Cache-Control", "no-cache"]])
    for i in range(n):
        if i:
            # Once the client goes away portico RESETs the stream: sleep() and write() then raise
            # StreamReset, which ends this loop early.
            ex.sleep(interval)
        ex.write(f"data: {i}\n\n".encode())  # one event, one DATA frame: the client gets it now
    ex.end()


def echo(req, ex):
    # Full duplex: the HEAD goes out first, then each chunk is sent back as it arrives. Memory
    # stays bounded: one chunk here, at most one window queued in the Stream.
    ex.respond(200, [["Content-Type", req.header("content-type", "application/octet-stream")]])
    while chunk := ex.read():
        ex.write(chunk)
    ex.end()


def count(req, ex):
    digest, total = hashlib.sha256(), 0
    while chunk := ex.read():
        digest.update(chunk)
        total += len(chunk)
    body = json.dumps({"bytes": total, "sha256": digest.hexdigest()}).encode()
    send_body(ex, 200, "application/json", body)


# Byte i of the body is i % 251: a body slice starting at offset o is PATTERN[o % 251 : ...].
PATTERN = bytes(range(251)) * (MAX_DATA_FRAME // 251 + 2)


def pattern_bytes(req, ex):
    n = req.int_param("n", 1024, 0, 1 << 40)
    ex.respond(200, [["Content-Type", "application/octet-stream"], ["Content-Length", str(n)]], end=n == 0)
    sent = 0
    while sent < n:
        size = min(MAX_DATA_FRAME, n - sent)
        start = sent % 251
        ex.write(PATTERN[start:start + size])  # waits whenever the client is slower than us
        sent += size
    if n:
        ex.end()


def websocket(req, ex):
    if req.upgrade != "websocket":  # a plain GET (and every request over protocol v1)
        raise HttpError(426, "this route is a WebSocket: connect with ws:// (needs portico protocol v2)\n")
    ex.accept_websocket()
    while True:
        opcode, payload = ex.ws_receive()
        if opcode == WS_CLOSE:
            ex.ws_close(payload, reply=True)  # echo the client's close, same code and reason
            return
        if opcode == WS_TEXT and payload.startswith(b"close:"):
            code = payload[len(b"close:"):].decode("ascii", "replace").strip()
            if code.isdigit() and (int(code) == 1000 or 3000 <= int(code) <= 4999):
                ex.ws_close(struct.pack(">H", int(code)) + b"closed on request")
                return
            ex.ws_send(WS_TEXT, b"close code must be 1000 or 3000..4999")
        elif opcode in (WS_TEXT, WS_BINARY):
            ex.ws_send(opcode, payload)
        # WS_PONG (the client answered a ping we sent): nothing to do


ROUTES = {
    ("GET", "/"): index,
    ("GET", "/events"): events,
    ("POST", "/echo"): echo,
    ("POST", "/count"): count,
    ("GET", "/bytes"): pattern_bytes,
    ("GET", "/ws"): websocket,
}


def serve(req, ex):
    """Runs the route for one request; `ex` is a v2 Stream or a v1 BufferedExchange."""
    try:
        handler = ROUTES.get((req.method, req.path))
        if handler is None:
            known = any(path == req.path for _, path in ROUTES)
            raise HttpError(405, "method not allowed\n") if known else HttpError(404, "not found\n")
        handler(req, ex)
    except StreamReset as exc:
        log(f"{req.method} {req.path}: stopped, {exc}")
    except HttpError as exc:
        ex.fail(exc.status, exc.text)
    except Exception:
        log(f"{req.method} {req.path}: handler failed\n{traceback.format_exc()}")
        ex.fail(500, "internal error\n")


# ---------------------------------------------------------------------------------------------
# Protocol v1 fallback: nexo's buffered exchange, one JSON line each way per request
# ---------------------------------------------------------------------------------------------

V1_MAX_RESPONSE = 8 * 1024 * 1024  # a v1 reply is one base64 line: keep it reasonable


class BufferedExchange:
    """What a handler uses, for protocol v1: the body arrived whole, the reply leaves whole."""

    def __init__(self, body):
        self._body = body
        self.status, self.headers, self.out = 500, [], bytearray()
        self.head_sent = False

    def read(self):
        chunk, self._body = self._body, b""
        return chunk

    def respond(self, status, headers, end=False):
        self.status, self.headers, self.head_sent = status, headers, True

    def write(self, data):
        if len(self.out) + len(data) > V1_MAX_RESPONSE:
            raise ValueError("response too large for protocol v1")
        self.out += data

    def end(self):
        pass

    def sleep(self, seconds):
        time.sleep(seconds)

    def fail(self, status, text):
        self.status, self.headers = status, [["Content-Type", "text/plain; charset=utf-8"]]
        self.out = bytearray(text.encode())


def run_v1():
    running = Tracker()
    while line := STDIN.readline():
        try:
            msg = json.loads(line)
        except ValueError:
            log("ignored a line that is not JSON")
            continue
        method, msg_id = msg.get("method"), msg.get("id")
        if method == "broker.event":
            running.start()
            threading.Thread(target=serve_v1, args=(msg["params"]["event"]["payload"], running), daemon=True).start()
        elif method == "shutdown" and msg_id is not None:
            running.wait_idle()
            send_line({"jsonrpc": "2.0", "id": msg_id, "result": {"ok": True}})
            return
        elif method and msg_id is not None:
            send_line({"jsonrpc": "2.0", "id": msg_id, "error": {"code": -32601, "message": f"method not found: {method}"}})
    log("stdin closed: exiting")


def serve_v1(message, running):
    """message: {id, topic, reply_to, payload: {method, path, query, headers, body_base64}}."""
    try:
        request = message["payload"]
        ex = BufferedExchange(base64.b64decode(request.get("body_base64") or ""))
        serve(Request(request), ex)
        reply = {"status": ex.status, "headers": ex.headers, "body_base64": base64.b64encode(ex.out).decode("ascii")}
        topic = message["reply_to"]
        send_line({"jsonrpc": "2.0", "method": "broker.publish", "params": {"topic": topic, "event": {
            "id": str(uuid.uuid4()), "timestamp": datetime.now(timezone.utc).isoformat(), "topic": topic,
            "source": PLUGIN_ID, "session_id": None,
            "payload": {"id": str(uuid.uuid4()), "topic": topic, "reply_to": None, "payload": reply}}}})
    finally:
        running.done()


# ---------------------------------------------------------------------------------------------
# The handshake (§1), then one protocol or the other
# ---------------------------------------------------------------------------------------------


def main():
    while True:
        line = STDIN.readline()  # binary: the handshake is the only text that ever arrives
        if not line:
            return
        try:
            msg = json.loads(line)
        except ValueError:
            log("ignored a line that is not JSON")
            continue
        if msg.get("method") == "initialize":
            break
        log(f"ignored {msg.get('method')!r} before initialize")

    offer = (msg.get("params") or {}).get("portico") or {}  # portico's offer; absent under nexo
    protocols = offer.get("protocols")
    v2 = isinstance(protocols, list) and 2 in protocols
    result = {"manifest": MANIFEST, "server_version": SERVER_VERSION}
    if v2:
        result["portico"] = {"protocol": 2, "window": OUR_WINDOW}
    send_line({"jsonrpc": "2.0", "id": msg["id"], "result": result})

    if v2:
        # From the byte after our newline on, stdout carries frames only; so does stdin.
        window = offer.get("window")
        if not isinstance(window, int) or window <= 0:
            window = DEFAULT_WINDOW
        log(f"protocol v2 (portico's window {window}, ours {OUR_WINDOW})")
        Connection(window).run()
    else:
        log("protocol v1: portico protocol v2 was not offered; streaming and WebSockets are off")
        run_v1()


if __name__ == "__main__":
    main()
