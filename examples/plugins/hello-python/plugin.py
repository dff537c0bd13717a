"""A portico/nexo plugin in plain Python: newline-delimited JSON-RPC 2.0 on stdin/stdout.

Standard library only, to show that any language that can read and write lines can be a plugin.
stdout carries protocol frames only; log to stderr.
"""
import base64
import json
import sys
import uuid
from datetime import datetime, timezone

PLUGIN_ID = "hello_python"
MANIFEST = {"plugin": {"id": PLUGIN_ID, "version": "0.1.0", "name": "Hello (Python)",
                       "description": "plain Python plugin"}}


def send(frame):
    # One compact JSON object per line; json.dumps escapes any CR/LF inside strings.
    sys.stdout.write(json.dumps(frame, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def handle(req):
    """req: {method, path, query, headers: [[k, v], ...], body_base64} -> reply dict."""
    prefix = next((v for k, v in req["headers"] if k.lower() == "x-forwarded-prefix"), "")
    path = req["path"][len(prefix):] or "/"
    body = base64.b64decode(req.get("body_base64") or "")
    if path == "/":
        return 200, [["Content-Type", "text/plain; charset=utf-8"]], b"hello from Python\n"
    if path == "/echo":
        ctype = next((v for k, v in req["headers"] if k.lower() == "content-type"), "application/octet-stream")
        return 200, [["Content-Type", ctype]], body
    if path == "/json":
        out = {"plugin": PLUGIN_ID, "method": req["method"], "path": req["path"], "query": req["query"]}
        return 200, [["Content-Type", "application/json"]], json.dumps(out).encode()
    return 404, [["Content-Type", "application/json"]], json.dumps({"error": "not found"}).encode()


def reply(reply_to, status, headers, body):
    now = datetime.now(timezone.utc).isoformat()
    send({"jsonrpc": "2.0", "method": "broker.publish", "params": {
        "topic": reply_to,
        "event": {"id": str(uuid.uuid4()), "timestamp": now, "topic": reply_to, "source": PLUGIN_ID,
                  "session_id": None,
                  "payload": {"id": str(uuid.uuid4()), "topic": reply_to, "reply_to": None,
                              "payload": {"status": status, "headers": headers,
                                          "body_base64": base64.b64encode(body).decode("ascii")}}}}})


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            log("ignored a non-JSON line")
            continue
        method = msg.get("method")
        if method == "initialize":
            send({"jsonrpc": "2.0", "id": msg["id"],
                  "result": {"manifest": MANIFEST, "server_version": "hello-python/0.1.0"}})
            log("initialized")
        elif method == "shutdown":
            send({"jsonrpc": "2.0", "id": msg["id"], "result": {"ok": True}})
            return
        elif method == "broker.event":
            message = msg["params"]["event"]["payload"]
            try:
                status, headers, body = handle(message["payload"])
            except Exception as exc:  # a bug in a handler must not kill the plugin
                log("handler failed:", repr(exc))
                status, headers, body = 500, [["Content-Type", "text/plain"]], b"internal error\n"
            reply(message["reply_to"], status, headers, body)
        elif "id" in msg and method:
            send({"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -32601, "message": "method not found"}})


if __name__ == "__main__":
    main()
