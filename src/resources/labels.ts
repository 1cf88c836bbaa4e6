import { createRequire } from 'node:module';

/**
 * Label and tag matching shared by discovery matchers and roles (docs/architecture.md §2): every selector key
 * must be present; a value matches when any listed value does; "*" matches anything; "^...$" is a
 * regular expression with RE2 semantics (Teleport uses Go's regexp); anything else is a glob on
 * the whole value. A "*" key matches any labels.
 *
 * Tag values are written by anyone who can tag a cluster in a watched account, so matching must
 * take linear time whatever the pattern: regular expressions run on re2js (an RE2 port, no
 * backtracking) and globs on a two-pointer matcher, never on JavaScript's backtracking RegExp.
 */
export type LabelSelector = Record<string, string | string[]>;

interface Re2Pattern {
  matcher(input: string): { find(): boolean };
}

const compiled = new Map<string, Re2Pattern>();
let re2: { compile(pattern: string, flags?: number): Re2Pattern; DOTALL: number } | undefined;

/** re2js costs ~20 ms to load, so only selectors that use a regular expression pay for it. */
function compileRe2(pattern: string): Re2Pattern {
  re2 ??= (createRequire(import.meta.url)('re2js') as { RE2JS: NonNullable<typeof re2> }).RE2JS;
  return re2.compile(pattern);
}

export function isRegexPattern(pattern: string): boolean {
  return pattern.length >= 2 && pattern.startsWith('^') && pattern.endsWith('$');
}

export function valueMatches(pattern: string, value: string): boolean {
  if (pattern === '*') return true;
  if (!isRegexPattern(pattern)) return globMatches(pattern, value);
  let re = compiled.get(pattern);
  if (!re) {
    re = compileRe2(pattern);
    compiled.set(pattern, re);
  }
  return re.matcher(value).find();
}

/** `*` is any run of characters, `?` one character; O(pattern x value) at worst. */
export function globMatches(glob: string, value: string): boolean {
  let g = 0;
  let v = 0;
  let starG = -1;
  let starV = 0;
  while (v < value.length) {
    if (g < glob.length && (glob[g] === '?' || glob[g] === value[v])) {
      g++;
      v++;
    } else if (g < glob.length && glob[g] === '*') {
      starG = g++;
      starV = v;
    } else if (starG >= 0) {
      g = starG + 1;
      v = ++starV;
    } else {
      return false;
    }
  }
  while (g < glob.length && glob[g] === '*') g++;
  return g === glob.length;
}

export function matchLabels(selector: LabelSelector, labels: Record<string, string>): boolean {
  for (const [key, wanted] of Object.entries(selector)) {
    const patterns = Array.isArray(wanted) ? wanted : [wanted];
    if (key === '*') {
      if (patterns.includes('*')) continue;
      return false;
    }
    const value = labels[key];
    if (value === undefined || !patterns.some((p) => valueMatches(p, value))) return false;
  }
  return true;
}

/** Rejects patterns RE2 does not accept (lookarounds, backreferences, ...), so config errors surface at load. */
export function validateSelector(selector: LabelSelector): string[] {
  const problems: string[] = [];
  for (const [key, wanted] of Object.entries(selector)) {
    for (const p of Array.isArray(wanted) ? wanted : [wanted]) {
      if (!isRegexPattern(p)) continue;
      try {
        compiled.set(p, compileRe2(p));
      } catch (err) {
        problems.push(`${key}: ${p} is not a regular expression RE2 accepts (${(err as Error).message}); Go's regexp syntax applies, as in Teleport`);
      }
    }
  }
  return problems;
}

/** Parses "k=v,k2=v2" (the --labels flag) into a map. */
export function parseLabelList(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const part of text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new Error(`invalid label "${part}": use key=value`);
    labels[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return labels;
}
