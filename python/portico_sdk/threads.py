"""Blocking code (WSGI apps, plain handlers) on worker threads, talking to the event loop that owns
the protocol. Every call from a worker waits for the loop's answer, so a worker that writes faster
than the client reads blocks on credit, and one that reads the body blocks until bytes come."""
from __future__ import annotations

import asyncio
import concurrent.futures
import io
import threading


class Bridge:
    def __init__(self, threads: int):
        self.threads = threads
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="portico-worker")

    def call(self, coro):
        """Runs `coro` on the loop and waits for it (from a worker thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def run(self, fn, *args):
        """Runs blocking `fn(*args)` on a worker (from the loop)."""
        return await self.loop.run_in_executor(self.pool, fn, *args)


class BodyReader(io.RawIOBase):
    """The request body as a blocking file (wsgi.input): each read takes what portico sent and so
    grants credit back; nothing is read ahead. read(n) returns n bytes unless the body ends first."""

    def __init__(self, bridge: Bridge, ex):
        super().__init__()
        self._bridge = bridge
        self._ex = ex
        self._buf = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        if self._eof:
            return False
        chunk = self._bridge.call(self._ex.read())
        if not chunk:
            self._eof = True
            return False
        self._buf = self._buf + chunk if self._buf else chunk
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = [self._buf]
            self._buf = b""
            while self._fill():
                parts.append(self._buf)
                self._buf = b""
            return b"".join(parts)
        while len(self._buf) < size and self._fill():
            pass
        out, self._buf = self._buf[:size], self._buf[size:]
        return out

    def read1(self, size: int = -1) -> bytes:
        """What is at hand, or the next chunk: for readers that want to stream."""
        if not self._buf:
            self._fill()
        if size is None or size < 0:
            size = len(self._buf)
        out, self._buf = self._buf[:size], self._buf[size:]
        return out

    def readinto(self, b) -> int:
        data = self.read1(len(b))
        b[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        limit = size if size is not None and size >= 0 else None
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0 and (limit is None or nl < limit):
                out, self._buf = self._buf[: nl + 1], self._buf[nl + 1:]
                return out
            if limit is not None and len(self._buf) >= limit:
                out, self._buf = self._buf[:limit], self._buf[limit:]
                return out
            if not self._fill():
                out, self._buf = self._buf, b""
                return out

    def __iter__(self):
        while line := self.readline():
            yield line


async def watch_cancel(ex, cancelled: threading.Event) -> None:
    """Sets `cancelled` when the client goes away mid-exchange (portico's RESET)."""
    await ex.wait_done()
    if ex.disconnected:
        cancelled.set()


class ThreadedAdapter:
    """An app called on a worker thread per exchange (WSGI, the plain handler): `_run` does the work."""

    def __init__(self, threads: int = 32):
        self.bridge = Bridge(threads)

    def bind(self, loop) -> None:
        self.bridge.bind(loop)

    async def startup(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def handle(self, ex) -> None:
        cancelled = threading.Event()
        watcher = self.bridge.loop.create_task(watch_cancel(ex, cancelled))
        try:
            await self.bridge.run(self._run, ex, cancelled)
        finally:
            watcher.cancel()

    def _run(self, ex, cancelled: threading.Event) -> None:
        raise NotImplementedError
