import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { parse, type TomlTable } from "smol-toml";
import type { ManifestProblem, PluginManifest } from "./types.js";
import { validateManifest } from "./validate.js";

export { mountPrefixProblem, suggestMountPrefix } from "./mount-prefix.js";
export * from "./types.js";

/** The file name nexo looks for in each plugin folder. */
export const MANIFEST_FILE = "nexo-plugin.toml";

type Loaded = { manifest?: PluginManifest; problems: ManifestProblem[] };

export interface ManifestOptions {
  /** A NATS gateway's manifests: an HTTP plugin without a command is a nexo plugin on NATS. */
  commandOptional?: boolean;
}

/** Parse and validate one manifest's text. Never throws. manifest is set only when problems is empty. */
export function parseManifest(text: string, file: string, opts: ManifestOptions = {}): Loaded {
  const abs = path.resolve(file);
  let doc: TomlTable;
  try {
    // Integers as bigint keep TOML's integer/float distinction, which the messages and
    // max_body_bytes rely on, and a huge integer elsewhere in a nexo manifest cannot fail the parse.
    doc = parse(text, { integersAsBigInt: true });
  } catch (err) {
    return { problems: [syntaxProblem(err, abs)] };
  }
  return validateManifest(doc, abs, opts);
}

/** Read and parse one file (absolute or relative path; file in results is absolute). Never throws. */
export async function loadManifest(file: string, opts: ManifestOptions = {}): Promise<Loaded> {
  const abs = path.resolve(file);
  let bytes: Buffer;
  try {
    bytes = await readFile(abs);
  } catch (err) {
    return {
      problems: [
        { file: abs, key: "(file)", message: `cannot read the file: ${errorText(err)}`, fix: "check that the file exists and is readable" },
      ],
    };
  }
  let text: string;
  try {
    // fatal: TOML must be UTF-8, and silently replacing bad bytes would change the values read.
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return {
      problems: [{ file: abs, key: "(file)", message: "is not valid UTF-8 text", fix: "save the file as UTF-8 (TOML requires it)" }],
    };
  }
  return parseManifest(text, abs, opts);
}

/**
 * Every DIR/<folder>/nexo-plugin.toml, one level deep, sorted by plugin id (then file). Folders
 * without a manifest are skipped silently; a manifest with problems is left out and its problems
 * returned. Of two manifests with the same id, the second in file-path order is refused.
 */
export async function discoverPlugins(
  dir: string,
  opts: ManifestOptions = {},
): Promise<{ manifests: PluginManifest[]; problems: ManifestProblem[] }> {
  const root = path.resolve(dir);
  let names: string[];
  try {
    names = await readdir(root);
  } catch (err) {
    return {
      manifests: [],
      problems: [
        {
          file: root,
          key: "(dir)",
          message: `cannot read the plugins directory: ${errorText(err)}`,
          fix: "create it, or point portico at the folder that holds one sub-folder per plugin",
        },
      ],
    };
  }

  // Plain code-unit order rather than localeCompare, so "first" means the same on every machine.
  const files = names.map((n) => path.join(root, n, MANIFEST_FILE)).sort(byCodeUnit);
  const loaded = await Promise.all(files.map(async (f) => ((await hasManifest(f)) ? loadManifest(f, opts) : undefined)));

  const problems: ManifestProblem[] = [];
  const byId = new Map<string, PluginManifest>();
  for (const result of loaded) {
    if (result === undefined) continue;
    problems.push(...result.problems);
    const m = result.manifest;
    if (m === undefined) continue;
    const first = byId.get(m.id);
    if (first === undefined) {
      byId.set(m.id, m);
      continue;
    }
    problems.push({
      file: m.file,
      key: "plugin.id",
      message: `plugin id ${JSON.stringify(m.id)} is already used by ${first.file}`,
      fix: `give one of the two plugins a different id, or remove one of ${first.file} and ${m.file}`,
    });
  }
  const manifests = [...byId.values()].sort((a, b) => byCodeUnit(a.id, b.id) || byCodeUnit(a.file, b.file));
  return { manifests, problems };
}

/** One line for humans: `<file>: <key>: <message> — fix: <fix>` */
export function formatProblem(p: ManifestProblem): string {
  return `${p.file}: ${p.key}: ${p.message} — fix: ${p.fix}`;
}

/** A folder without a manifest (or a plain file in DIR) is not a plugin; anything else is loaded and reported. */
async function hasManifest(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code !== "ENOENT" && code !== "ENOTDIR";
  }
}

function syntaxProblem(err: unknown, file: string): ManifestProblem {
  const e = err as { message?: unknown; line?: unknown; column?: unknown };
  // smol-toml's message is "Invalid TOML document: <what>" followed by a code excerpt; keep <what>.
  const firstLine = String(e.message ?? err).split("\n", 1)[0] ?? "";
  const what = firstLine.replace(/^Invalid TOML document:\s*/, "");
  if (typeof e.line === "number" && typeof e.column === "number") {
    return {
      file,
      key: "(file)",
      message: `TOML syntax error at line ${e.line}, column ${e.column}: ${what}`,
      fix: `correct the TOML syntax at line ${e.line}`,
    };
  }
  return { file, key: "(file)", message: `cannot parse the file: ${what}`, fix: "correct the TOML syntax" };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
