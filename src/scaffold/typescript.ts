/**
 * `portico new NAME --lang ts`: a plugin on portico's TypeScript SDK.
 *
 * A folder outside portico's repository has no node_modules of its own, so the scaffold makes it
 * resolve like an installed dependency without a network or an `npm install`: it links
 * node_modules/portico to this portico (so `import "portico/sdk"` finds its SDK, and the SDK its
 * own dependencies), and the manifest runs the TypeScript with the tsx loader from this portico's
 * node_modules, by absolute path.
 */
import type { Scaffold } from "./index.js";

export function typescriptPlugin(name: string, porticoRoot: string, tsxLoader: string): Scaffold {
  const prefix = `/${name}`;
  return {
    links: { "node_modules/portico": porticoRoot },
    files: {
      "nexo-plugin.toml": `[plugin]
id = "${name}"
version = "0.1.0"
name = "${name}"
description = "A portico plugin in TypeScript (made by portico new)."

[plugin.entrypoint]
# tsx runs plugin.ts as it is; it comes from portico's own node_modules (see README.md).
command = "node"
args = ["--import", ${JSON.stringify(tsxLoader)}, "plugin.ts"]

[plugin.http]
mount_prefix = "${prefix}"
timeout_seconds = 30
`,
      "handler.ts": `// The plugin's logic: one WHATWG fetch handler, Request in, Response out. plugin.ts serves it;
// handler.test.ts calls it directly.

export async function handler(request: Request): Promise<Response> {
  const url = new URL(request.url);
  // request.url carries the whole path, mount prefix included; the prefix is also in X-Forwarded-Prefix.
  const prefix = request.headers.get("x-forwarded-prefix") ?? "${prefix}";
  const path = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) || "/" : url.pathname;
  if (path === "/") {
    return new Response("hello from ${name}\\n", { headers: { "content-type": "text/plain; charset=utf-8" } });
  }
  if (path === "/json") {
    return Response.json({ plugin: "${name}", method: request.method, query: Object.fromEntries(url.searchParams) });
  }
  return Response.json({ error: "not found", path }, { status: 404 });
}
`,
      "plugin.ts": `// Serves handler.ts as a portico plugin: run by portico (see nexo-plugin.toml), not by hand.
// console.log goes to stderr, which portico copies into its log; stdout carries the protocol.
import { serve } from "portico/sdk";
import { handler } from "./handler.js";

serve({ fetch: handler });
`,
      "handler.test.ts": `// npm test (or: node --import <tsx> --test handler.test.ts, as in package.json)
import assert from "node:assert/strict";
import { test } from "node:test";
import { handler } from "./handler.js";

const get = (path: string) => handler(new Request(\`http://127.0.0.1\${path}\`, { headers: { "x-forwarded-prefix": "${prefix}" } }));

test("GET ${prefix}/ says hello", async () => {
  const res = await get("${prefix}/");
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "hello from ${name}\\n");
});

test("GET ${prefix}/json answers the query as JSON", async () => {
  const res = await get("${prefix}/json?x=1");
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { plugin: "${name}", method: "GET", query: { x: "1" } });
});

test("anything else is 404", async () => {
  assert.equal((await get("${prefix}/nope")).status, 404);
});
`,
      "package.json": `${JSON.stringify(
        {
          name,
          version: "0.1.0",
          private: true,
          type: "module",
          scripts: { test: `node --import ${tsxLoader} --test handler.test.ts` },
          dependencies: { portico: `file:${porticoRoot}` },
        },
        null,
        2,
      )}\n`,
      "tsconfig.json": `${JSON.stringify(
        {
          compilerOptions: {
            target: "ES2022",
            module: "NodeNext",
            moduleResolution: "NodeNext",
            lib: ["ES2023"],
            types: ["node"],
            typeRoots: [`${porticoRoot}/node_modules/@types`],
            strict: true,
            noEmit: true,
            skipLibCheck: true,
          },
          include: ["*.ts"],
        },
        null,
        2,
      )}\n`,
      "README.md": `# ${name}

A portico plugin in TypeScript, mounted at \`${prefix}\`, made by \`portico new ${name} --lang ts\`.

| file | what it is |
|---|---|
| \`nexo-plugin.toml\` | the manifest: id, the command portico runs, the mount prefix |
| \`handler.ts\` | the plugin's logic: a fetch handler (\`Request\` in, \`Response\` out) |
| \`plugin.ts\` | serves the handler with portico's SDK (\`import { serve } from "portico/sdk"\`) |
| \`handler.test.ts\` | its test (\`node:test\`) |

Serve it (from the folder that holds this one):

\`\`\`sh
portico serve --plugins .
curl http://127.0.0.1:8080${prefix}/
curl "http://127.0.0.1:8080${prefix}/json?x=1"
\`\`\`

Test it: \`npm test\` in this folder.

No \`npm install\` is needed: \`node_modules/portico\` is a link to the portico at
\`${porticoRoot}\` (its SDK and that SDK's dependencies), and the manifest and \`npm test\` run the
TypeScript with the tsx loader from that portico's \`node_modules\`. Moved to another machine,
recreate the link (\`ln -s /path/to/portico node_modules/portico\`) and fix the two tsx paths (in
\`nexo-plugin.toml\` and \`package.json\`).

Streaming responses, request bodies, WebSockets and cancellation: see "Writing a plugin" in
portico's README.
`,
    },
  };
}
