/**
 * Consul's CLI takes long flags with one dash (`-data-dir=/x`, `-dev`); commander wants two.
 * Rewrite `-name` and `-name=value` to `--name...` before parsing, leaving single-letter short
 * flags, negative numbers and everything after `--` untouched.
 */
export function normalizeArgv(args: readonly string[]): string[] {
  const out: string[] = [];
  let rest = false;
  for (const a of args) {
    if (rest || a === '--') {
      rest = true;
      out.push(a);
    } else if (/^-[a-zA-Z][a-zA-Z0-9-]+(=.*)?$/s.test(a)) {
      out.push(`-${a}`);
    } else {
      out.push(a);
    }
  }
  return out;
}
