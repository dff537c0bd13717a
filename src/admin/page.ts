/**
 * The status page's three files, read once from src/admin/page/ (shipped as they are: no build
 * step). The path is the same from src/admin (tsx) and from dist/admin (the build).
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";

const DIR = fileURLToPath(new URL("../../src/admin/page/", import.meta.url));
const TYPES: Record<string, string> = {
  "index.html": "text/html; charset=utf-8",
  "admin.js": "text/javascript; charset=utf-8",
  "admin.css": "text/css; charset=utf-8",
};

const cache = new Map<string, Promise<Buffer>>();

export async function pageFile(name: string): Promise<{ type: string; body: Buffer }> {
  const type = TYPES[name];
  if (!type) throw new Error(`no page file ${name}`);
  let body = cache.get(name);
  if (!body) {
    body = readFile(`${DIR}${name}`);
    cache.set(name, body);
    body.catch(() => cache.delete(name));
  }
  return { type, body: await body };
}
