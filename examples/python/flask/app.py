"""An ordinary Flask app: nothing in it knows about portico. SCRIPT_NAME is the mount prefix, so
routes do not include it and url_for adds it."""
import time

from flask import Flask, Response, jsonify, request, url_for

app = Flask(__name__)


@app.get("/")
def index():
    return jsonify(hello="flask", item_7=url_for("item", item_id=7))


@app.get("/items/<int:item_id>")
def item(item_id):
    return jsonify(id=item_id, q=request.args.get("q", ""))


@app.get("/stream")
def stream():
    def gen():  # each yield reaches the client as it is produced
        for i in range(5):
            yield f"data: {i}\n\n"
            time.sleep(0.5)

    return Response(gen(), mimetype="text/event-stream")


@app.post("/count")
def count():
    total = 0
    while chunk := request.stream.read(65536):  # the upload, as it arrives
        total += len(chunk)
    return jsonify(bytes=total)
