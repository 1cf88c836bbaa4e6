import { createRequire } from 'node:module';
import { UsageError } from './errors.ts';

export const FORMATS = ['text', 'json', 'yaml'] as const;
export type Format = (typeof FORMATS)[number];

export function parseFormat(value: string | undefined): Format {
  const format = (value ?? 'text').toLowerCase();
  if (!(FORMATS as readonly string[]).includes(format)) {
    throw new UsageError(`Unknown format "${printable(String(value))}": use one of ${FORMATS.join(', ')}.`);
  }
  return format as Format;
}

/**
 * What must never reach a terminal raw from text kport did not write itself (agent heartbeats,
 * EKS tags, argv, lock messages): C0 and C1 controls and DEL (window titles, screen clears, 8-bit
 * CSI), every Unicode format character (the bidi controls that reorder what follows, U+200B and the
 * other zero-width ones, the soft hyphen), lone surrogates, the line and paragraph separators some
 * terminals break lines at, and the Hangul fillers, which are letters that show as nothing.
 */
const INVISIBLE = '\\p{Cc}\\p{Cf}\\p{Cs}\\u2028\\u2029\\u115f\\u1160\\u3164\\uffa0';
const UNSAFE = new RegExp(`[${INVISIBLE}]`, 'gu');
const UNSAFE_BUT_NEWLINE = new RegExp(`(?!\\n)[${INVISIBLE}]`, 'gu');
const HAS_UNSAFE = new RegExp(UNSAFE_BUT_NEWLINE.source, 'u');
/** What JSON.stringify leaves raw: it escapes C0 and lone surrogates itself, so a raw C0 is the layout's own newline. */
const UNSAFE_IN_JSON = new RegExp(`(?![\\u0000-\\u001f])[${INVISIBLE}]`, 'gu');
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** `\u200b`; a character beyond U+FFFF as its two UTF-16 halves, as JSON and JavaScript read them. */
function unicodeEscape(c: string): string {
  return [...Array(c.length).keys()].map((i) => `\\u${c.charCodeAt(i).toString(16).padStart(4, '0')}`).join('');
}

function escapeChar(c: string): string {
  const code = c.charCodeAt(0);
  return NAMED[c] ?? (code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : unicodeEscape(c));
}

/** One line of text with every unsafe character shown as an escape (`\x1b`, `\u202e`, `\u200b`, `\n`): table cells, names in messages. */
export function printable(text: string): string {
  return text.replace(UNSAFE, escapeChar);
}

/** A message kport wrote, whose own newlines stay, with whatever it quotes made printable. */
export function printableMessage(text: string): string {
  return text.replace(UNSAFE_BUT_NEWLINE, escapeChar);
}

/** JSON text as JSON.stringify made it, with the unsafe characters it leaves raw (DEL, C1, format characters) as \u escapes: the same value, read back. */
export function terminalSafeJson(json: string): string {
  return json.replace(UNSAFE_IN_JSON, unicodeEscape);
}

/** Recursively sorts object keys so machine output is stable (docs/style.md 7). */
export function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/** Machine output is snake_case (docs/style.md 7), whatever the internal objects use: durationMs -> duration_ms. */
export function snakeKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeKeys);
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), snakeKeys(v)]));
  }
  return value;
}

/**
 * Strings the 1.1 schema leaves plain that some reader still changes: `0o17` is 15 to a YAML 1.2
 * reader, `<<` and `=` are the merge and value keys of 1.1, and an unsafe character is shown only
 * as an escape, which only double quotes have.
 */
function mustDoubleQuote(text: string): boolean {
  return /^0o[0-7]+$/.test(text) || text === '<<' || text === '=' || HAS_UNSAFE.test(text);
}

/**
 * YAML that YAML 1.1 readers (PyYAML, Ruby's Psych, Go's yaml.v2) read back as it was written: the
 * 1.1 schema quotes `no`, `on`, `y`, `2024-01-01`, `0755`, `1_000` and `1:20`, which such readers
 * take for booleans, dates and numbers, and quoting them changes nothing for a 1.2 reader. yaml is
 * loaded only when YAML is asked for: it costs more to load than `kport version` does to run.
 */
function toYaml(value: unknown): string {
  const YAML = createRequire(import.meta.url)('yaml') as typeof import('yaml');
  // Without the merge tag, whose stringifier writes `<<` plain whatever the node asks for.
  const doc = new YAML.Document(value, {
    version: '1.1',
    customTags: (tags) => tags.filter((t) => (typeof t === 'string' ? t !== 'merge' : t.tag !== 'tag:yaml.org,2002:merge')),
  });
  YAML.visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value === 'string' && mustDoubleQuote(node.value)) node.type = 'QUOTE_DOUBLE';
    },
  });
  // yaml's double quotes escape C0 controls but leave DEL, C1 and format characters raw; every one of them is inside double quotes now.
  return doc.toString().replace(UNSAFE_BUT_NEWLINE, escapeChar);
}

export function serialize(value: unknown, format: 'json' | 'yaml'): string {
  const sorted = sortKeys(value);
  return format === 'json' ? `${terminalSafeJson(JSON.stringify(sorted, null, 2))}\n` : toYaml(sorted);
}

export interface TableOptions {
  /** Aligned columns with truncation (a TTY) or tab-separated (a pipe), docs/style.md 8. */
  tty: boolean;
  maxWidth?: number;
  verbose?: boolean;
}

/**
 * Renders rows under headers; on a TTY the widest column is truncated to fit maxWidth. Every cell
 * is made printable here, so no table shows an agent's or a tag's control characters raw (and a
 * tab or newline in a cell cannot shift the columns a script reads).
 */
export function renderTable(headers: string[], cells: string[][], opts: TableOptions): string {
  const rows = cells.map((r) => r.map(printable));
  if (!opts.tty) return `${[headers, ...rows].map((r) => r.join('\t')).join('\n')}\n`;
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const limit = opts.maxWidth ?? 120;
  const total = widths.reduce((a, b) => a + b, 0) + 2 * (widths.length - 1);
  if (!opts.verbose && total > limit) {
    const widest = widths.indexOf(Math.max(...widths));
    widths[widest] = Math.max(headers[widest]!.length, widths[widest]! - (total - limit));
  }
  const cell = (text: string, i: number) => {
    const w = widths[i]!;
    const t = text.length > w ? `${text.slice(0, Math.max(0, w - 3))}...` : text;
    return i === widths.length - 1 ? t : t.padEnd(w);
  };
  const line = (r: string[]) => r.map(cell).join('  ').trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return `${[line(headers), rule, ...rows.map(line)].join('\n')}\n`;
}

export function formatTime(date: Date | string | undefined, tty: boolean): string {
  if (!date) return tty ? 'never' : '';
  const d = typeof date === 'string' ? new Date(date) : date;
  const iso = d.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return tty ? iso.replace('T', ' ').replace('Z', ' UTC') : iso;
}

/** People's own labels first, then the prefixed ones kport and others set (`kport.dev/origin`), as tsh shows them. */
export function formatLabels(labels: Record<string, string> | undefined): string {
  const prefixed = (key: string) => key.includes('/');
  return Object.entries(labels ?? {})
    .sort(([a], [b]) => Number(prefixed(a)) - Number(prefixed(b)) || a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
