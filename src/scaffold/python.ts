/**
 * `portico new NAME --lang python`: a plain ASGI 3 application (no framework), served with
 * portico's Python SDK (`from portico_sdk import serve_asgi`). The SDK lives in portico's
 * repository, under python/: the manifest puts that folder on PYTHONPATH, so nothing is installed.
 * The test uses the standard library only (unittest, asyncio) and calls the app directly.
 */
import { join } from "node:path";
import type { Scaffold } from "./index.js";

export function pythonPlugin(name: string, porticoRoot: string): Scaffold {
  const prefix = `/${name}`;
  const sdkDir = join(porticoRoot, "python");
  return {
    links: {},
    files: {
      "nexo-plugin.toml": `[plugin]
id = "${name}"
version = "0.1.0"
name = "${name}"
description = "A portico plugin in Python: a plain ASGI app (made by portico new)."

[plugin.entrypoint]
command = "python3"
args = ["plugin.py"]
# portico's Python SDK, from the portico that made this plugin (see README.md).
env = { PYTHONPATH = ${JSON.stringify(sdkDir)} }

[plugin.http]
mount_prefix = "${prefix}"
timeout_seconds = 30
`,
      "app.py": `"""${name}: a plain ASGI 3 application (no framework). plugin.py serves it; test_app.py calls it."""
import json
from urllib.parse import parse_qsl

PREFIX = "${prefix}"


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    # The path after the mount prefix, whether or not scope["path"] carries root_path.
    root = scope.get("root_path") or PREFIX
    path = scope["path"]
    if path == root or path.startswith(root + "/"):
        path = path[len(root):] or "/"
    if path == "/":
        await respond(send, 200, "text/plain; charset=utf-8", "hello from ${name}\\n".encode())
    elif path == "/json":
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        body = json.dumps({"plugin": "${name}", "method": scope["method"], "query": query}).encode()
        await respond(send, 200, "application/json", body)
    else:
        await respond(send, 404, "application/json", json.dumps({"error": "not found", "path": path}).encode())


async def respond(send, status, content_type, body):
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type.encode())]})
    await send({"type": "http.response.body", "body": body})
`,
      "plugin.py": `"""Serves app.py as a portico plugin: run by portico (see nexo-plugin.toml), not by hand.
print() goes to stderr, which portico copies into its log; stdout carries the protocol."""
from portico_sdk import serve_asgi

from app import app

serve_asgi(app)
`,
      "test_app.py": `"""python3 -m unittest (in this folder): calls the ASGI app directly, standard library only."""
import asyncio
import json
import unittest

from app import app


def call(path, query=b""):
    """Runs one GET through the app; returns (status, headers, body)."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "${prefix}", "query_string": query,
        "headers": [(b"host", b"127.0.0.1")],
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


class AppTest(unittest.TestCase):
    def test_hello(self):
        status, headers, body = call("${prefix}/")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"hello from ${name}\\n")

    def test_json(self):
        status, headers, body = call("${prefix}/json", b"x=1")
        self.assertEqual(status, 200)
        self.assertEqual(headers[b"content-type"], b"application/json")
        self.assertEqual(json.loads(body), {"plugin": "${name}", "method": "GET", "query": {"x": "1"}})

    def test_not_found(self):
        self.assertEqual(call("${prefix}/nope")[0], 404)


if __name__ == "__main__":
    unittest.main()
`,
      "README.md": `# ${name}

A portico plugin in Python, mounted at \`${prefix}\`, made by \`portico new ${name} --lang python\`.

| file | what it is |
|---|---|
| \`nexo-plugin.toml\` | the manifest: id, the command portico runs, the mount prefix |
| \`app.py\` | the plugin's logic: a plain ASGI 3 application, no framework |
| \`plugin.py\` | serves the app with portico's Python SDK (\`from portico_sdk import serve_asgi\`) |
| \`test_app.py\` | its test (\`unittest\`, standard library only) |

Serve it (from the folder that holds this one):

\`\`\`sh
portico serve --plugins .
curl http://127.0.0.1:8080${prefix}/
curl "http://127.0.0.1:8080${prefix}/json?x=1"
\`\`\`

Test it: \`python3 -m unittest\` in this folder.

Nothing is installed: the manifest sets \`PYTHONPATH\` to \`${sdkDir}\`, the Python SDK in the
portico that made this plugin. Moved to another machine, point it at that machine's portico, or
\`pip install\` portico's \`python/\` folder and drop the \`env\` line. Any ASGI app (FastAPI,
Starlette, Django's ASGI application) can take the place of \`app.py\`'s.
`,
    },
  };
}
