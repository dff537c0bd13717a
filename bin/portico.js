#!/usr/bin/env node
// The CLI runs from dist/ (built by `npm ci` through the prepare script, or `npm run build`).
import { existsSync } from "node:fs";

const entry = new URL("../dist/cli/main.js", import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write("portico: dist/ is missing; run `npm run build` (npm ci does it for you)\n");
  process.exit(1);
}
await import(entry.href);
