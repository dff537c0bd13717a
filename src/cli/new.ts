/** portico new NAME --lang ts|python [--dir DIR] */
import { relative } from "node:path";
import { parseArgs } from "node:util";
import { LANGUAGES, type Language, scaffold } from "../scaffold/index.js";

export const NEW_USAGE = `  portico new    NAME [--lang ts|python] [--dir DIR]   write a working plugin in DIR/NAME
                                   (--lang default ts, --dir default the current folder)
`;

/** Writes the plugin and says what to do next. */
export function newPlugin(args: string[], usageError: (message: string) => Error): number {
  let parsed: ReturnType<typeof parseNew>;
  try {
    parsed = parseNew(args);
  } catch (err) {
    throw usageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) throw usageError("new needs one NAME, e.g. portico new hello --lang ts");
  const name = positionals[0] as string;
  const lang = values.lang ?? "ts";
  if (!LANGUAGES.includes(lang as Language)) throw usageError(`--lang ${lang}: use one of ${LANGUAGES.join(", ")}`);
  const parent = values.dir ?? ".";
  // A bad NAME or an occupied folder throws ScaffoldError: one line, exit 2, no usage text.
  const result = scaffold(name, lang as Language, parent);
  const shown = relative(process.cwd(), result.folder) || ".";
  const test = lang === "ts" ? "npm test" : "python3 -m unittest";
  process.stdout.write(
    `wrote ${shown}/: ${result.written.join(", ")}\n\n` +
      `serve it:  portico serve --plugins ${relative(process.cwd(), parent) || "."}   then   curl http://127.0.0.1:8080/${name}/\n` +
      `test it:   cd ${shown} && ${test}\n`,
  );
  return 0;
}

function parseNew(args: string[]) {
  return parseArgs({ args, allowPositionals: true, options: { lang: { type: "string" }, dir: { type: "string" } } });
}
