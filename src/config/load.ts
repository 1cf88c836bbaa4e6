import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { LineCounter, isMap, isPair, isScalar, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { UsageError, systemCause } from '../core/errors.ts';
import { trustedPath } from '../core/trusted-path.ts';
import { KNOWN_KEYS, configSchema, type RawConfig } from './schema.ts';
import { closest } from '../core/suggest.ts';
import { keyPath, yamlErrorText } from './errors.ts';

/**
 * Searched from the working directory upwards: data only. A file found by searching is never
 * executed (a checkout you cd into must not run code with your AWS credentials), and nothing in a
 * found file can widen the search (cosmiconfig's meta config and `$import` could): see README.
 */
export const CONFIG_SEARCH_PLACES = [
  'kport.yaml',
  'kport.yml',
  '.kportrc',
  '.kportrc.yaml',
  '.kportrc.yml',
  '.kportrc.json',
  'kport.config.yaml',
  'kport.config.yml',
  'kport.config.json',
  'package.json',
];
const GLOBAL_CONFIG = '/etc/kport.yaml';
/** Only a file named with -c or KPORT_CONFIG may be JavaScript: naming it is the opt-in to run it. */
const CODE_EXTENSIONS = new Set(['.js', '.mjs', '.cjs']);

export interface LoadedConfig extends RawConfig {
  /** The file the configuration came from, or undefined for built-in defaults. */
  source: string | undefined;
  dataDir: string;
  warnings: string[];
}

export interface LoadOptions {
  /** -c/--config or KPORT_CONFIG */
  file?: string;
  dataDir?: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
}

interface YamlSource {
  yamlSource: string;
}

type Found = { config: unknown; filepath: string };

/** Finds and validates the configuration (docs/architecture.md §2); every problem is reported at once. */
export async function loadConfig(opts: LoadOptions): Promise<LoadedConfig> {
  const file = opts.file ?? opts.env.KPORT_CONFIG;
  const found = file ? await loadFile(resolve(opts.cwd, expandHome(file, opts.env))) : search(opts.cwd, opts.env);
  const raw = found ? found.config : {};
  const config = validate(raw, found?.filepath);
  // Walked and resolved once, here: every later path under it goes through no link another user could swap.
  const dataDir = trustedPath(resolve(opts.cwd, expandHome(opts.dataDir ?? config.teleport.data_dir ?? defaultDataDir(opts.env), opts.env)), {
    what: 'the data dir',
  });
  return { ...config, source: found?.filepath, dataDir };
}

/** A file named with -c or KPORT_CONFIG: YAML (any other name), JSON, package.json#kport, or a JS module. */
async function loadFile(filepath: string): Promise<Found> {
  try {
    if (CODE_EXTENSIONS.has(extname(filepath).toLowerCase())) return { config: await importConfig(filepath), filepath };
    const found = readData(filepath);
    if (!found) throw new UsageError(`${filepath} has no "kport" key: put kport's configuration under "kport", or point -c at a kport.yaml.`);
    return found;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new UsageError(`Config file ${filepath} does not exist: check the path given with -c or KPORT_CONFIG.`);
    }
    throw new UsageError(`Cannot read config file ${filepath}: ${systemCause(err) ?? (err as Error).message}`);
  }
}

/** The module's default export, which must be a mapping of keys: anything else is not a config. */
async function importConfig(filepath: string): Promise<unknown> {
  statSync(filepath);
  const loaded = ((await import(pathToFileURL(filepath).href)) as { default?: unknown }).default;
  // A CommonJS script that exports nothing still has a default export, {}: that is not a config either.
  if (!loaded || typeof loaded !== 'object' || Array.isArray(loaded) || Object.keys(loaded).length === 0) {
    throw new UsageError(
      `${filepath} is not a kport configuration: a JavaScript config must \`export default\` a mapping of keys such as version and teleport; or point -c at a kport.yaml.`,
    );
  }
  return loaded;
}

/**
 * Reads a data file: YAML (kept as text for line numbers), JSON, or package.json's "kport" key.
 * undefined for a package.json without that key. Never runs anything.
 */
function readData(filepath: string): Found | undefined {
  // Checked before reading: a 10 MB file is a wrong file, not a config to parse for seconds.
  const size = statSync(filepath).size;
  if (size > MAX_CONFIG_BYTES) throw new UsageError(tooLarge(size, filepath));
  const text = readFileSync(filepath, 'utf8');
  if (extname(filepath).toLowerCase() !== '.json') return { config: { yamlSource: text } satisfies YamlSource, filepath };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${filepath} is not valid JSON: ${(err as Error).message}.`);
  }
  if (basename(filepath) !== 'package.json') return { config: parsed, filepath };
  const own = (parsed as Record<string, unknown> | null)?.kport;
  return own === undefined ? undefined : { config: own, filepath };
}

/** The first data file of CONFIG_SEARCH_PLACES from `cwd` up to the home directory (or /), then /etc/kport.yaml. */
function search(cwd: string, env: NodeJS.ProcessEnv): Found | undefined {
  const home = resolve(env.HOME ?? homedir());
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    for (const place of CONFIG_SEARCH_PLACES) {
      const filepath = join(dir, place);
      let found: Found | undefined;
      try {
        found = readData(filepath);
      } catch (err) {
        if (['ENOENT', 'ENOTDIR', 'EISDIR', 'EACCES'].includes((err as NodeJS.ErrnoException).code ?? '')) continue;
        throw err;
      }
      if (found && !isEmpty(found.config)) return found;
    }
    if (dir === home || dir === dirname(dir)) break;
  }
  try {
    return readData(GLOBAL_CONFIG);
  } catch {
    return undefined;
  }
}

function isEmpty(config: unknown): boolean {
  return config === null || config === undefined || (typeof config === 'object' && 'yamlSource' in config && !(config as YamlSource).yamlSource.trim());
}

function validate(loaded: unknown, filepath: string | undefined): Omit<LoadedConfig, 'source' | 'dataDir'> {
  const where = filepath ?? 'the configuration';
  let raw: unknown = loaded;
  let doc: Document | undefined;
  const lines = new LineCounter();
  if (loaded && typeof loaded === 'object' && 'yamlSource' in loaded) {
    const source = (loaded as YamlSource).yamlSource;
    checkConfigText(source, where);
    doc = parseDocument(source, { lineCounter: lines, uniqueKeys: true });
    if (doc.errors.length > 0) {
      const problems = doc.errors.slice(0, MAX_REPORTED).map((e) => `  line ${e.linePos?.[0]?.line ?? '?'}: ${yamlErrorText(e.message)}`);
      const more = doc.errors.length > MAX_REPORTED ? `\n  ... and ${doc.errors.length - MAX_REPORTED} more` : '';
      throw new UsageError(`${where} is not valid YAML:\n${problems.join('\n')}${more}`);
    }
    try {
      raw = doc.toJS() ?? {};
    } catch (err) {
      if (err instanceof ReferenceError && /alias/i.test(err.message)) {
        throw new UsageError(`${where} expands YAML aliases too many times (a "billion laughs" document?): write the values out instead of aliasing aliases.`);
      }
      throw new UsageError(`${where} cannot be read as YAML: ${(err as Error).message}.`);
    }
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new UsageError(`${where} must be a YAML mapping of keys such as version, teleport and discovery_service.`);
  }
  const lineOf = (path: PropertyKey[], key?: string): string => {
    if (!doc) return '';
    let node = doc.getIn(
      path.map(String).map((p) => (/^\d+$/.test(p) ? Number(p) : p)),
      true,
    ) as unknown;
    if (key !== undefined && isMap(node)) node = node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === key)?.key;
    const range = (node as { range?: [number, number] } | undefined)?.range;
    return range ? ` (line ${lines.linePos(range[0]).line})` : '';
  };

  const warnings: string[] = [];
  aliasResourceTags(raw as Record<string, unknown>, (i) => {
    warnings.push(`kubernetes_service.resources[${i}].tags${lineOf(['kubernetes_service', 'resources', i, 'tags'])} is read as labels: rename it to labels.`);
  });

  const parsed = configSchema.safeParse(raw);
  if (parsed.success) {
    const teleport = parsed.data.teleport;
    for (const key of ['auth_server', 'auth_servers'] as const) {
      // Teleport agents may dial the auth service; kport's server has one port, reached as proxy_server.
      if (teleport[key] !== undefined && !teleport.proxy_server)
        warnings.push(
          `teleport.${key}${lineOf(['teleport', key])} is not used: kport agents join the server through teleport.proxy_server (host:3080), so set that instead.`,
        );
    }
    return { ...parsed.data, warnings };
  }
  const all = parsed.error.issues.flatMap((issue) => describe(issue, lineOf, raw));
  const problems = all.length > MAX_REPORTED ? [...all.slice(0, MAX_REPORTED), `... and ${all.length - MAX_REPORTED} more`] : all;
  throw new UsageError(`${where} has ${all.length} problem${all.length === 1 ? '' : 's'}:\n${problems.map((p) => `  ${p}`).join('\n')}`);
}

/** A config is a few kilobytes of text; anything else is a wrong file, not a config to parse for seconds. */
export const MAX_CONFIG_BYTES = 1024 * 1024;
const MAX_REPORTED = 20;

function checkConfigText(text: string, where: string): void {
  if (text.includes('\u0000')) throw new UsageError(`${where} is not a text file: point -c or KPORT_CONFIG at a kport.yaml.`);
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_CONFIG_BYTES) throw new UsageError(tooLarge(bytes, where));
}

function tooLarge(bytes: number, where: string): string {
  return `${where} is ${(bytes / 1024 / 1024).toFixed(1)} MiB; a kport config is at most 1 MiB: point -c or KPORT_CONFIG at a kport.yaml.`;
}

function describe(issue: z.core.$ZodIssue, lineOf: (path: PropertyKey[], key?: string) => string, raw: unknown): string[] {
  const path = issue.path;
  const got = describeValue(valueAt(raw, path));
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => {
      const hint = closest(key, KNOWN_KEYS);
      return `${keyPath([...path, key])}${lineOf(path, key)}: unknown key${hint ? `; did you mean "${hint}"?` : ''}`;
    });
  }
  return [`${keyPath(path)}${lineOf(path)}: ${plainWords(issue, got)}`];
}

/** zod's own wording ("Invalid input: expected string, received number") is for programmers. */
function plainWords(issue: z.core.$ZodIssue, got: string): string {
  switch (issue.code) {
    case 'invalid_type':
      return issue.expected === 'object' ? `expected a mapping of keys, got ${got}` : `expected ${article(String(issue.expected))}, got ${got}`;
    case 'invalid_value':
      return `expected ${issue.values.map((v) => JSON.stringify(v)).join(' or ')}, got ${got}`;
    case 'invalid_union':
      return `this value has the wrong type (got ${got})`;
    case 'too_small':
    case 'too_big':
      return issue.message.startsWith('Too ')
        ? `${issue.message.replace(/^Too (small|big): expected /, 'expected ').replace(/^(array|string) to have /, 'it to have ')}`
        : issue.message;
    default:
      return issue.message;
  }
}

function article(type: string): string {
  const words: Record<string, string> = { string: 'a string', number: 'a number', boolean: 'a boolean', array: 'a list' };
  return words[type] ?? type;
}

function valueAt(root: unknown, path: PropertyKey[]): unknown {
  let v = root;
  for (const p of path) v = v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return v;
}

function describeValue(v: unknown): string {
  if (v === undefined || v === null) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  return `the ${typeof v} ${String(v)}`;
}

/** Teleport configs written for other services say `tags` where kport's kubernetes_service says `labels`. */
function aliasResourceTags(raw: Record<string, unknown>, warn: (index: number) => void): void {
  const resources = (raw.kubernetes_service as { resources?: unknown } | undefined)?.resources;
  if (!Array.isArray(resources)) return;
  resources.forEach((r: Record<string, unknown>, i) => {
    if (r && typeof r === 'object' && 'tags' in r && !('labels' in r)) {
      r.labels = r.tags;
      delete r.tags;
      warn(i);
    }
  });
}

export function expandHome(path: string, env: NodeJS.ProcessEnv): string {
  if (path === '~' || path.startsWith('~/')) return join(env.HOME ?? homedir(), path.slice(1));
  return path;
}

function defaultDataDir(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_DATA_HOME && isAbsolute(env.XDG_DATA_HOME) ? env.XDG_DATA_HOME : join(env.HOME ?? homedir(), '.local', 'share');
  return join(base, 'kport');
}
