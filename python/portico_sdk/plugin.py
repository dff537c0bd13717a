"""The plugin's life: stdio, the `initialize` handshake (docs/protocol.md §1), then protocol v2
when portico offers it, or nexo's v1 when not. Every entry point ends up in `run`."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tomllib
from pathlib import Path

from .connection import Connection
from .frames import DEFAULT_WINDOW, ProtocolError
from .stdio import Output, open_pipes, take_stdio
from .v1 import V1Session

log = logging.getLogger("portico_sdk")

# A v1 request is one line with its body in base64: room for portico's 16 MiB default limit.
V1_LINE_LIMIT = 64 * 1024 * 1024


def load_manifest(manifest) -> dict:
    """A parsed manifest, or the path of one (default ./nexo-plugin.toml: portico starts a
    plugin in its own folder)."""
    if isinstance(manifest, dict):
        return manifest
    path = Path(manifest) if manifest else Path.cwd() / "nexo-plugin.toml"
    return tomllib.loads(path.read_text("utf-8"))


def setup_logging() -> None:
    """Log lines go to stderr, which portico copies into its own log tagged with the plugin id."""
    level = os.environ.get("PORTICO_SDK_LOG", "INFO").upper()
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    log.setLevel(getattr(logging, level, logging.INFO))
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)


def run(adapter, manifest=None, server_version: str | None = None, protocol: int | None = None,
        window: int = DEFAULT_WINDOW) -> None:
    """Serves `adapter` over stdin/stdout until portico says `shutdown` or goes away. Never returns."""
    setup_logging()
    manifest_obj = load_manifest(manifest)
    in_fd, out_fd = take_stdio()
    try:
        asyncio.run(_main(adapter, manifest_obj, server_version, protocol, window, in_fd, out_fd))
    except ProtocolError as exc:
        log.error("protocol error from portico: %s", exc)
        Output.exit(1)
    except KeyboardInterrupt:
        Output.exit(0)
    Output.exit(0)


async def _main(adapter, manifest, server_version, protocol, window, in_fd, out_fd) -> None:
    reader, out = await open_pipes(in_fd, out_fd, V1_LINE_LIMIT)
    out.on_lost = reader.feed_eof
    adapter.bind(asyncio.get_running_loop())
    # The app starts (ASGI lifespan startup) while the handshake line is on its way; portico marks
    # the plugin ready when we answer, so we answer only once the app is ready.
    startup = asyncio.get_running_loop().create_task(adapter.startup())
    msg = await _read_initialize(reader)
    if msg is None:
        log.info("stdin closed before initialize: exiting")
        return
    try:
        await startup
    except Exception as exc:  # the app refused to start: portico counts it as a crash
        log.error("the app failed to start: %s", exc)
        Output.exit(1)

    offer = (msg.get("params") or {}).get("portico") or {}
    protocols = offer.get("protocols")
    v2 = protocol != 1 and isinstance(protocols, list) and 2 in protocols
    result = {"manifest": manifest, "server_version": server_version or "portico-sdk-python/0.1.0"}
    if v2:
        result["portico"] = {"protocol": 2, "window": window}
    out.write(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}, separators=(",", ":")).encode() + b"\n")

    if v2:
        send_window = offer.get("window")
        if not isinstance(send_window, int) or send_window <= 0:
            send_window = DEFAULT_WINDOW
        conn = Connection(reader, out, send_window, window, adapter)
        await conn.run()
        await conn.abort_all()
    else:
        log.info("protocol v1 (portico's protocol v2 was not offered): bodies buffered, no WebSockets")
        session = V1Session(reader, out, manifest, adapter)
        await session.run()
    log.info("stdin closed: exiting")
    try:
        await asyncio.wait_for(adapter.shutdown(), 3)
    except Exception:  # noqa: BLE001 - leaving anyway
        pass


async def _read_initialize(reader: asyncio.StreamReader) -> dict | None:
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            return None
        try:
            msg = json.loads(line)
        except ValueError:
            log.warning("ignored a line that is not JSON before initialize")
            continue
        if isinstance(msg, dict) and msg.get("method") == "initialize" and msg.get("id") is not None:
            return msg
        log.warning("ignored %r before initialize", msg.get("method") if isinstance(msg, dict) else msg)
