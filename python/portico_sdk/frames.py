"""Protocol v2 framing (docs/protocol.md §2): a 10-byte header, then the payload."""
from __future__ import annotations

import json
import struct

RPC, HEAD, DATA, WINDOW, RESET, WS = 0, 1, 2, 3, 4, 5
END = 0x01
HEADER = struct.Struct(">BBII")  # type u8, flags u8, stream id u32, length u32, big-endian
MAX_PAYLOAD = 16 * 1024 * 1024  # a longer frame is a protocol error
MAX_DATA_FRAME = 64 * 1024  # §4: bigger DATA frames hold up the other streams
DEFAULT_WINDOW = 1024 * 1024

WS_TEXT, WS_BINARY, WS_CLOSE, WS_PING, WS_PONG = 1, 2, 8, 9, 10


class ProtocolError(Exception):
    """The host sent something this side cannot use: the plugin exits (the host restarts it)."""


def frame(ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(ftype, flags, stream_id, len(payload)) + payload


def json_bytes(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def json_frame(ftype: int, flags: int, stream_id: int, obj: object) -> bytes:
    return frame(ftype, flags, stream_id, json_bytes(obj))


def close_payload(code: int | None, reason: str = "") -> bytes:
    """A WebSocket close message: u16 code then the UTF-8 reason, or empty for "no code"."""
    if code is None:
        return b""
    return struct.pack(">H", code) + reason.encode()[:123]


def parse_close(payload: bytes) -> tuple[int, str]:
    """(code, reason) of a close message; 1005 (no status) when it has no code."""
    if len(payload) < 2:
        return 1005, ""
    return struct.unpack(">H", payload[:2])[0], payload[2:].decode("utf-8", "replace")
