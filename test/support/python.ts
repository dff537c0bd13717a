/**
 * Helpers for the Python SDK's end-to-end tests (test/python-*.e2e.test.ts): an interpreter that
 * can import the frameworks a test needs (Debian's packages are for /usr/bin/python3; a pyenv
 * python3 on PATH may not see them), plugin specs for the fixture apps under
 * test/fixtures/python/, and the body pattern those apps send.
 */
import { spawnSync } from "node:child_process";
import { get as httpGet } from "node:http";
import { fileURLToPath } from "node:url";
import { crc32 } from "node:zlib";
import type { PluginSpec } from "./portico.js";
import { within } from "./v2.js";

export const PY_SDK = fileURLToPath(new URL("../../python", import.meta.url));
export const PY_FIXTURES = fileURLToPath(new URL("../fixtures/python/", import.meta.url));

/** The Debian package that provides each module the fixtures import. */
const DEBIAN: Record<string, string> = {
  fastapi: "python3-fastapi",
  starlette: "python3-starlette",
  flask: "python3-flask",
  django: "python3-django",
  uvicorn: "python3-uvicorn",
};

const CANDIDATES = ["/usr/bin/python3", "python3", "python3.11"];
const found = new Map<string, string>();

/**
 * The first Python 3.11+ that imports all of `modules`; otherwise an error naming the Debian
 * packages to install (scripts/install-system-deps.sh installs them).
 */
export function pythonWith(modules: string[]): string {
  const key = modules.join(",");
  const cached = found.get(key);
  if (cached) return cached;
  const check = `import sys; assert sys.version_info >= (3, 11), sys.version\n${modules.map((m) => `import ${m}`).join("\n")}`;
  const errors: string[] = [];
  for (const python of CANDIDATES) {
    const r = spawnSync(python, ["-c", check], { encoding: "utf8", timeout: 30_000 });
    if (r.status === 0) {
      found.set(key, python);
      return python;
    }
    errors.push(`${python}: ${r.error ? r.error.message : (r.stderr.trim().split("\n").pop() ?? `exit ${r.status}`)}`);
  }
  const packages = modules.map((m) => DEBIAN[m] ?? `python3-${m}`).join(" ");
  throw new Error(
    `no Python 3.11+ here imports ${modules.join(", ")}: install the Debian packages ${packages} ` +
      `(sh scripts/install-system-deps.sh). Tried ${errors.join("; ")}`,
  );
}

/** A fixture app under test/fixtures/python/ as a plugin, with the SDK on PYTHONPATH. */
export function pySpec(
  id: string,
  file: string,
  python: string,
  opts: { prefix?: string; http?: string; env?: Record<string, string> } = {},
): PluginSpec {
  return {
    id,
    prefix: opts.prefix,
    command: python,
    args: [`${PY_FIXTURES}${file}`],
    http: opts.http,
    env: { PYTHONPATH: `${PY_SDK}:${PY_FIXTURES}`, PYTHONDONTWRITEBYTECODE: "1", ...opts.env },
  };
}

/** The fixtures' download body: byte i is i % 251. */
const PATTERN = Buffer.from(Array.from({ length: 64 * 1024 + 502 }, (_, i) => i % 251));

/** Length and CRC-32 of the fixtures' `n`-byte download body, computed without holding it. */
export function patternCrc(n: number): { bytes: number; crc: number } {
  let crc = 0;
  for (let at = 0; at < n; at += 64 * 1024) {
    const size = Math.min(64 * 1024, n - at);
    const start = at % 251;
    crc = crc32(PATTERN.subarray(start, start + size), crc);
  }
  return { bytes: n, crc };
}

/** Reads a streamed GET, noting when each line arrived (ms since the request). */
export function linesWithArrival(url: string, ms = 15_000): Promise<{ status: number; lines: { at: number; text: string }[] }> {
  const t0 = Date.now();
  return within(
    new Promise((resolve, reject) => {
      const req = httpGet(url, { agent: false }, (res) => {
        const lines: { at: number; text: string }[] = [];
        let rest = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          const at = Date.now() - t0;
          rest += c;
          for (let i = rest.indexOf("\n"); i >= 0; i = rest.indexOf("\n")) {
            if (i > 0) lines.push({ at, text: rest.slice(0, i) });
            rest = rest.slice(i + 1);
          }
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, lines }));
        res.on("error", reject);
      });
      req.on("error", reject);
    }),
    `GET ${url}`,
    ms,
  );
}

/** Opens a streamed GET, waits for its first `bytes`, then destroys the connection (a client going away). */
export function readThenHangUp(url: string, bytes = 1): Promise<string> {
  return within(
    new Promise((resolve, reject) => {
      const req = httpGet(url, { agent: false }, (res) => {
        let got = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          got += c;
          if (got.length >= bytes) {
            req.destroy();
            resolve(got);
          }
        });
        res.on("error", () => {});
      });
      req.on("error", (err) => {
        if (!req.destroyed) reject(err);
      });
    }),
    `the start of ${url}`,
  );
}
