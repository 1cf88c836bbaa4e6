// Reading a role (src/resources/role.ts) in Teleport's own shape (kind: role, version: v7,
// spec.allow / spec.deny / spec.options), as people paste them from Teleport's docs, or today's flat
// shape (config `roles:`, role resources written before v7), which reads as the allow side of a v7
// role; and the names its rules may use.
import { closest } from '../core/suggest.ts';
import { UsageError } from '../core/errors.ts';
import { parseDuration } from '../core/duration.ts';
import { KINDS, VERBS, type Verb } from './kinds.ts';
import { validateSelector, type LabelSelector } from './labels.ts';
import { labelsProblems, nameProblem } from './resource.ts';
import type { RoleConditions, RoleOptions, RoleV7 } from './role.ts';

/**
 * What rules name: each kind's rule (src/resources/kinds.ts), what is not a stored kind
 * (`session`: recordings), and Teleport's names where they mean the same thing.
 */
export const RULE_RESOURCES: readonly string[] = [...KINDS.map((k) => k.rule), 'session', 'event', '*'];
export const RULE_VERBS = [...VERBS, '*'] as const;
export type RuleVerb = Verb;

/** Teleport's name `event` is kport's `audit` (what `kport get audit` reads). */
export const canonicalResource = (resource: string): string => (resource === 'event' ? 'audit' : resource);

// Bounds on what one role may hold: roles are written by editors over the network and read on every
// call, so a role is a few kilobytes at most.
const MAX_ENTRIES = 100;
const MAX_VALUE = 256;

/** Versions whose kubernetes_* and rules fields mean what v7's do; v3/v4 defaulted labels to everything. */
const TELEPORT_VERSIONS = ['v5', 'v6', 'v7', 'v8'];
const CONDITION_KEYS = ['kubernetes_labels', 'kubernetes_groups', 'kubernetes_users', 'kubernetes_resources', 'rules'];
const FLAT_KEYS = ['kubernetes_labels', 'kubernetes_groups', 'kubernetes_users'];

export interface RoleProblem {
  path: string;
  message: string;
}

/** Validates either shape; the role when there is no problem. */
export function checkRole(doc: unknown): { role?: RoleV7; problems: RoleProblem[] } {
  const problems: RoleProblem[] = [];
  const role = readRole(doc, (path, message) => problems.push({ path, message }));
  return problems.length === 0 ? { role, problems } : { problems };
}

/** Teleport's v5-v8 shape or today's flat shape; throws a UsageError naming every bad key path. */
export function parseRole(doc: unknown, where = 'role'): RoleV7 {
  const { role, problems } = checkRole(doc);
  if (role) return role;
  throw new UsageError(`Invalid ${where}:\n${problems.map((p) => `  ${p.path ? `${p.path}: ` : ''}${p.message}`).join('\n')}`);
}

type Report = (path: string, message: string) => void;

function readRole(doc: unknown, report: Report): RoleV7 | undefined {
  if (!isObject(doc)) return void report('', 'a role is a mapping with kind: role, metadata and spec (or name: for the flat shape of the config)');
  // The flat shape of a config `roles:` entry.
  if (!('kind' in doc) && 'name' in doc) {
    unknownKeys(doc, ['name', ...FLAT_KEYS], '', report);
    const name = readName(doc.name, 'name', report);
    const allow = readConditions(pick(doc, FLAT_KEYS), '', 'allow', report);
    return name === undefined ? undefined : build({ name }, allow, undefined, undefined);
  }
  unknownKeys(doc, ['kind', 'version', 'metadata', 'spec'], '', report);
  if (doc.kind !== 'role') report('kind', `expected role, got ${JSON.stringify(doc.kind)}`);
  const metadata = readMetadata(doc.metadata, report);
  const spec = doc.spec ?? {};
  if (!isObject(spec)) return void report('spec', 'expected a mapping (allow, deny, options)');
  const teleportShape = ['allow', 'deny', 'options'].some((k) => k in spec);
  const version = doc.version;
  if (teleportShape) {
    if (version !== undefined && !TELEPORT_VERSIONS.includes(String(version))) {
      report('version', `kport reads Teleport roles of version ${TELEPORT_VERSIONS.join(', ')} (got ${JSON.stringify(version)}): write it as version: v7`);
    }
    unknownKeys(spec, ['allow', 'deny', 'options'], 'spec', report);
    const allow = readConditions(spec.allow ?? {}, 'spec.allow', 'allow', report);
    const deny = spec.deny === undefined || spec.deny === null ? undefined : readConditions(spec.deny, 'spec.deny', 'deny', report);
    const options = readOptions(spec.options, report);
    return metadata && build(metadata, allow, deny, options);
  }
  // Today's role resources: spec holds the allow side directly (version v1, or v7 as kport wrote it).
  if (version !== undefined && version !== 'v1' && version !== 'v7')
    report('version', `expected v7 (or v1 for the flat shape), got ${JSON.stringify(version)}`);
  unknownKeys(spec, FLAT_KEYS, 'spec', report, 'or the Teleport shape: spec.allow, spec.deny, spec.options', ['allow', 'deny', 'options']);
  const allow = readConditions(pick(spec, FLAT_KEYS), 'spec', 'allow', report);
  return metadata && build(metadata, allow, undefined, undefined);
}

function build(metadata: RoleV7['metadata'], allow: RoleConditions, deny: RoleConditions | undefined, options: RoleV7['spec']['options']): RoleV7 {
  return {
    kind: 'role',
    version: 'v7',
    metadata,
    spec: { allow, ...(deny && Object.keys(deny).length > 0 && { deny }), ...(options && { options }) },
  };
}

function readMetadata(value: unknown, report: Report): RoleV7['metadata'] | undefined {
  if (!isObject(value)) return void report('metadata', 'expected a mapping with name:');
  unknownKeys(value, ['name', 'description', 'labels', 'revision'], 'metadata', report);
  const name = readName(value.name, 'metadata.name', report);
  const metadata: RoleV7['metadata'] = { name: name ?? '' };
  if (value.description !== undefined) {
    if (typeof value.description !== 'string' || value.description.length > 1024) report('metadata.description', 'expected text of at most 1024 characters');
    else metadata.description = value.description;
  }
  if (value.labels !== undefined) {
    if (!isObject(value.labels) || !Object.values(value.labels).every((v) => typeof v === 'string')) report('metadata.labels', 'expected a mapping of strings');
    else {
      const labels = value.labels as Record<string, string>;
      for (const p of labelsProblems(labels)) report('metadata.labels', p);
      metadata.labels = labels;
    }
  }
  return name === undefined ? undefined : metadata;
}

function readName(value: unknown, path: string, report: Report): string | undefined {
  if (typeof value !== 'string') return void report(path, 'a role needs a name');
  const problem = nameProblem(value);
  if (problem) return void report(path, problem);
  return value;
}

function readConditions(value: unknown, path: string, side: 'allow' | 'deny', report: Report): RoleConditions {
  const at = (key: string) => (path ? `${path}.${key}` : key);
  if (value === null) return {};
  if (!isObject(value)) return (report(path, `expected a mapping (${CONDITION_KEYS.join(', ')})`), {});
  unknownKeys(value, CONDITION_KEYS, path, report, 'kport roles decide Kubernetes clusters and kport resources only');
  const conditions: RoleConditions = {};
  if (value.kubernetes_labels !== undefined && value.kubernetes_labels !== null) {
    const labels = readSelector(value.kubernetes_labels, at('kubernetes_labels'), report);
    if (labels) conditions.kubernetes_labels = labels;
  }
  for (const key of ['kubernetes_groups', 'kubernetes_users'] as const) {
    if (value[key] === undefined || value[key] === null) continue;
    const list = readStrings(value[key], at(key), report);
    if (list && list.length > 0) conditions[key] = list;
  }
  if (value.kubernetes_resources !== undefined && value.kubernetes_resources !== null) {
    checkKubernetesResources(value.kubernetes_resources, at('kubernetes_resources'), side, report);
  }
  if (value.rules !== undefined && value.rules !== null) {
    const rules = readRules(value.rules, at('rules'), report);
    if (rules && rules.length > 0) conditions.rules = rules;
  }
  return conditions;
}

function readSelector(value: unknown, path: string, report: Report): LabelSelector | undefined {
  if (!isObject(value)) return void report(path, 'expected a mapping of label keys to a value or a list of values');
  const selector: LabelSelector = {};
  const entries = Object.entries(value);
  if (entries.length > MAX_ENTRIES) return void report(path, `${entries.length} labels; at most ${MAX_ENTRIES}`);
  for (const [key, wanted] of entries) {
    if (hasTrait(key)) return void traitProblem(path, key, report);
    const list = typeof wanted === 'string' ? wanted : readStrings(wanted, `${path}.${key}`, report);
    if (list === undefined) return undefined;
    selector[key] = list;
  }
  for (const problem of validateSelector(selector)) report(path, problem);
  return selector;
}

function readStrings(value: unknown, path: string, report: Report): string[] | undefined {
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || !list.every((v) => typeof v === 'string')) return void report(path, 'expected a list of strings');
  if (list.length > MAX_ENTRIES) return void report(path, `${list.length} entries; at most ${MAX_ENTRIES}`);
  const tooLong = list.find((v) => v.length > MAX_VALUE || /[\u0000-\u001f\u007f]/.test(v));
  if (tooLong !== undefined) return void report(path, `values are at most ${MAX_VALUE} printable characters`);
  const trait = list.find(hasTrait);
  if (trait !== undefined) return void traitProblem(path, trait, report);
  return list;
}

const hasTrait = (text: string) => text.includes('{{');

function traitProblem(path: string, value: string, report: Report): void {
  report(
    path,
    `${value} is a Teleport trait template, and kport users have no traits: write the values out (an empty kubernetes_users means the person's own kport name)`,
  );
}

function readRules(value: unknown, path: string, report: Report): RoleConditions['rules'] {
  if (!Array.isArray(value)) return void report(path, 'expected a list of {resources, verbs}');
  if (value.length > MAX_ENTRIES) return void report(path, `${value.length} rules; at most ${MAX_ENTRIES}`);
  const rules: NonNullable<RoleConditions['rules']> = [];
  for (const [i, rule] of value.entries()) {
    const at = `${path}[${i}]`;
    if (!isObject(rule)) {
      report(at, 'expected {resources: [...], verbs: [...]}');
      continue;
    }
    if ('where' in rule || 'actions' in rule) {
      report(
        at,
        `kport cannot evaluate ${'where' in rule ? 'where' : 'actions'} (ignoring it would allow more than the rule says): remove it, or split the role`,
      );
    }
    unknownKeys(rule, ['resources', 'verbs', 'where', 'actions'], at, report);
    const resources = readStrings(rule.resources, `${at}.resources`, report) ?? [];
    const verbs = readStrings(rule.verbs, `${at}.verbs`, report) ?? [];
    for (const r of resources) if (!(RULE_RESOURCES as readonly string[]).includes(r)) report(`${at}.resources`, unknownValue(r, RULE_RESOURCES, 'resource'));
    for (const v of verbs) if (!(RULE_VERBS as readonly string[]).includes(v)) report(`${at}.verbs`, unknownValue(v, RULE_VERBS, 'verb'));
    rules.push({ resources, verbs });
  }
  return rules;
}

/**
 * kport decides which clusters a person reaches, not which objects inside one (Kubernetes RBAC does,
 * through kubernetes_groups). A role that narrows kubernetes_resources is refused rather than read
 * as if it did not: ignoring the narrowing would grant more than the role says. Entries that allow
 * everything (kind, namespace and name '*') narrow nothing and are accepted.
 */
function checkKubernetesResources(value: unknown, path: string, side: 'allow' | 'deny', report: Report): void {
  if (!Array.isArray(value)) return report(path, 'expected a list');
  if (value.length === 0) return;
  if (side === 'deny')
    return report(
      path,
      'kport cannot deny single Kubernetes objects: deny whole clusters with spec.deny.kubernetes_labels, or use Kubernetes RBAC through kubernetes_groups',
    );
  const wild = (v: unknown) => v === undefined || v === '*' || (Array.isArray(v) && v.length === 1 && v[0] === '*');
  const narrowing = value.find((e) => !isObject(e) || e.kind !== '*' || e.namespace !== '*' || e.name !== '*' || !wild(e.verbs) || !wild(e.api_group));
  if (narrowing !== undefined) {
    report(
      path,
      `kport does not narrow access inside a cluster (${JSON.stringify(narrowing)}), and ignoring it would grant more than the role says: remove kubernetes_resources (or use kind, namespace and name '*') and narrow with Kubernetes RBAC through kubernetes_groups`,
    );
  }
}

function readOptions(value: unknown, report: Report): RoleV7['spec']['options'] {
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) return void report('spec.options', 'expected a mapping (max_session_ttl, require_session_recording)');
  unknownKeys(
    value,
    ['max_session_ttl', 'require_session_recording'],
    'spec.options',
    report,
    'kport reads max_session_ttl and require_session_recording only',
  );
  const options: RoleOptions = {};
  const ttl = value.max_session_ttl;
  if (ttl !== undefined) {
    if (typeof ttl !== 'string' || !ttlMs(ttl)) report('spec.options.max_session_ttl', `expected a duration such as 8h or 30m, got ${JSON.stringify(ttl)}`);
    else options.max_session_ttl = ttl;
  }
  // YAML 1.1 spellings (yes, on, off) mean what they say, as in the config.
  const spelled = { true: true, yes: true, on: true, false: false, no: false, off: false } as Record<string, boolean>;
  const raw = value.require_session_recording;
  const recording = typeof raw === 'string' ? (spelled[raw.toLowerCase()] ?? raw) : raw;
  if (recording !== undefined) {
    if (typeof recording !== 'boolean') report('spec.options.require_session_recording', `expected true or false, got ${JSON.stringify(recording)}`);
    else if (recording) options.require_session_recording = true;
  }
  return Object.keys(options).length > 0 ? options : undefined;
}

/** A Teleport duration in milliseconds; undefined when it is not one or not positive. */
export function ttlMs(text: string): number | undefined {
  try {
    const ms = parseDuration(text);
    return ms > 0 ? ms : undefined;
  } catch {
    return undefined;
  }
}

function unknownKeys(value: Record<string, unknown>, known: readonly string[], path: string, report: Report, hint?: string, alsoNear: string[] = []): void {
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    const near = closest(key, [...known, ...alsoNear]);
    const at = path ? `${path}.${key}` : key;
    report(at, near ? `unknown key: did you mean ${near}?` : `unknown key${hint ? ` (${hint})` : `: expected ${known.join(', ')}`}`);
  }
}

function unknownValue(value: string, known: readonly string[], what: string): string {
  const near = closest(value, known);
  return `unknown ${what} "${value}"${near ? `: did you mean ${near}?` : `: use one of ${known.join(', ')}`}`;
}

function pick(value: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.filter((k) => k in value).map((k) => [k, value[k]]));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
