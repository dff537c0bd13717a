/**
 * Just enough Markdown for tests that hold the docs to the code: pipe tables (with the heading
 * they sit under), fenced code blocks (with the text just before them), links and heading slugs.
 */

export interface Table {
  /** The text of the last heading above the table. */
  heading: string;
  header: string[];
  rows: string[][];
}

export interface CodeBlock {
  lang: string;
  text: string;
  /** Up to 300 characters of the document just before the opening fence. */
  before: string;
}

/** Cells of one table row; `\|` inside a cell is a literal bar. */
export function cells(line: string): string[] {
  const parts = line
    .trim()
    .replace(/^\|/, "")
    .replace(/\|$/, "")
    .split(/(?<!\\)\|/);
  return parts.map((c) => c.trim().replaceAll("\\|", "|"));
}

/** The content of the first code span in a cell (`x` → x), or undefined. */
export function codeSpan(cell: string): string | undefined {
  return /`([^`]+)`/.exec(cell)?.[1];
}

/** Every pipe table, outside code blocks. */
export function tables(md: string): Table[] {
  const out: Table[] = [];
  const lines = md.split("\n");
  let heading = "";
  let fenced = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.startsWith("```")) fenced = !fenced;
    if (fenced) continue;
    if (/^#{1,6} /.test(line)) heading = line.replace(/^#+ /, "");
    const next = lines[i + 1] ?? "";
    if (!line.startsWith("|") || !/^\|(\s*:?-+:?\s*\|)+\s*$/.test(next)) continue;
    const table: Table = { heading, header: cells(line), rows: [] };
    for (i += 2; i < lines.length && (lines[i] as string).startsWith("|"); i++) table.rows.push(cells(lines[i] as string));
    i--;
    out.push(table);
  }
  return out;
}

/** The tables whose header starts with these column names. */
export function tablesWith(md: string, ...columns: string[]): Table[] {
  return tables(md).filter((t) => columns.every((c, i) => t.header[i]?.toLowerCase() === c));
}

export function codeBlocks(md: string): CodeBlock[] {
  const out: CodeBlock[] = [];
  const re = /^```(\w*)\n([\s\S]*?)^```$/gm;
  for (let m = re.exec(md); m; m = re.exec(md)) {
    out.push({ lang: m[1] ?? "", text: m[2] ?? "", before: md.slice(Math.max(0, m.index - 300), m.index) });
  }
  return out;
}

/** The first code block whose preceding text mentions `marker` (closest mention wins). */
export function blockAfter(md: string, marker: string, lang?: string): CodeBlock {
  const block = codeBlocks(md).find(
    (b) => (lang === undefined || b.lang === lang) && b.before.trimEnd().split("\n\n").pop()?.includes(marker),
  );
  if (!block) throw new Error(`no ${lang ?? ""} code block after a paragraph mentioning ${marker}`);
  return block;
}

/** Link targets outside code blocks: [text](target). */
export function links(md: string): string[] {
  const prose = md.replace(/^```[\s\S]*?^```$/gm, "");
  return [...prose.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1] as string);
}

/** GitHub's anchor for a heading: lower case, punctuation dropped (but - and _), spaces to -. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

export function headingSlugs(md: string): Set<string> {
  const prose = md.replace(/^```[\s\S]*?^```$/gm, "");
  return new Set([...prose.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1] as string)));
}
