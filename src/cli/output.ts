/** How commands print what they did: JSON under --json (for scripts), text for people otherwise. */

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** `json` as JSON under --json, else `text()` as it is (built only when it is printed). */
export function printResult(opts: { json?: boolean }, json: unknown, text: () => string): void {
  if (opts.json === true) printJson(json);
  else process.stdout.write(text());
}

/** Left-aligned columns separated by two spaces. */
export function renderTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** `key: value` lines, the values aligned at `width` (default: one space past the longest key). */
export function renderFields(rows: readonly (readonly [string, string])[], width?: number): string {
  const at = width ?? Math.max(...rows.map(([k]) => k.length)) + 2;
  return rows.map(([k, v]) => `${`${k}:`.padEnd(at)}${v}\n`).join('');
}
