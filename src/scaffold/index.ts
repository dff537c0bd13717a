/**
 * `portico new`: writes a plugin folder that `portico serve` mounts at once and whose own test
 * passes. The plugin id and the folder are NAME; the mount prefix is /NAME.
 */
import { existsSync, mkdirSync, readdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { DEFAULT_RESERVED_PREFIXES, RouteError, Router } from "../router/index.js";
import { pythonPlugin } from "./python.js";
import { typescriptPlugin } from "./typescript.js";

export const LANGUAGES = ["ts", "python"] as const;
export type Language = (typeof LANGUAGES)[number];

/** Files to write (path in the folder → text) and symbolic links (path → target). */
export interface Scaffold {
  files: Record<string, string>;
  links: Record<string, string>;
}

/** A NAME that can't be used, with what to do instead. */
export class ScaffoldError extends Error {}

// The plugin id rule (src/manifest/validate.ts); the name is the id, the folder and the prefix.
const NAME_RE = /^[a-z][a-z0-9_-]{0,63}$/;

/** This portico's own folder (the one holding package.json, dist/, src/ and python/). */
export const PORTICO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Throws ScaffoldError when NAME is not a plugin id or its prefix is the daemon's. */
export function checkName(name: string): void {
  if (!NAME_RE.test(name)) {
    throw new ScaffoldError(
      `"${name}" is not a valid plugin name: use a lowercase letter, then lowercase letters, digits, '_' or '-', at most 64 characters (e.g. "${suggest(name)}"); it becomes the plugin id, its folder and its prefix /NAME`,
    );
  }
  try {
    new Router(DEFAULT_RESERVED_PREFIXES).register({
      pluginId: name,
      prefix: `/${name}`,
      timeoutMs: 0,
      idleTimeoutMs: 0,
      maxBodyBytes: undefined,
    });
  } catch (err) {
    if (!(err instanceof RouteError)) throw err;
    throw new ScaffoldError(
      `"${name}" would mount at /${name}, which portico keeps for itself (${DEFAULT_RESERVED_PREFIXES.join(", ")}); choose another name`,
    );
  }
}

/** Writes the plugin folder `parent/NAME`; returns its path and the files written. */
export function scaffold(name: string, lang: Language, parent: string): { folder: string; written: string[] } {
  checkName(name);
  const folder = resolve(parent, name);
  if (existsSync(folder)) {
    if (!statSync(folder).isDirectory()) throw new ScaffoldError(`${folder} exists and is not a folder; choose another name or --dir`);
    if (readdirSync(folder).length > 0)
      throw new ScaffoldError(`${folder} exists and is not empty; choose another name or --dir, or remove it`);
  }
  const plan = lang === "ts" ? typescriptPlugin(name, PORTICO_ROOT, tsxLoader()) : pythonPlugin(name, PORTICO_ROOT);
  mkdirSync(folder, { recursive: true });
  const written: string[] = [];
  for (const [file, text] of Object.entries(plan.files)) {
    writeFileSync(join(folder, file), text);
    written.push(file);
  }
  for (const [link, target] of Object.entries(plan.links)) {
    mkdirSync(dirname(join(folder, link)), { recursive: true });
    symlinkSync(target, join(folder, link), "dir");
    written.push(`${link} → ${target}`);
  }
  return { folder, written };
}

/** The tsx loader in this portico's node_modules, as a file: URL for `node --import`. */
function tsxLoader(): string {
  try {
    return import.meta.resolve("tsx");
  } catch {
    throw new ScaffoldError(`a TypeScript plugin is run with tsx, which is not installed in ${PORTICO_ROOT}: run npm ci there first`);
  }
}

function suggest(raw: string): string {
  const s = raw
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, "-")
    .replace(/^[^a-z]+/, "")
    .slice(0, 64);
  return s === "" ? "my-plugin" : s;
}
