import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { LineCounter, isMap, isPair, isScalar, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { UsageError } from '../core/errors.ts';
import { KNOWN_KEYS, configSchema, type RawConfig } from './schema.ts';
import { closest } from './suggest.ts';
import { keyPath, yamlErrorText } from './errors.ts';

export const CONFIG_SEARCH_PLACES = [
  'kport.yaml',
  'kport.yml',
  '.kportrc',
  '.kportrc.yaml',
  '.kportrc.yml',
  '.kportrc.json',
  'kport.config.yaml',
  'kport.config.json',
  'kport.config.js',
  'kport.config.mjs',
  'package.json',
];
const GLOBAL_CONFIG = '/etc/kport.yaml';

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

const yamlLoader = (_path: string, content: string): YamlSource => ({ yamlSource: content });

/** Finds and validates the configuration (DESIGN.md §2); every problem is reported at once. */
export async function loadConfig(opts: LoadOptions): Promise<LoadedConfig> {
  const file = opts.file ?? opts.env.KPORT_CONFIG;
  const found = file ? await loadFile(resolve(opts.cwd, expandHome(file, opts.env))) : await search(opts.cwd);
  const raw = found ? found.config : {};
  const config = validate(raw, found?.filepath);
  const dataDir = resolve(
    opts.cwd,
    expandHome(opts.dataDir ?? config.teleport.data_dir ?? defaultDataDir(opts.env), opts.env),
  );
  return { ...config, source: found?.filepath, dataDir };
}

async function explorer() {
  const { cosmiconfig } = await import('cosmiconfig');
  return cosmiconfig('kport', {
    searchPlaces: CONFIG_SEARCH_PLACES,
    searchStrategy: 'global',
    loaders: { '.yaml': yamlLoader, '.yml': yamlLoader, noExt: yamlLoader },
  });
}

async function loadFile(filepath: string): Promise<{ config: unknown; filepath: string }> {
  let result;
  try {
    // YAML, the common case, needs no loader search (cosmiconfig costs ~20 ms to import).
    if (/\.ya?ml$/i.test(filepath)) return { config: yamlLoader(filepath, readFileSync(filepath, 'utf8')), filepath };
    result = await (await explorer()).load(filepath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new UsageError(`Config file ${filepath} does not exist: check the path given with -c or KPORT_CONFIG.`);
    }
    throw new UsageError(`Cannot read config file ${filepath}: ${(err as Error).message}`);
  }
  return { config: result?.config ?? {}, filepath };
}

async function search(cwd: string): Promise<{ config: unknown; filepath: string } | undefined> {
  const result = await (await explorer()).search(cwd);
  if (result && !result.isEmpty) return { config: result.config, filepath: result.filepath };
  try {
    return { config: yamlLoader(GLOBAL_CONFIG, readFileSync(GLOBAL_CONFIG, 'utf8')), filepath: GLOBAL_CONFIG };
  } catch {
    return undefined;
  }
}

function validate(loaded: unknown, filepath: string | undefined): Omit<LoadedConfig, 'source' | 'dataDir'> {
  const where = filepath ?? 'the configuration';
  let raw: unknown = loaded;
  let doc: Document | undefined;
  const lines = new LineCounter();
  if (loaded && typeof loaded === 'object' && 'yamlSource' in loaded) {
    doc = parseDocument((loaded as YamlSource).yamlSource, { lineCounter: lines, uniqueKeys: true });
    if (doc.errors.length > 0) {
      const problems = doc.errors.map((e) => `  line ${e.linePos?.[0]?.line ?? '?'}: ${yamlErrorText(e.message)}`);
      throw new UsageError(`${where} is not valid YAML:\n${problems.join('\n')}`);
    }
    raw = doc.toJS() ?? {};
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new UsageError(`${where} must be a YAML mapping of keys such as version, teleport and discovery_service.`);
  }
  const lineOf = (path: PropertyKey[], key?: string): string => {
    if (!doc) return '';
    let node = doc.getIn(path.map(String).map((p) => (/^\d+$/.test(p) ? Number(p) : p)), true) as unknown;
    if (key !== undefined && isMap(node)) node = node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === key)?.key;
    const range = (node as { range?: [number, number] } | undefined)?.range;
    return range ? ` (line ${lines.linePos(range[0]).line})` : '';
  };

  const warnings: string[] = [];
  aliasResourceTags(raw as Record<string, unknown>, (i) => {
    warnings.push(`kubernetes_service.resources[${i}].tags${lineOf(['kubernetes_service', 'resources', i, 'tags'])} is read as labels: rename it to labels.`);
  });

  const parsed = configSchema.safeParse(raw);
  if (parsed.success) return { ...parsed.data, warnings };
  const problems = parsed.error.issues.flatMap((issue) => describe(issue, lineOf));
  throw new UsageError(`${where} has ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n${problems.map((p) => `  ${p}`).join('\n')}`);
}

function describe(issue: z.core.$ZodIssue, lineOf: (path: PropertyKey[], key?: string) => string): string[] {
  const path = issue.path;
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => {
      const hint = closest(key, KNOWN_KEYS);
      return `${keyPath([...path, key])}${lineOf(path, key)}: unknown key${hint ? `; did you mean "${hint}"?` : ''}`;
    });
  }
  return [`${keyPath(path)}${lineOf(path)}: ${issue.message}`];
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

