/**
 * Label and tag matching shared by discovery matchers and roles (DESIGN.md §2): every selector key
 * must be present; a value matches when any listed value does; "*" matches anything; "^...$" is a
 * regular expression; anything else is a glob on the whole value. A "*" key matches any labels.
 */
export type LabelSelector = Record<string, string | string[]>;

const compiled = new Map<string, RegExp>();

export function valueMatches(pattern: string, value: string): boolean {
  if (pattern === '*') return true;
  let re = compiled.get(pattern);
  if (!re) {
    re = pattern.startsWith('^') && pattern.endsWith('$') ? new RegExp(pattern) : globToRegExp(pattern);
    compiled.set(pattern, re);
  }
  return re.test(value);
}

function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 's');
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

/** Rejects patterns that would fail at match time, so config errors surface at load. */
export function validateSelector(selector: LabelSelector): string[] {
  const problems: string[] = [];
  for (const [key, wanted] of Object.entries(selector)) {
    for (const p of Array.isArray(wanted) ? wanted : [wanted]) {
      if (p.startsWith('^') && p.endsWith('$')) {
        try {
          new RegExp(p);
        } catch (err) {
          problems.push(`${key}: invalid regular expression ${p}: ${(err as Error).message}`);
        }
      }
    }
  }
  return problems;
}

/** Parses "k=v,k2=v2" (the --labels flag) into a map. */
export function parseLabelList(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new Error(`invalid label "${part}": use key=value`);
    labels[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return labels;
}
