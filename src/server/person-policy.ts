import type { Item, WatchEvent } from '../backend/backend.ts';
import { AUDIT_EVENT } from '../resources/audit-event.ts';
import { kubeClusterSchema, roleSchema } from '../resources/schemas.ts';
import type { RoleSet } from '../roles/evaluate.ts';
import type { RuleVerb } from '../roles/role.ts';
import { agentItem } from './agent-view.ts';
import type { BackendCall } from './policy.ts';

/**
 * The kinds a person's call may name, and the rule resource that decides it. Every other key
 * (`/secrets/`, `/authorities/`, `/joins/`, `/invites/`, leader keys, anything a later version
 * adds) is out of reach whatever the roles say: an allowlist.
 */
const KINDS: Record<string, string> = {
  kube_cluster: 'kube_cluster',
  token: 'token',
  user: 'user',
  role: 'role',
  agent: 'agent',
  discovery_service: 'discovery_service',
  kube_server: 'kube_server',
  lock: 'lock',
  [AUDIT_EVENT]: 'audit',
};

/** What each kind's records may be changed with over /v1/backend; the rest has its own route or is written by agents. */
const WRITES: Record<string, RuleVerb[]> = {
  kube_cluster: ['create', 'update', 'delete'],
  token: ['create', 'delete'],
  role: ['create', 'update', 'delete'],
  agent: ['delete'],
  discovery_service: ['delete'],
  kube_server: ['delete'],
};

const WHY_NOT: Record<string, string> = {
  user: 'users change through kport users (POST /v1/users), which makes their invites and keeps their secrets: kport users update NAME --set-roles R,.. changes roles',
  lock: 'locks change through kport users lock/unlock (POST /v1/users)',
  audit: 'the audit trail is written by the server alone',
  agent: 'agents are written by the server when they join; people only remove them',
  discovery_service: 'heartbeats are written by their agents; people only remove them',
  kube_server: 'heartbeats are written by their agents; people only remove them',
  token: 'a token is created or removed, never changed',
};

/** The kind and name a key or prefix names: `/resources/<kind>/<name>`; undefined for any other key. */
function kindOf(key: string): { kind: string; resource: string; name: string } | undefined {
  const match = /^\/resources\/([a-z_]+)\/(.*)$/.exec(key);
  const resource = match && KINDS[match[1]!];
  return match && resource ? { kind: match[1]!, resource, name: match[2]! } : undefined;
}

/** One person's view and verdicts, by their current roles. */
export class PersonPolicy {
  readonly user: string;
  readonly #roles: RoleSet;

  constructor(user: string, roles: RoleSet) {
    this.user = user;
    this.#roles = roles;
  }

  /** Why this call is refused, or undefined. `current` is what the key holds, for writes. */
  refusal(call: BackendCall, current?: Item): string | undefined {
    switch (call.op) {
      case 'grant':
      case 'keepalive':
      case 'revoke':
        return 'may not hold leases: they are for discovery agents';
      case 'get':
        return this.#readRefusal(call.key, 'read');
      case 'list':
      case 'watch': {
        if (!/^\/resources\/[a-z_]+\//.test(call.prefix)) return `may not list ${call.prefix}: list one kind at a time (/resources/<kind>/)`;
        return this.#readRefusal(call.prefix, 'list');
      }
    }
    const target = kindOf(call.key);
    if (!target) return `may not write ${call.key}`;
    if (('lease' in call && call.lease) || call.fence) return 'writes without leases or fences';
    const verb: RuleVerb = call.op === 'delete' ? 'delete' : call.op === 'create' || (call.op === 'put' && !current) ? 'create' : 'update';
    if (!this.#roles.allows(target.resource, verb)) return `may not ${verb} ${target.resource} resources (no role allows it)`;
    if (!(WRITES[target.resource] ?? []).includes(verb)) return `may not ${verb} ${target.resource} resources over /v1/backend: ${WHY_NOT[target.resource] ?? 'kport does not change them this way'}`;
    if (call.op === 'delete') return undefined;
    const value = parse(call.value);
    const meta = value?.metadata as { name?: unknown } | undefined;
    if (value?.kind !== target.kind || meta?.name !== target.name) return `writes a ${target.kind} named ${target.name}, but the value is ${JSON.stringify(value?.kind ?? null)}/${JSON.stringify(meta?.name ?? null)}`;
    if (target.resource === 'role') {
      const checked = roleSchema.safeParse(value);
      if (!checked.success) return `wrote a role that is not valid: ${checked.error.issues[0]?.message ?? 'invalid'}`;
    }
    if (target.resource === 'kube_cluster') {
      const checked = kubeClusterSchema.safeParse(value);
      if (!checked.success) return `wrote a kube_cluster that is not valid: ${checked.error.issues[0]?.message ?? 'invalid'}`;
      // Discovered clusters are their discovery group's to write: a person's edit would be undone, or forge one.
      if (checked.data.spec.aws || (current && (parse(current.value)?.spec as { aws?: unknown } | undefined)?.aws)) return 'may write only static kube_clusters: discovered ones belong to their discovery agents';
    }
    return undefined;
  }

  /** The item as this person may see it; undefined when it must look missing. */
  view(item: Item): Item | undefined {
    const target = kindOf(item.key);
    if (!target) return undefined;
    if (target.resource === 'kube_cluster') {
      const shown = agentItem(item);
      if (!shown) return undefined;
      if (this.#roles.allows('kube_cluster', 'read')) return shown;
      const labels = (parse(item.value)?.metadata as { labels?: Record<string, string> } | undefined)?.labels ?? {};
      return this.#roles.kubeAccess(labels) ? shown : undefined;
    }
    if (!this.#roles.allows(target.resource, 'read') && !this.#roles.allows(target.resource, 'list')) return undefined;
    if (target.resource === 'token' || target.resource === 'agent') return { ...item, value: withoutSecrets(item.value) };
    return item;
  }

  views(items: Item[]): Item[] {
    return items.flatMap((item) => this.view(item) ?? []);
  }

  event(event: WatchEvent): WatchEvent | undefined {
    if (event.type !== 'put') return kindOf(event.key) ? event : undefined;
    const item = this.view(event.item);
    return item && { type: 'put', item };
  }

  #readRefusal(key: string, verb: 'read' | 'list'): string | undefined {
    const target = kindOf(key);
    if (!target) return `may not read ${key}`;
    // kube_cluster reads are filtered cluster by cluster (view): a cluster not allowed looks missing.
    if (target.resource === 'kube_cluster') return undefined;
    if (this.#roles.allows(target.resource, verb) || this.#roles.allows(target.resource, verb === 'read' ? 'list' : 'read')) return undefined;
    return `may not ${verb} ${target.resource} resources (no role allows it)`;
  }
}

/** A token's verifier and an agent's credential hash stay at the server: a salted scrypt of a chosen token value is still worth guessing at offline. */
function withoutSecrets(value: string): string {
  const parsed = parse(value);
  if (!parsed) return value;
  const { verifier: _v, hash: _h, credential_hash: _c, ...spec } = (parsed.spec ?? {}) as Record<string, unknown>;
  return JSON.stringify({ ...parsed, spec });
}

function parse(value: string): Record<string, unknown> | undefined {
  try {
    const parsed = JSON.parse(value) as unknown;
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
