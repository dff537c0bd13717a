"""An ordinary FastAPI app: nothing in it knows about portico. Its routes do not include the
mount prefix; url_for adds it (root_path)."""
import asyncio

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

app = FastAPI()


@app.get("/")
async def index(request: Request):
    return {"hello": "fastapi", "item_7": str(request.url_for("item", item_id="7"))}


@app.get("/items/{item_id}", name="item")
async def item(item_id: int, q: str = ""):
    return {"id": item_id, "q": q}


@app.get("/events")
async def events(n: int = 5):
    async def gen():
        for i in range(n):
            yield f"data: {i}\n\n"
            await asyncio.sleep(0.5)

    return StreamingResponse(gen(), media_type="text/event-stream")


@app.websocket("/ws")
async def ws(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass
