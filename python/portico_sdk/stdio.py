"""stdin and stdout as asyncio pipes. stdout belongs to the protocol: fd 1 is moved aside and
pointed at stderr, so a stray print() (or a C library's write to fd 1) lands in the log instead
of corrupting the frames."""
from __future__ import annotations

import asyncio
import os
import sys
import threading


class Output(asyncio.Protocol):
    """The protocol's write side, with backpressure from the pipe (drain)."""

    def __init__(self) -> None:
        self.transport: asyncio.WriteTransport | None = None
        self._paused = False
        self._resumed: asyncio.Future | None = None
        self._lost = False
        self.on_lost = None  # called when portico closes our stdout: it went away

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self._lost = True
        if self._resumed and not self._resumed.done():
            self._resumed.set_result(None)
        if self.on_lost is not None:
            self.on_lost()  # ends the read loop as stdin's end would: the app's shutdown runs, then exit
        else:
            self.exit(0)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._resumed and not self._resumed.done():
            self._resumed.set_result(None)

    def write(self, data: bytes) -> None:
        if not self._lost and self.transport is not None:
            self.transport.write(data)

    async def drain(self) -> None:
        # Every waiter shares one future: several streams may be waiting for the pipe at once.
        while self._paused and not self._lost:
            if self._resumed is None or self._resumed.done():
                self._resumed = asyncio.get_running_loop().create_future()
            await self._resumed

    async def flush(self, timeout: float = 5.0) -> None:
        """Waits until everything written has left for the pipe (before exiting)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.transport is not None and not self._lost and self.transport.get_write_buffer_size() > 0:
            if loop.time() > deadline:
                return
            await asyncio.sleep(0.005)

    @staticmethod
    def exit(code: int) -> None:
        """Leaves now: handler threads may be blocked, and nothing they hold matters any more."""
        try:
            sys.stderr.flush()
        finally:
            os._exit(code)


def take_stdio() -> tuple[int, int]:
    """(stdin fd, protocol stdout fd). After this, fd 1 and sys.stdout write to stderr."""
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    in_fd = os.dup(0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # input() and friends must not steal protocol bytes
    os.close(devnull)
    sys.stdin = open(os.devnull)  # noqa: SIM115
    return in_fd, out_fd


class _FileTransport:
    """For a stdout that is a regular file (a developer's `> out.txt`): plain blocking writes."""

    def __init__(self, fd: int):
        self.fd = fd

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def get_write_buffer_size(self) -> int:
        return 0


def _read_in_thread(loop: asyncio.AbstractEventLoop, fd: int, reader: asyncio.StreamReader) -> None:
    """For a stdin that is a regular file: a thread feeds the reader (no backpressure needed)."""
    while chunk := os.read(fd, 65536):
        loop.call_soon_threadsafe(reader.feed_data, chunk)
    loop.call_soon_threadsafe(reader.feed_eof)


async def open_pipes(in_fd: int, out_fd: int, line_limit: int) -> tuple[asyncio.StreamReader, Output]:
    """portico gives the plugin pipes; anything else (a file, when trying a plugin by hand) works
    too, without the pipes' non-blocking I/O."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=line_limit)
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(in_fd, "rb", buffering=0, closefd=False))
    except ValueError:
        threading.Thread(target=_read_in_thread, args=(loop, in_fd, reader), daemon=True, name="portico-stdin").start()
    out = Output()
    try:
        await loop.connect_write_pipe(lambda: out, os.fdopen(out_fd, "wb", buffering=0, closefd=False))
    except ValueError:
        out.connection_made(_FileTransport(out_fd))
    return reader, out
