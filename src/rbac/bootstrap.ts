import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeConfig, V1ClusterRole, V1ClusterRoleBinding } from '@kubernetes/client-node';
import { createTwoFilesPatch } from 'diff';
import { stringify } from 'yaml';
import { ExternalError } from '../core/errors.ts';
import { upsertMapRole, type RoleMapping } from './aws-auth.ts';
import { clusterRole, clusterRoleBinding } from './manifests.ts';
import { expectKind, kubeError, statusOf } from './kube-errors.ts';

export type Action = 'create' | 'update' | 'unchanged';

export interface PlanStep {
  object: string;
  action: Action;
  diff: string;
}

export interface BootstrapOptions {
  kc: KubeConfig;
  names: { clusterRole: string; binding: string };
  /** The RBAC group the proxy's IAM role is mapped into. */
  group: string;
  /** Create kport's own ClusterRole and binding (false for --existing-group and --system-masters). */
  manageRbac: boolean;
  /** aws-auth mapping to apply, or undefined when access entries grant the role instead. */
  mapping?: RoleMapping;
  dryRun: boolean;
  /** Retry Kubernetes calls answering 401/403 until this long has passed (access entries settle slowly). */
  authRetryMs?: number;
  log?: (line: string) => void;
}

const AWS_AUTH = { name: 'aws-auth', namespace: 'kube-system' };
/** How long a busy aws-auth may keep changing under us before bootstrap gives up. */
const CONFLICT_DEADLINE_MS = 60_000;

/** Creates or updates, idempotently, what the proxy needs in the cluster (docs/architecture.md §7). */
export async function bootstrap(opts: BootstrapOptions): Promise<PlanStep[]> {
  const { CoreV1Api, RbacAuthorizationV1Api } = await import('@kubernetes/client-node');
  const rbac = opts.kc.makeApiClient(RbacAuthorizationV1Api);
  const core = opts.kc.makeApiClient(CoreV1Api);
  const steps: PlanStep[] = [];
  const server = opts.kc.getCurrentCluster()?.server;
  const authRetry = <T>(what: string, fn: () => Promise<T>) => retryOnAuth(what, fn, opts.authRetryMs ?? 0, opts.log);

  if (opts.manageRbac) {
    const roleName = `ClusterRole ${opts.names.clusterRole}`;
    const desiredRole = clusterRole(opts.names.clusterRole);
    steps.push(
      await converge(roleName, opts.dryRun, opts.log, {
        read: () =>
          authRetry('read ClusterRole', () =>
            readOrUndefined(server, `read ${roleName}`, 'ClusterRole', () => rbac.readClusterRole({ name: opts.names.clusterRole })),
          ),
        plan: whole(roleName, pickRole, desiredRole, (current) =>
          current
            ? rbac.replaceClusterRole({
                name: opts.names.clusterRole,
                body: { ...desiredRole, metadata: { ...current.metadata, labels: { ...current.metadata?.labels, ...desiredRole.metadata!.labels } } },
              })
            : rbac.createClusterRole({ body: desiredRole }),
        ),
      }),
    );

    const bindingName = `ClusterRoleBinding ${opts.names.binding}`;
    const desiredBinding = clusterRoleBinding(opts.names.binding, opts.names.clusterRole, opts.group);
    steps.push(
      await converge(bindingName, opts.dryRun, opts.log, {
        read: () =>
          authRetry('read ClusterRoleBinding', () =>
            readOrUndefined(server, `read ${bindingName}`, 'ClusterRoleBinding', () => rbac.readClusterRoleBinding({ name: opts.names.binding })),
          ),
        plan: whole(bindingName, pickBinding, desiredBinding, async (current) => {
          if (!current) return rbac.createClusterRoleBinding({ body: desiredBinding });
          // roleRef is immutable: a binding pointing elsewhere is replaced.
          if (current.roleRef.name !== desiredBinding.roleRef.name) {
            await rbac.deleteClusterRoleBinding({ name: opts.names.binding });
            return rbac.createClusterRoleBinding({ body: desiredBinding });
          }
          return rbac.replaceClusterRoleBinding({
            name: opts.names.binding,
            body: { ...desiredBinding, metadata: { ...current.metadata, labels: { ...current.metadata?.labels, ...desiredBinding.metadata!.labels } } },
          });
        }),
      }),
    );
  }

  if (opts.mapping) steps.push(await applyAwsAuth(core, server, opts.mapping, opts.dryRun, authRetry, opts.log));
  return steps;
}

/**
 * Read, merge, write. Only data.mapRoles is ours to change, so the write is a JSON patch that
 * tests the mapRoles text it read: an editor changing other keys (mapUsers, labels) does not
 * conflict with it, and one changing mapRoles makes the test fail (422), so we read and merge again.
 */
async function applyAwsAuth(
  core: import('@kubernetes/client-node').CoreV1Api,
  server: string | undefined,
  mapping: RoleMapping,
  dryRun: boolean,
  authRetry: <T>(what: string, fn: () => Promise<T>) => Promise<T>,
  log?: (line: string) => void,
): Promise<PlanStep> {
  const { PatchStrategy, setHeaderOptions } = await import('@kubernetes/client-node');
  const read = () => readOrUndefined(server, 'read ConfigMap kube-system/aws-auth', 'ConfigMap', () => core.readNamespacedConfigMap(AWS_AUTH));
  return converge('ConfigMap kube-system/aws-auth', dryRun, log, {
    read: () => authRetry('read ConfigMap kube-system/aws-auth', read),
    plan: (current) => {
      const before = current?.data?.mapRoles;
      const after = upsertMapRole(before, mapping);
      const result = step('ConfigMap kube-system/aws-auth (mapRoles)', before === undefined && !current ? undefined : (before ?? ''), after, true);
      const write = async () => {
        if (!current) {
          return core.createNamespacedConfigMap({
            namespace: AWS_AUTH.namespace,
            body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: AWS_AUTH, data: { mapRoles: after } },
          });
        }
        // Without a mapRoles key there is no value to test: the resourceVersion guards that rare write.
        const guard =
          before !== undefined
            ? [
                { op: 'test', path: '/data/mapRoles', value: before },
                { op: 'replace', path: '/data/mapRoles', value: after },
              ]
            : [
                { op: 'test', path: '/metadata/resourceVersion', value: current.metadata?.resourceVersion },
                current.data ? { op: 'add', path: '/data/mapRoles', value: after } : { op: 'add', path: '/data', value: { mapRoles: after } },
              ];
        return core.patchNamespacedConfigMap({ ...AWS_AUTH, body: guard }, setHeaderOptions('Content-Type', PatchStrategy.JsonPatch));
      };
      return { result, write };
    },
    // The API server words a failed test as a plain 422: it was one if mapRoles is no longer what we read.
    conflicted: async (err, current) => {
      if (statusOf(err) !== 422) return false;
      const now = await read().catch(() => undefined);
      return current?.data?.mapRoles !== undefined
        ? now?.data?.mapRoles !== current.data.mapRoles
        : now?.metadata?.resourceVersion !== current?.metadata?.resourceVersion;
    },
  });
}

/**
 * Read, compare, write, until the object is as desired. Another bootstrap or editor that changed
 * it in between makes the write fail (409, or what `conflicted` recognises): we read again, with
 * jittered backoff, until CONFLICT_DEADLINE_MS, then say so in one sentence; nothing is written.
 */
async function converge<T>(
  object: string,
  dryRun: boolean,
  log: ((line: string) => void) | undefined,
  io: {
    read: () => Promise<T | undefined>;
    plan: (current: T | undefined) => { result: PlanStep; write: () => Promise<unknown> };
    conflicted?: (err: unknown, current: T | undefined) => Promise<boolean>;
  },
): Promise<PlanStep> {
  const deadline = Date.now() + CONFLICT_DEADLINE_MS;
  for (let attempt = 1; ; attempt++) {
    const current = await io.read();
    const { result, write } = io.plan(current);
    if (dryRun || result.action === 'unchanged') return result;
    try {
      await write();
      return result;
    } catch (err) {
      if (statusOf(err) !== 409 && !(await io.conflicted?.(err, current))) throw kubeError(`write ${object}`, err);
      if (Date.now() >= deadline) {
        throw new ExternalError(
          `write ${object}`,
          `${object} kept changing for ${CONFLICT_DEADLINE_MS / 1000} s (${attempt} attempts) while kport tried to write it; nothing was written. Run rbac bootstrap again when the other editor is done.`,
        );
      }
      log?.(`${object} changed after we read it; merging again`);
      await sleep(Math.random() * 25 * 2 ** Math.min(attempt, 6));
    }
  }
}

/** converge's plan for an object kport owns whole: compare the fields it sets, write it all. */
function whole<T>(object: string, pick: (o: T) => unknown, desired: T, write: (current: T | undefined) => Promise<unknown>) {
  return (current: T | undefined) => ({ result: step(object, current && pick(current), pick(desired)), write: () => write(current) });
}

function pickRole(role: V1ClusterRole) {
  return { rules: (role.rules ?? []).map((r) => ({ apiGroups: r.apiGroups ?? [], resources: r.resources ?? [], verbs: r.verbs ?? [] })) };
}

function pickBinding(binding: V1ClusterRoleBinding) {
  return {
    roleRef: { apiGroup: binding.roleRef.apiGroup, kind: binding.roleRef.kind, name: binding.roleRef.name },
    subjects: (binding.subjects ?? []).map((s) => ({ kind: s.kind, name: s.name, apiGroup: s.apiGroup })),
  };
}

function step(object: string, current: unknown, desired: unknown, raw = false): PlanStep {
  const render = (v: unknown) => (v === undefined ? '' : raw ? String(v) : stringify(v));
  const before = render(current);
  const after = render(desired);
  const action: Action = current === undefined ? 'create' : before === after ? 'unchanged' : 'update';
  const diff =
    action === 'unchanged' ? '' : createTwoFilesPatch(`${object} (cluster)`, `${object} (desired)`, before, after, undefined, undefined, { context: 3 });
  return { object, action, diff };
}

async function readOrUndefined<T>(server: string | undefined, what: string, kind: string, read: () => Promise<T>): Promise<T | undefined> {
  let value: T;
  try {
    value = await read();
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw err;
  }
  return expectKind(server, what, kind, value);
}

/** EKS access entries take effect eventually: 401/403 are retried every 5 s until the deadline. */
async function retryOnAuth<T>(what: string, fn: () => Promise<T>, windowMs: number, log?: (line: string) => void): Promise<T> {
  const deadline = Date.now() + windowMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      const status = statusOf(err);
      if ((status === 401 || status === 403) && Date.now() < deadline) {
        log?.(`${what}: ${status}, waiting for the access entry to take effect...`);
        await sleep(5000);
        continue;
      }
      if (err instanceof ExternalError) throw err;
      throw kubeError(what, err);
    }
  }
}
