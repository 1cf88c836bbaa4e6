// One descriptor per resource kind (docs/architecture.md §4): everything kport decides by kind is
// read from here, so a new kind is one descriptor plus the role rule that grants it. The CLI
// registry (commands/resource/registry.ts), the role rules' resource names (role-check.ts), the
// typed store (store.ts) and the server's gate (server/auth/gate.ts) are derived from this table.
import { z } from 'zod';
import type { Item } from '../backend/backend.ts';
import { AGENT, type Agent } from './agent.ts';
import { AUDIT_EVENT, type AuditEvent } from './audit-event.ts';
import { DISCOVERY_SERVICE, type DiscoveryService } from './discovery-service.ts';
import { KUBE_CLUSTER, type KubeCluster } from './kube-cluster.ts';
import { KUBE_SERVER, type KubeServer } from './kube-server.ts';
import { LOCK, type Lock } from './lock.ts';
import { kindPrefix, resourceKey, type Resource } from './resource.ts';
import { ROLE, USER, type User } from './role.ts';
import { TOKEN, type Token } from './token.ts';
import { clusterWithoutCredentials, withoutVerifiers } from './views.ts';

/** What a caller does to a kind: a role rule's verbs. */
export const VERBS = ['list', 'read', 'create', 'update', 'delete'] as const;
export type Verb = (typeof VERBS)[number];

/** The roles an agent's certificate carries. */
export type AgentRole = 'discovery' | 'kube';

export interface KindDescriptor<R extends Resource = Resource> {
  /** The stored name: `/resources/<kind>/<name>`. */
  kind: string;
  /** The name help and completion offer, where people type another than `kind`. */
  typed?: string;
  /** What the CLI also accepts for it (`kport get kc`). */
  aliases: string[];
  /** The resource a role rule names to grant it (`rules: [{resources: [audit], ...}]`). */
  rule: string;
  /** The shape of a stored record, checked at every read (store.ts): the fields kport reads, typed; others kept. */
  stored: z.ZodType<R>;
  /** The key of a name, and the name of a key (undefined: not this kind's). */
  key(name: string): string;
  nameOf(key: string): string | undefined;
  /**
   * Agents (by the roles in their certificate): which may read it, which may write it (each write
   * then judged by the kind's hook at the gate, src/server/auth/kind-hooks.ts), the refusal for the
   * others, and what they see of a record (undefined: not shown).
   */
  agents: { read: AgentRole[]; write: AgentRole[]; refused?: string; view?(item: Item): Item | undefined };
  /**
   * People (by their roles' rules on `rule`): the verbs /v1/backend allows for it at all, why not
   * the others, what they see of a record they may read, and `byLabels`: a record they may not
   * read is still shown when their kubernetes_labels reach it (clusters).
   */
  people: { writes: Verb[]; whyNot?: string; byLabels?: boolean; view?(item: Item): Item | undefined };
}

/** The key layout every kind has today: `/resources/<kind>/<name>`. */
function layout(kind: string): Pick<KindDescriptor, 'kind' | 'key' | 'nameOf'> {
  const prefix = kindPrefix(kind);
  return { kind, key: (name) => resourceKey(kind, name), nameOf: (key) => (key.startsWith(prefix) ? key.slice(prefix.length) : undefined) };
}

// Stored shapes: strict about what kport reads, loose about the rest, so a record written by an
// older or newer kport still reads; create -f and agents' writes are checked by stricter schemas.
const metadata = z.looseObject({
  name: z.string(),
  description: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  expires: z.string().optional(),
  revision: z.number().optional(),
});
const record = <S extends z.ZodType>(kind: string, spec: S) => z.looseObject({ kind: z.literal(kind), version: z.string(), metadata, spec });
const heartbeatSpec = { host_id: z.string(), hostname: z.string(), started: z.string(), last_heartbeat: z.string().optional() };

/**
 * Text from a closed set, as stored: any text reads, since a value kport does not know (a hand
 * edit, a newer kport) is shown, terminal-safe, rather than making the record unreadable; the code
 * compares it with the values it knows. Typed as that set, which is what kport writes.
 */
const oneOf = <T extends string>(_values: readonly T[]) => z.string() as unknown as z.ZodType<T>;

const BEATS_WHY_NOT = 'heartbeats are written by their agents; people only remove them';

export const kubeClusterKind: KindDescriptor<KubeCluster> = {
  ...layout(KUBE_CLUSTER),
  aliases: ['kube_clusters', 'kube', 'kc'],
  rule: 'kube_cluster',
  stored: record(
    KUBE_CLUSTER,
    z.looseObject({
      aws: z.looseObject({ name: z.string(), region: z.string(), account_id: z.string(), arn: z.string().optional() }).optional(),
      kubeconfig: z.string().optional(),
    }),
  ),
  agents: {
    read: ['discovery', 'kube'],
    write: ['discovery', 'kube'],
    refused: 'may not write kube_cluster resources: only discovery agents do, and Kubernetes agents those of their kubeconfig_file',
    view: clusterWithoutCredentials,
  },
  people: { writes: ['create', 'update', 'delete'], byLabels: true, view: clusterWithoutCredentials },
};

export const tokenKind: KindDescriptor<Token> = {
  ...layout(TOKEN),
  aliases: ['tokens'],
  rule: 'token',
  stored: record(
    TOKEN,
    z.looseObject({
      roles: z.array(z.string()),
      verifier: z.string().optional(),
      chosen: z.boolean().optional(),
      hash: z.string().optional(),
      uses_remaining: z.number().optional(),
    }),
  ),
  agents: { read: [], write: [] },
  people: { writes: ['create', 'delete'], whyNot: 'a token is created or removed, never changed', view: withoutVerifiers },
};

export const roleKind: KindDescriptor<Resource<Record<string, unknown>>> = {
  ...layout(ROLE),
  aliases: ['roles'],
  rule: 'role',
  // Either shape of role (type Role), read through readStoredRole: one that does not read denies everything.
  stored: record(ROLE, z.looseObject({})),
  agents: { read: [], write: [] },
  people: { writes: ['create', 'update', 'delete'] },
};

export const userKind: KindDescriptor<User> = {
  ...layout(USER),
  aliases: ['users'],
  rule: 'user',
  stored: record(
    USER,
    z.looseObject({
      roles: z.array(z.string()),
      auth: oneOf(['local', 'oidc']).optional(),
      created: z.string().optional(),
      uid: z.string().optional(),
      oidc: z.looseObject({ issuer: z.string(), subject: z.string() }).optional(),
    }),
  ),
  agents: { read: [], write: [] },
  people: {
    writes: [],
    whyNot:
      'users change through kport users (POST /v1/users), which makes their invites and keeps their secrets: kport users update NAME --set-roles R,.. changes roles',
  },
};

export const lockKind: KindDescriptor<Lock> = {
  ...layout(LOCK),
  aliases: ['locks'],
  rule: 'lock',
  stored: record(
    LOCK,
    z.looseObject({
      user: z.string().optional(),
      oidc: z.looseObject({ issuer: z.string(), subject: z.string() }).optional(),
      message: z.string().optional(),
      created: z.string(),
      created_by: z.string().optional(),
    }),
  ),
  agents: { read: [], write: [] },
  people: { writes: [], whyNot: 'locks change through kport users lock/unlock (POST /v1/users)' },
};

export const discoveryServiceKind: KindDescriptor<DiscoveryService> = {
  ...layout(DISCOVERY_SERVICE),
  aliases: ['discovery_services', 'discovery'],
  rule: 'discovery_service',
  stored: record(
    DISCOVERY_SERVICE,
    z.looseObject({
      ...heartbeatSpec,
      discovery_group: z.string(),
      state: oneOf(['leader', 'standby', 'starting', 'stopped', 'stale']),
      heartbeat_interval_ms: z.number().optional(),
      last_poll: z.string().optional(),
      last_poll_duration_ms: z.number().optional(),
      next_poll: z.string().optional(),
      clusters: z.looseObject({ seen: z.number(), created: z.number(), updated: z.number(), deleted: z.number() }),
      errors: z.array(z.looseObject({ scope: z.string(), error: z.string(), at: z.string() })),
    }),
  ),
  agents: { read: [], write: ['discovery'] },
  people: { writes: ['delete'], whyNot: BEATS_WHY_NOT },
};

export const kubeServerKind: KindDescriptor<KubeServer> = {
  ...layout(KUBE_SERVER),
  aliases: ['kube_servers'],
  rule: 'kube_server',
  stored: record(KUBE_SERVER, z.looseObject({ ...heartbeatSpec, clusters: z.array(z.string()) })),
  agents: { read: [], write: ['kube'] },
  people: { writes: ['delete'], whyNot: BEATS_WHY_NOT },
};

export const agentKind: KindDescriptor<Agent> = {
  ...layout(AGENT),
  aliases: ['agents'],
  rule: 'agent',
  stored: record(
    AGENT,
    z.looseObject({
      host_id: z.string(),
      hostname: z.string(),
      roles: z.array(z.string()),
      joined: z.string(),
      token_name: z.string(),
      // Absent in what the server shows people: it stays at the server (views.ts).
      credential_hash: z.string().optional(),
      credential_type: oneOf(['secret', 'x509']).optional(),
      discovery_group: z.string().optional(),
      address: z.string().optional(),
      last_seen: z.string().optional(),
    }),
  ),
  agents: { read: [], write: [] },
  people: { writes: ['delete'], whyNot: 'agents are written by the server when they join; people only remove them', view: withoutVerifiers },
};

export const auditEventKind: KindDescriptor<AuditEvent> = {
  ...layout(AUDIT_EVENT),
  typed: 'audit',
  aliases: ['audit', 'audit_events', 'events'],
  rule: 'audit',
  stored: record(AUDIT_EVENT, z.looseObject({ time: z.string(), type: z.string(), outcome: oneOf(['allowed', 'refused']) })),
  agents: { read: [], write: [] },
  people: { writes: [], whyNot: 'the audit trail is written by the server alone' },
};

/** Every kind, in the order `kport get --help` lists them. */
export const KINDS: readonly KindDescriptor[] = [
  kubeClusterKind,
  tokenKind,
  roleKind,
  userKind,
  lockKind,
  discoveryServiceKind,
  kubeServerKind,
  agentKind,
  auditEventKind,
];

/** What `get --help`, errors and `get <TAB>` list: one list, so they never disagree. */
export const KIND_NAMES = KINDS.map((k) => k.typed ?? k.kind);

/** The descriptor of a stored kind name. */
export function kindNamed(kind: string): KindDescriptor | undefined {
  return KINDS.find((k) => k.kind === kind);
}

/**
 * The kind and name a key (or a list's prefix) names, through the kinds' key layouts; undefined
 * for every other key (`/secrets/`, `/authorities/`, leader keys, a kind kport does not know).
 */
export function kindOfKey(key: string): { kind: KindDescriptor; name: string } | undefined {
  for (const kind of KINDS) {
    const name = kind.nameOf(key);
    if (name !== undefined) return { kind, name };
  }
  return undefined;
}
