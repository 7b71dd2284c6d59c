import { readFileSync, readdirSync } from 'node:fs';

/** The .ts files of a source folder (a URL ending in '/'), sorted, with their text. */
export function sourceFiles(dir: URL): Array<{ file: string; source: string }> {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ts'))
    .sort()
    .map((file) => ({ file, source: readFileSync(new URL(file, dir), 'utf8') }));
}

/** Every module specifier in `source`: static imports and re-exports, side-effect imports, import(), require(). */
export function specifiers(source: string): string[] {
  const patterns = [
    /\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"`]([^'"`]*)['"`]/g,
    /\brequire\s*\(\s*['"`]([^'"`]*)['"`]/g,
  ];
  const out: string[] = [];
  for (const re of patterns) for (const m of source.matchAll(re)) out.push(m[1] as string);
  return out;
}
