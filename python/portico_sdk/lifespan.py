"""ASGI lifespan: startup before the plugin answers `initialize`, shutdown on portico's `shutdown`
(or when portico goes away)."""
from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("portico_sdk")


class StartupFailed(Exception):
    pass


class Lifespan:
    """mode "auto": an app that raises before completing startup (Django's ASGIHandler, say) does
    not support lifespan, and is served without it; "on": that is an error; "off": never run."""

    def __init__(self, app, mode: str = "auto"):
        if mode not in ("auto", "on", "off"):
            raise ValueError('lifespan must be "auto", "on" or "off"')
        self.app = app
        self.mode = mode
        self.state: dict = {}
        self.supported = False
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._started: asyncio.Future | None = None
        self._stopped: asyncio.Future | None = None

    async def startup(self) -> None:
        if self.mode == "off":
            return
        loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._started = loop.create_future()
        self._stopped = loop.create_future()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        self._queue.put_nowait({"type": "lifespan.startup"})
        self._task = loop.create_task(self._run(scope))
        await asyncio.wait([self._started, self._task], return_when=asyncio.FIRST_COMPLETED)
        if self._started.done():
            self._started.result()  # raises StartupFailed
            self.supported = True
            log.debug("lifespan startup complete")
            return
        exc = self._task.exception()
        if self.mode == "on":
            raise StartupFailed(f"the app does not support lifespan: {exc!r}")
        log.debug("the app does not support ASGI lifespan (%r): serving without it", exc)

    async def shutdown(self) -> None:
        if not self.supported or self._queue is None or self._task is None or self._task.done():
            return
        self._queue.put_nowait({"type": "lifespan.shutdown"})
        await asyncio.wait([self._stopped, self._task], return_when=asyncio.FIRST_COMPLETED)
        if self._stopped.done() and self._stopped.exception() is not None:
            log.error("lifespan shutdown failed: %s", self._stopped.exception())

    async def _run(self, scope: dict) -> None:
        async def send(message: dict) -> None:
            kind = message["type"]
            if kind == "lifespan.startup.complete":
                _settle(self._started)
            elif kind == "lifespan.startup.failed":
                _settle(self._started, StartupFailed(message.get("message") or "lifespan.startup.failed"))
            elif kind == "lifespan.shutdown.complete":
                _settle(self._stopped)
            elif kind == "lifespan.shutdown.failed":
                _settle(self._stopped, StartupFailed(message.get("message") or "lifespan.shutdown.failed"))

        try:
            await self.app(scope, self._queue.get, send)
        except asyncio.CancelledError:
            raise  # the plugin is leaving
        except BaseException:
            if self._started.done():  # a failure after startup is worth a trace; before, it means "unsupported"
                log.exception("lifespan task failed")
            raise


def _settle(fut: asyncio.Future | None, exc: BaseException | None = None) -> None:
    if fut is not None and not fut.done():
        if exc is None:
            fut.set_result(None)
        else:
            fut.set_exception(exc)
