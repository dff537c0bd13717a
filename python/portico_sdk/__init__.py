"""Serve an ASGI app, a WSGI app or a plain handler as a portico plugin (standard library only).

    from portico_sdk import serve_asgi
    from myapp import app
    serve_asgi(app)

Under portico the plugin speaks protocol v2 (bodies streamed both ways with backpressure,
WebSockets, cancellation); under a host that does not offer it (nexo) it speaks nexo's buffered
v1. stdout belongs to the protocol: print() goes to stderr, which portico copies into its log.
See docs/python.md in the portico repository.
"""
from __future__ import annotations

from .asgi import ASGIAdapter
from .frames import DEFAULT_WINDOW
from .plugin import run
from .raw import RawAdapter, Request, Response, WebSocket, WebSocketClosed
from .stream import ClientDisconnected
from .wsgi import WSGIAdapter

__version__ = "0.1.0"
__all__ = [
    "serve_asgi", "serve_wsgi", "serve", "ClientDisconnected", "Request", "Response", "WebSocket", "WebSocketClosed",
]


def serve_asgi(app, *, manifest=None, lifespan: str = "auto", server_version: str | None = None,
               protocol: int | None = None, path_includes_root_path: bool | None = None) -> None:
    """Serves an ASGI 3 app (FastAPI, Starlette, Django's get_asgi_application(), …). Never returns.

    lifespan: "auto" (run it if the app supports it), "on" or "off".
    manifest: a dict, or the path of nexo-plugin.toml (default: the one in the working directory).
    protocol: 1 to refuse protocol v2 even when offered (to try what nexo would see).
    path_includes_root_path: whether scope["path"] carries the mount prefix (default: as the app's
    framework expects, see docs/python.md)."""
    run(ASGIAdapter(app, lifespan, path_includes_root_path), manifest, server_version, protocol, DEFAULT_WINDOW)


def serve_wsgi(app, *, threads: int = 32, manifest=None, server_version: str | None = None,
               protocol: int | None = None) -> None:
    """Serves a WSGI app (Flask, Django's get_wsgi_application(), …) on `threads` worker threads.
    Never returns."""
    run(WSGIAdapter(app, threads), manifest, server_version, protocol, DEFAULT_WINDOW)


def serve(handler, *, threads: int = 32, manifest=None, server_version: str | None = None,
          protocol: int | None = None) -> None:
    """Serves `handler(request, response)` (see portico_sdk.raw) on `threads` worker threads.
    Never returns."""
    run(RawAdapter(handler, threads), manifest, server_version, protocol, DEFAULT_WINDOW)
