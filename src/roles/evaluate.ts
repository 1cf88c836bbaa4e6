import { matchLabels } from '../resources/labels.ts';
import { canonicalResource, ttlMs, type RuleVerb } from '../resources/role-check.ts';
import type { RoleConditions, RoleV7 } from '../resources/role.ts';

/** What a person's roles allow on one cluster (RoleSet.kubeAccess); the forwarder acts within it. */
export interface KubeAccess {
  /** Kubernetes users the person may act as on this cluster. */
  users: string[];
  /** Kubernetes groups, `system:authenticated` always among them. */
  groups: string[];
}

/**
 * What a person's roles allow, as Teleport's RoleSet decides it: deny wins over allow, `*` in
 * resources and verbs matches any. Kubernetes access is the union over the allow sides whose
 * kubernetes_labels match a cluster, minus what any deny side takes away.
 */
export class RoleSet {
  readonly roles: readonly RoleV7[];
  readonly user: string;

  constructor(roles: RoleV7[], user: string) {
    this.roles = roles;
    this.user = user;
  }

  allows(resource: string, verb: RuleVerb): boolean {
    const wanted = canonicalResource(resource);
    const matches = (c: RoleConditions | undefined) =>
      (c?.rules ?? []).some((r) => r.verbs.some((v) => v === '*' || v === verb) && r.resources.some((x) => x === '*' || canonicalResource(x) === wanted));
    if (this.roles.some((r) => matches(r.spec.deny))) return false;
    return this.roles.some((r) => matches(r.spec.allow));
  }

  /**
   * Whether a rule grants `verb` on a record of `resource` that carries `labels` (a kube_cluster):
   * a role's rule reaches the records its allow kubernetes_labels match (`{}` matches none), or every
   * record when the role has no kubernetes_labels at all (as the built-in editor); a deny rule for the verb, or a deny side whose
   * kubernetes_labels match the record, removes it whatever allows it.
   */
  allowsLabelled(resource: string, verb: RuleVerb, labels: Record<string, string>): boolean {
    if (!this.allows(resource, verb)) return false;
    const denyLabels = (c: RoleConditions | undefined) =>
      c?.kubernetes_labels !== undefined && Object.keys(c.kubernetes_labels).length > 0 && matchLabels(c.kubernetes_labels, labels);
    if (this.roles.some((r) => denyLabels(r.spec.deny))) return false;
    const wanted = canonicalResource(resource);
    const grants = (c: RoleConditions) =>
      (c.rules ?? []).some((r) => r.verbs.some((v) => v === '*' || v === verb) && r.resources.some((x) => x === '*' || canonicalResource(x) === wanted));
    return this.roles.some((r) => {
      if (!grants(r.spec.allow)) return false;
      // Absent: the role does not speak of clusters, and its rule covers them all; `{}` matches none, as for access.
      const own = r.spec.allow.kubernetes_labels;
      return own === undefined || (Object.keys(own).length > 0 && matchLabels(own, labels));
    });
  }

  /**
   * undefined: the cluster is not allowed and must look exactly like a missing one. A deny side
   * whose kubernetes_labels match the cluster removes it whatever allows it; deny kubernetes_groups
   * and kubernetes_users remove those names on every cluster (`*` removes all). Empty allow
   * kubernetes_labels match nothing, as in Teleport.
   */
  kubeAccess(clusterLabels: Record<string, string>): KubeAccess | undefined {
    const matching = (c: RoleConditions | undefined) =>
      c?.kubernetes_labels !== undefined && Object.keys(c.kubernetes_labels).length > 0 && matchLabels(c.kubernetes_labels, clusterLabels);
    if (this.roles.some((r) => matching(r.spec.deny))) return undefined;
    const allowing = this.roles.filter((r) => matching(r.spec.allow)).map((r) => r.spec.allow);
    if (allowing.length === 0) return undefined;
    const denied = (key: 'kubernetes_groups' | 'kubernetes_users') => new Set(this.roles.flatMap((r) => r.spec.deny?.[key] ?? []));
    const without = (names: string[], deny: Set<string>) => (deny.has('*') ? [] : names.filter((n) => !deny.has(n)));
    const allowedUsers = unique(allowing.flatMap((c) => c.kubernetes_users ?? []));
    const users = without(allowedUsers.length > 0 ? allowedUsers : [this.user], denied('kubernetes_users'));
    // With no Kubernetes user left there is nobody to act as: the cluster is out of reach.
    if (users.length === 0) return undefined;
    // system:authenticated is what the API server gives every named user anyway; a deny cannot take it away.
    const groups = unique([
      ...without(
        allowing.flatMap((c) => c.kubernetes_groups ?? []),
        denied('kubernetes_groups'),
      ),
      'system:authenticated',
    ]);
    return { users, groups };
  }

  /**
   * Whether exec and attach on a cluster with these labels must be recorded: a role sets
   * require_session_recording and allows the cluster, or sets it and allows no cluster at all (a
   * role that only carries the option applies it everywhere). The strictest role wins.
   */
  requiresSessionRecording(clusterLabels: Record<string, string>): boolean {
    return this.roles.some((r) => {
      if (r.spec.options?.require_session_recording !== true) return false;
      const labels = r.spec.allow.kubernetes_labels;
      return labels === undefined || Object.keys(labels).length === 0 || matchLabels(labels, clusterLabels);
    });
  }

  /** The shortest max_session_ttl of the roles, capped at `defaultMs`. */
  maxSessionTtlMs(defaultMs: number): number {
    const ttls = this.roles.flatMap((r) => {
      const text = r.spec.options?.max_session_ttl;
      return text === undefined ? [] : (ttlMs(text) ?? []);
    });
    return Math.min(defaultMs, ...ttls);
  }
}

const unique = (list: string[]) => [...new Set(list)];
