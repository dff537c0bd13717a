"""The FastAPI app bench/python.mjs serves two ways: as a portico plugin (plugin.py, serve_asgi)
and under uvicorn behind nginx. Routes are written without the mount prefix (/app)."""
import asyncio

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

app = FastAPI()
SMALL = "hello from fastapi!\n"


@app.get("/small")
async def small():
    return PlainTextResponse(SMALL)


@app.get("/bytes")
async def some_bytes(n: int = 1024):
    return Response(b"x" * n, media_type="application/octet-stream")


@app.post("/count")
async def count(request: Request):
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
    return PlainTextResponse(str(total))


@app.get("/events")
async def events(n: int = 10, interval: int = 10):
    async def gen():
        for i in range(n):
            if i:
                await asyncio.sleep(interval / 1000)
            yield f"data: {i}\n\n"

    return StreamingResponse(gen(), media_type="text/event-stream")
