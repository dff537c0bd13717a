"""WSGI (PEP 3333) on an Exchange: each request on a worker thread, the body streamed both ways."""
from __future__ import annotations

import logging
import sys
import threading

from .heads import RequestInfo, header_pairs, wsgi_path
from .stream import ClientDisconnected
from .threads import BodyReader, ThreadedAdapter

log = logging.getLogger("portico_sdk")


def environ_for(info: RequestInfo, body, cancelled: threading.Event) -> dict:
    host, port = info.server()
    env = {
        "REQUEST_METHOD": info.method,
        "SCRIPT_NAME": wsgi_path(info.root_path),
        "PATH_INFO": wsgi_path(info.route_path),
        "QUERY_STRING": info.query,
        "SERVER_NAME": host,
        "SERVER_PORT": str(port),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": info.client,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": info.scheme,
        "wsgi.input": body,
        "wsgi.input_terminated": True,  # read() to the end is safe even without Content-Length
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "portico.cancelled": cancelled,  # set when the client went away or the route timed out
    }
    for name, value in info.headers:
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE" or key == "CONTENT_LENGTH":
            env[key] = value
            continue
        key = "HTTP_" + key
        if key in env:  # repeated header: one value, as a server joins them
            env[key] += ("; " if key == "HTTP_COOKIE" else ",") + value
        else:
            env[key] = value
    return env


class WSGIAdapter(ThreadedAdapter):
    def __init__(self, app, threads: int = 32):
        super().__init__(threads)
        self.app = app

    def _run(self, ex, cancelled: threading.Event) -> None:
        """On a worker thread: the whole exchange, with every protocol step done by the loop."""
        call = self.bridge.call
        info = RequestInfo(ex.head)
        state: dict = {"status": None, "headers": None, "sent": False}

        def start_response(status, headers, exc_info=None):
            if exc_info is not None:
                try:
                    if state["sent"]:
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None
            elif state["status"] is not None:
                raise AssertionError("start_response called twice without exc_info")
            state["status"] = int(str(status).split(" ", 1)[0])
            state["headers"] = header_pairs(headers)
            return write

        def send(data: bytes, end: bool) -> None:
            if state["status"] is None:
                raise AssertionError("the app wrote its body before calling start_response")
            if not state["sent"]:
                state["sent"] = True
                call(ex.respond(state["status"], state["headers"], data, end))
            elif data or end:
                call(ex.write(data, end))

        def write(data: bytes) -> None:  # PEP 3333's legacy write(): unbuffered
            if data:
                send(bytes(data), False)

        result = self.app(environ_for(info, BodyReader(self.bridge, ex), cancelled), start_response)
        try:
            for chunk in result:
                if not chunk:
                    continue
                # A body given whole (Flask, Django: Content-Length matches the first chunk)
                # leaves with its head in one write, and portico sees it complete.
                whole = not state["sent"] and _content_length(state["headers"]) == len(chunk)
                send(bytes(chunk), whole)
                if whole:
                    break
            if not ex.local_ended:
                send(b"", True)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


def _content_length(headers) -> int | None:
    for name, value in headers or ():
        if name.lower() == "content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


__all__ = ["WSGIAdapter", "ClientDisconnected"]
