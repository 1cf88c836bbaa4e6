import { createRequire } from 'node:module';
import { UsageError } from './errors.ts';

export const FORMATS = ['text', 'json', 'yaml'] as const;
export type Format = (typeof FORMATS)[number];

export function parseFormat(value: string | undefined): Format {
  const format = (value ?? 'text').toLowerCase();
  if (!(FORMATS as readonly string[]).includes(format)) {
    throw new UsageError(`Unknown format "${value}": use one of ${FORMATS.join(', ')}.`);
  }
  return format as Format;
}

/** Recursively sorts object keys so machine output is stable (STYLE.md 7). */
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

/** Machine output is snake_case (STYLE.md 7), whatever the internal objects use: durationMs -> duration_ms. */
export function snakeKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeKeys);
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), snakeKeys(v)]));
  }
  return value;
}

/** yaml is loaded only when YAML is asked for: it costs more to load than `kport version` does to run. */
function toYaml(value: unknown, options?: object): string {
  return (createRequire(import.meta.url)('yaml') as typeof import('yaml')).stringify(value, options);
}

export function serialize(value: unknown, format: 'json' | 'yaml'): string {
  const sorted = sortKeys(value);
  return format === 'json' ? `${JSON.stringify(sorted, null, 2)}\n` : toYaml(sorted);
}

export interface TableOptions {
  /** Aligned columns with truncation (a TTY) or tab-separated (a pipe), STYLE.md 8. */
  tty: boolean;
  maxWidth?: number;
  verbose?: boolean;
}

/** Renders rows under headers; on a TTY the widest column is truncated to fit maxWidth. */
export function renderTable(headers: string[], rows: string[][], opts: TableOptions): string {
  if (!opts.tty) return [headers, ...rows].map((r) => r.join('\t')).join('\n') + '\n';
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
  return [line(headers), rule, ...rows.map(line)].join('\n') + '\n';
}

export function formatTime(date: Date | string | undefined, tty: boolean): string {
  if (!date) return tty ? 'never' : '';
  const d = typeof date === 'string' ? new Date(date) : date;
  const iso = d.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return tty ? iso.replace('T', ' ').replace('Z', ' UTC') : iso;
}

export function formatLabels(labels: Record<string, string> | undefined): string {
  return Object.entries(labels ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

