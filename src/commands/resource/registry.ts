// With the commands rather than in resources/: a role shows as the v7 role it reads as
// (src/roles/load.ts), which is above the stored kinds.
import type { Backend } from '../../backend/backend.ts';
import { AGENT, type Agent } from '../../resources/agent.ts';
import { AUDIT_EVENT, type AuditEvent } from '../../resources/audit-event.ts';
import { UserError } from '../../core/errors.ts';
import { formatLabels, formatTime } from '../../core/output.ts';
import { DISCOVERY_SERVICE, withLiveState, type DiscoveryService } from '../../resources/discovery-service.ts';
import { KUBE_CLUSTER, registeringAgent, type KubeCluster } from '../../resources/kube-cluster.ts';
import { KUBE_SERVER, type KubeServer } from '../../resources/kube-server.ts';
import type { Resource } from '../../resources/resource.ts';
import { KIND_NAMES, KINDS, type KindDescriptor } from '../../resources/kinds.ts';
import { LOCK, type Lock } from '../../resources/lock.ts';
import { checkLookupName, findKubeCluster } from '../../resources/lookup.ts';
import { ROLE, USER, type Role, type User } from '../../resources/role.ts';
import { readStoredRole } from '../../roles/load.ts';
import { getResource } from '../../resources/store.ts';
import { TOKEN, type Token } from '../../resources/token.ts';

/**
 * What `get`, `rm` and `create` need to know about one kind (docs/style.md 5): its descriptor
 * (src/resources/kinds.ts: names, aliases) and how the CLI shows it. A kind without a
 * presentation here is shown by name and labels (plain).
 */
export interface ResourceKind<R extends Resource = Resource> extends KindDescriptor {
  /** Accepted by `create -f` (zod, loaded on demand); kinds without one are written only by kport itself. */
  schema?: () => Promise<{
    safeParse(value: unknown): { success: true; data: R } | { success: false; error: { issues: Array<{ path: PropertyKey[]; message: string }> } };
  }>;
  headers: string[];
  /** One table row; `verbose` (-v) shows what people do not need by default, such as internal labels; `now` for ages. */
  row(resource: R, tty: boolean, verbose?: boolean, now?: number): string[];
  /** The stable shape of json/yaml output. */
  dto(resource: R): unknown;
  /** Finds a resource by name; kube_cluster also accepts the unambiguous discovered name. */
  find(backend: Backend, name: string): Promise<R | undefined>;
  /** What is true now, where the stored record can be out of date (a heartbeat's state). */
  asOfNow?(backend: Backend, resources: R[], now: number): Promise<R[]>;
}

/** Where a role or user comes from when it is not the store: `kport.dev/origin`, as Teleport marks them. */
export const CONFIG_ORIGIN = { 'kport.dev/origin': 'config-file' };
export const BUILTIN_ORIGIN = { 'kport.dev/origin': 'builtin' };
const ORIGIN_NOTE: Record<string, string> = { 'config-file': ' (config file)', builtin: ' (built-in)' };

/** A role or user written in the config file, or built into kport, says so next to its name. */
const fromConfigFile = (r: Resource) => `${r.metadata.name}${ORIGIN_NOTE[r.metadata.labels?.['kport.dev/origin'] ?? ''] ?? ''}`;
const asStored = ({ kind, version, metadata: { revision: _r, ...metadata }, spec }: Resource) => ({ kind, version, metadata, spec });
const byName =
  <R extends Resource>(kind: string) =>
  (backend: Backend, name: string) =>
    getResource<R>(backend, kind, name);

/** How the CLI shows and finds one kind: a ResourceKind less its descriptor. */
type Presentation<R extends Resource> = Omit<ResourceKind<R>, keyof KindDescriptor>;

const kubeCluster: Presentation<KubeCluster> = {
  schema: async () => (await import('../../resources/schemas.ts')).kubeClusterSchema as never,
  headers: ['Name', 'Source', 'Labels'],
  row: (c, _tty, verbose) => [
    c.metadata.name,
    c.spec.aws
      ? `eks ${c.spec.aws.region}/${c.spec.aws.account_id}`
      : registeringAgent(c)
        ? `kubeconfig of agent ${registeringAgent(c)!.slice(0, 8)}`
        : 'static',
    formatLabels(verbose ? c.metadata.labels : Object.fromEntries(Object.entries(c.metadata.labels ?? {}).filter(([k]) => !k.startsWith('kport.internal/')))),
  ],
  dto: (c) => ({ ...asStored(c), spec: { ...c.spec, ...(c.spec.kubeconfig && { kubeconfig: '<redacted>' }) } }),
  find: findKubeCluster,
};

const token: Presentation<Token> = {
  // No secret column: the secret is never stored, so there is nothing to mask.
  headers: ['Name', 'Type', 'Uses Left', 'Labels', 'Expiry Time (UTC)'],
  row: (t, tty) => [
    t.metadata.name,
    t.spec.roles.join(','),
    t.spec.uses_remaining === undefined ? 'unlimited' : String(t.spec.uses_remaining),
    formatLabels(t.metadata.labels),
    formatTime(t.metadata.expires, tty),
  ],
  dto: (t) => ({ ...asStored(t), spec: { roles: t.spec.roles, ...(t.spec.uses_remaining !== undefined && { uses_remaining: t.spec.uses_remaining }) } }),
  find: byName(TOKEN),
};

const role: Presentation<Role> = {
  schema: async () => (await import('../../resources/schemas.ts')).roleSchema as never,
  headers: ['Name', 'Kubernetes Labels', 'Kubernetes Groups', 'Kubernetes Users', 'Rules', 'Deny'],
  row: (stored) => {
    const r = readStoredRole(stored);
    const { allow, deny } = r.spec;
    const denied = [
      deny?.kubernetes_labels && `labels ${selectorText(deny.kubernetes_labels)}`,
      deny?.kubernetes_groups && `groups ${deny.kubernetes_groups.join(',')}`,
      deny?.kubernetes_users && `users ${deny.kubernetes_users.join(',')}`,
      deny?.rules && `rules ${rulesText(deny.rules)}`,
    ].filter(Boolean);
    return [
      fromConfigFile(stored),
      selectorText(allow.kubernetes_labels ?? {}),
      (allow.kubernetes_groups ?? []).join(','),
      (allow.kubernetes_users ?? []).join(','),
      rulesText(allow.rules ?? []),
      denied.join('; ') || '-',
    ];
  },
  // Always Teleport's v7 shape, whichever shape was stored, so `get role -o yaml` reads back through `create -f`.
  dto: (stored) => {
    const { revision: _revision, ...metadata } = stored.metadata;
    return { ...readStoredRole(stored), metadata };
  },
  find: byName(ROLE),
};

const selectorText = (s: Record<string, string | string[]>) =>
  Object.entries(s)
    .map(([k, v]) => `${k}=${[v].flat().join('|')}`)
    .join(',');
const rulesText = (rules: { resources: string[]; verbs: string[] }[]) => rules.map((r) => `${r.resources.join(',')}:${r.verbs.join(',')}`).join(' ');

const user: Presentation<User> = {
  schema: async () => (await import('../../resources/schemas.ts')).userSchema as never,
  headers: ['User', 'Roles'],
  row: (u) => [fromConfigFile(u), u.spec.roles.join(',')],
  dto: asStored,
  find: byName(USER),
};

const lock: Presentation<Lock> = {
  headers: ['User', 'Message', 'Expires', 'Created', 'By'],
  row: (l, tty) => [
    l.spec.user ?? l.metadata.name,
    l.spec.message ?? '-',
    l.metadata.expires ? formatTime(l.metadata.expires, tty) : 'never (until unlocked)',
    formatTime(l.spec.created, tty),
    l.spec.created_by ?? '-',
  ],
  dto: asStored,
  // Names are unique whatever their case: one lock holds for Alice and alice.
  find: (backend, name) => getResource<Lock>(backend, LOCK, name.toLowerCase()),
};

const discoveryService: Presentation<DiscoveryService> = {
  headers: ['Host', 'Group', 'State', 'Last Poll', 'Clusters', 'Errors'],
  row: (d, tty) => [
    `${d.spec.hostname} (${d.spec.host_id.slice(0, 8)})`,
    d.spec.discovery_group || '-',
    d.spec.state,
    formatTime(d.spec.last_poll, tty),
    String(d.spec.clusters.seen),
    d.spec.errors.map((e) => `${e.scope}: ${e.error}`).join('; ') || '-',
  ],
  dto: asStored,
  find: byName(DISCOVERY_SERVICE),
  asOfNow: withLiveState,
};

const agent: Presentation<Agent> = {
  headers: ['Host ID', 'Hostname', 'Roles', 'Joined', 'Last Seen', 'Address', 'Token'],
  row: (a, tty) => [
    a.spec.host_id,
    a.spec.hostname,
    a.spec.roles.join(','),
    formatTime(a.spec.joined, tty),
    formatTime(a.spec.last_seen, tty),
    a.spec.address ?? '-',
    a.spec.token_name,
  ],
  // Never the credential hash: it is the store's to compare, nobody's to read.
  dto: (a) => {
    const { credential_hash: _hash, ...spec } = a.spec;
    return { ...asStored(a), spec };
  },
  find: byName(AGENT),
};

const kubeServer: Presentation<KubeServer> = {
  headers: ['Host ID', 'Hostname', 'Clusters', 'Last Heartbeat'],
  row: (k, tty, verbose, now) => [
    k.spec.host_id,
    k.spec.hostname,
    verbose || k.spec.clusters.length <= 5
      ? k.spec.clusters.join(',') || '-'
      : `${k.spec.clusters.slice(0, 5).join(',')} and ${k.spec.clusters.length - 5} more`,
    // People read an age; scripts (piped) get the time itself.
    tty && now !== undefined && k.spec.last_heartbeat ? ageText(now - Date.parse(k.spec.last_heartbeat)) : formatTime(k.spec.last_heartbeat, tty),
  ],
  dto: asStored,
  find: byName(KUBE_SERVER),
};

/** "12s ago", "3m ago", "2h ago": how long since a heartbeat, as `kubectl get` shows ages. */
function ageText(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.floor(s / 60)}m ago` : `${Math.floor(s / 3600)}h ago`;
}

/**
 * What an event did, in one cell: a Kubernetes request as `verb resource/name -n ns -> status`, an
 * exec session as `exec ns/pod -- command [recorded|not recorded] session ID`, anything else its action.
 */
function auditAction(e: AuditEvent): string {
  const s = e.spec;
  if (s.type === 'kube.request' && s.verb) {
    return `${s.verb} ${s.resource ?? '?'}${s.name ? `/${s.name}` : ''}${s.namespace ? ` -n ${s.namespace}` : ''}${s.status !== undefined ? ` -> ${s.status}` : ''}`;
  }
  if (s.type.startsWith('session.')) {
    const recorded = s.recorded === undefined ? '' : s.recorded ? ' [recorded]' : ' [not recorded]';
    return `${s.action ?? 'exec'} ${s.namespace ?? '?'}/${s.pod ?? '?'}${s.command ? ` -- ${s.command}` : ''}${recorded} session ${s.session_id ?? '?'}`;
  }
  return s.action ?? '-';
}

const auditEvent: Presentation<AuditEvent> = {
  headers: ['Time', 'Type', 'Outcome', 'User', 'Cluster', 'Host', 'Token', 'Action', 'Reason', 'From'],
  row: (e, tty) => [
    formatTime(e.spec.time, tty),
    e.spec.type,
    e.spec.outcome,
    e.spec.user ?? '-',
    e.spec.cluster ?? '-',
    e.spec.host_id ?? '-',
    e.spec.token_name ?? '-',
    auditAction(e),
    e.spec.reason ?? '-',
    e.spec.remote_addr ?? '-',
  ],
  dto: asStored,
  find: byName(AUDIT_EVENT),
};

/** A kind with no presentation of its own: its name and labels, stored as it is. */
const plain = (kind: string): Presentation<Resource> => ({
  headers: ['Name', 'Labels'],
  row: (r) => [r.metadata.name, formatLabels(r.metadata.labels)],
  dto: asStored,
  find: byName(kind),
});

// Each presentation knows its own kind's type; the table holds them as presentations of any resource.
const PRESENTATIONS = {
  [KUBE_CLUSTER]: kubeCluster,
  [TOKEN]: token,
  [ROLE]: role,
  [USER]: user,
  [LOCK]: lock,
  [DISCOVERY_SERVICE]: discoveryService,
  [KUBE_SERVER]: kubeServer,
  [AGENT]: agent,
  [AUDIT_EVENT]: auditEvent,
} as unknown as Record<string, Presentation<Resource>>;

/** Every kind of the descriptors (src/resources/kinds.ts), in their order, with how the CLI shows it. */
export const RESOURCE_KINDS: ResourceKind[] = KINDS.map((k) => {
  const shown = PRESENTATIONS[k.kind] ?? plain(k.kind);
  return { ...k, ...shown };
});

export function lookupKind(name: string): ResourceKind {
  const wanted = name.toLowerCase();
  const kind = RESOURCE_KINDS.find((k) => k.kind === wanted || k.aliases.includes(wanted));
  if (!kind) throw new UserError(`Unknown resource kind "${name}": use one of ${KIND_NAMES.join(', ')}.`, 2);
  return kind;
}

/** Splits "kind/name" (or "kind" alone). */
export function parseRef(ref: string): { kind: ResourceKind; name: string | undefined } {
  const slash = ref.indexOf('/');
  if (slash < 0) return { kind: lookupKind(ref), name: undefined };
  const kind = lookupKind(ref.slice(0, slash));
  const name = ref.slice(slash + 1) || undefined;
  // Audit events are named by their time (colons and all): only the kinds people name are checked.
  if (name !== undefined && kind.kind !== AUDIT_EVENT) checkLookupName(kind.kind, name);
  return { kind, name };
}
