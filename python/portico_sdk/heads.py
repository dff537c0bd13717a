"""What a request HEAD (docs/protocol.md §3) says, in the terms ASGI and WSGI use."""
from __future__ import annotations

from urllib.parse import unquote, unquote_to_bytes


class RequestInfo:
    """The parts of a request HEAD every adapter needs.

    `path` from portico is the normalized full path, prefix included; `X-Forwarded-Prefix` is the
    route's mount prefix (portico always sets it and drops a client's own). `root_path` is that
    prefix and `route_path` what follows it, as SCRIPT_NAME and PATH_INFO are in WSGI.
    """

    __slots__ = ("method", "path", "query", "headers", "upgrade", "root_path", "route_path", "scheme", "host", "client")

    def __init__(self, head: dict):
        self.method: str = head.get("method") or "GET"
        self.path: str = head.get("path") or "/"
        self.query: str = head.get("query") or ""
        self.headers: list = head.get("headers") or []
        self.upgrade: str | None = head.get("upgrade")
        prefix = ""
        proto = host = forwarded_for = None
        for name, value in self.headers:
            n = name.lower()
            if n == "x-forwarded-prefix":
                prefix = value
            elif n == "x-forwarded-proto" and proto is None:
                proto = value
            elif n == "host" and host is None:
                host = value
            elif n == "x-forwarded-for":
                forwarded_for = value
        prefix = prefix.rstrip("/")
        if prefix and (self.path == prefix or self.path.startswith(prefix + "/")):
            self.root_path, self.route_path = prefix, self.path[len(prefix):] or "/"
        else:
            self.root_path, self.route_path = "", self.path
        self.scheme = "https" if proto == "https" else "http"
        self.host = host or "localhost"
        # portico appends the peer's address last to X-Forwarded-For.
        self.client = forwarded_for.rsplit(",", 1)[-1].strip() if forwarded_for else ""

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), default)

    def server(self) -> tuple[str, int]:
        """(host, port) of the Host header, the port defaulting by scheme."""
        host, port = self.host, 443 if self.scheme == "https" else 80
        if host.startswith("["):  # [v6]:port
            end = host.find("]")
            rest = host[end + 1:]
            host = host[1:end]
            if rest.startswith(":") and rest[1:].isdigit():
                port = int(rest[1:])
        elif ":" in host:
            h, _, p = host.rpartition(":")
            if p.isdigit():
                host, port = h, int(p)
        return host, port


def decoded_path(path: str) -> str:
    """Percent-decoded, as ASGI's `path` is (portico leaves reserved escapes such as %20 in place)."""
    return unquote(path, errors="surrogateescape") if "%" in path else path


def wsgi_path(path: str) -> str:
    """Percent-decoded bytes as latin-1, as PEP 3333 wants PATH_INFO and SCRIPT_NAME."""
    return unquote_to_bytes(path).decode("latin-1") if "%" in path else path


def header_pairs(headers) -> list[list[str]]:
    """An app's headers (bytes or str pairs) as the [[name, value], …] the protocol carries."""
    out = []
    for name, value in headers:
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        out.append([name, value])
    return out


TEXT = [["Content-Type", "text/plain; charset=utf-8"]]
