// The one gate of people's and agents' store calls (docs/architecture.md §9), as Teleport's
// ServerWithRoles authorises (lib/auth/auth_with_roles.go, `action(kind, verb)`): a call's key is
// resolved once, through the kinds' key layouts (src/resources/kinds.ts), to a kind and a name,
// then decided by kind and verb against the caller's roles (a person's role rules, an agent's
// certificate roles) and the kind's write hook (kind-hooks.ts). Every key no kind lays out is out
// of reach: an allowlist. Leases and leader keys are the raw surface of policy.ts.
import type { Item, WatchEvent } from '../../backend/backend.ts';
import { kindOfKey, type KindDescriptor, type Verb } from '../../resources/kinds.ts';
import { parseObject } from '../../resources/views.ts';
import type { RoleSet } from '../../roles/evaluate.ts';
import { AGENT_WRITES, PERSON_WRITES, type WriteCall } from './kind-hooks.ts';
import type { BackendCall } from './backend-call.ts';
import type { HostCaller } from '../call/caller.ts';

/** A call on resources: one key, or one kind's prefix. */
export type ResourceCall = Exclude<BackendCall, { op: 'grant' | 'keepalive' | 'revoke' }>;

/** The kind and name a call names, and what it does to them. */
export interface Action {
  kind: KindDescriptor;
  name: string;
  verb: Verb;
}

const isWrite = (call: ResourceCall): call is WriteCall => call.op === 'put' || call.op === 'create' || call.op === 'cas' || call.op === 'delete';

/** The key or prefix a call names. */
export const keyOf = (call: ResourceCall): string => ('key' in call ? call.key : call.prefix);

/**
 * What a call does to which record: a put on a key that holds nothing creates it, one that holds
 * something updates it (`current`, read before). Undefined: no kind lays out this key.
 */
export function actionOf(call: ResourceCall, current?: Item): Action | undefined {
  const target = kindOfKey(keyOf(call));
  if (!target) return undefined;
  const verb: Verb =
    call.op === 'get'
      ? 'read'
      : call.op === 'list' || call.op === 'watch'
        ? 'list'
        : call.op === 'delete'
          ? 'delete'
          : call.op === 'create' || (call.op === 'put' && !current)
            ? 'create'
            : 'update';
  return { ...target, verb };
}

/**
 * Why this agent may not make this call, or undefined. It reads the kinds its certificate's roles
 * read; it writes the kinds they write, each write judged by the kind's hook (no hook: refused).
 * `current` is what the key holds now; `registered` how many kubeconfig_file clusters it has.
 */
export function agentRefusal(caller: HostCaller, call: ResourceCall, current?: Item, registered = 0): string | undefined {
  const key = keyOf(call);
  const action = actionOf(call, current);
  const may = (roles: readonly string[]) => roles.some((role) => caller.roles.includes(role));
  if (!isWrite(call)) return action && may(action.kind.agents.read) ? undefined : `may not read ${key}`;
  if (!action) return `may not write ${key}`;
  if (!may(action.kind.agents.write)) return action.kind.agents.refused ?? `may not write ${key}`;
  const hook = AGENT_WRITES[action.kind.kind];
  return hook ? hook(caller, call, action.name, current, registered) : `may not write ${key}`;
}

/** A stored item as an agent sees it (its kind's agent view; other items as they are); undefined: not shown. */
export function agentView(item: Item): Item | undefined {
  const view = kindOfKey(item.key)?.kind.agents.view;
  return view ? view(item) : item;
}

/**
 * Why a person with these roles may not make this call, or undefined. Reads need the kind's read
 * or list rule (a kind read by labels is filtered record by record instead: personView); writes
 * need the rule's verb, a verb the kind takes over /v1/backend at all, no lease or fence, a value
 * of that kind and name, and the kind's hook.
 */
export function personRefusal(roles: RoleSet, call: ResourceCall, current?: Item): string | undefined {
  if (call.op === 'list' || call.op === 'watch') {
    if (!/^\/resources\/[a-z_]+\//.test(call.prefix)) return `may not list ${call.prefix}: list one kind at a time (/resources/<kind>/)`;
  }
  const key = keyOf(call);
  const action = actionOf(call, current);
  if (!isWrite(call)) {
    if (!action) return `may not read ${key}`;
    const { kind, verb } = action;
    if (kind.people.byLabels || roles.allows(kind.rule, verb) || roles.allows(kind.rule, verb === 'read' ? 'list' : 'read')) return undefined;
    return `may not ${verb} ${kind.rule} resources (no role allows it)`;
  }
  if (!action) return `may not write ${key}`;
  if (('lease' in call && call.lease) || call.fence) return 'writes without leases or fences';
  const { kind, name, verb } = action;
  if (!roles.allows(kind.rule, verb)) return `may not ${verb} ${kind.rule} resources (no role allows it)`;
  if (!kind.people.writes.includes(verb))
    return `may not ${verb} ${kind.rule} resources over /v1/backend: ${kind.people.whyNot ?? 'kport does not change them this way'}`;
  // A record changed or removed is judged by the labels it has now too, not only by those it is given.
  if (kind.people.byLabels && current && !roles.allowsLabelled(kind.rule, verb, labelsOf(current.value))) return outsideLabels(kind.rule, verb, name);
  if (call.op === 'delete') return undefined;
  const value = parseObject(call.value);
  const meta = value?.metadata as { name?: unknown } | undefined;
  if (value?.kind !== kind.kind || meta?.name !== name)
    return `writes a ${kind.kind} named ${name}, but the value is ${JSON.stringify(value?.kind ?? null)}/${JSON.stringify(meta?.name ?? null)}`;
  if (kind.people.byLabels && !roles.allowsLabelled(kind.rule, verb, labelsOf(call.value))) return outsideLabels(kind.rule, verb, name);
  return PERSON_WRITES[kind.kind]?.(value, current);
}

/** A stored item as a person with these roles sees it; undefined when it must look missing. */
export function personView(roles: RoleSet, item: Item): Item | undefined {
  const target = kindOfKey(item.key);
  if (!target) return undefined;
  const { kind } = target;
  const shown = kind.people.view ? kind.people.view(item) : item;
  if (!shown) return undefined;
  if (kind.people.byLabels) {
    // Shown when a rule reaches it (within that role's kubernetes_labels) or their kubernetes_labels
    // let them use it; a matching deny label hides it either way; otherwise it looks missing.
    const labels = labelsOf(item.value);
    return roles.allowsLabelled(kind.rule, 'read', labels) || roles.kubeAccess(labels) ? shown : undefined;
  }
  return roles.allows(kind.rule, 'read') || roles.allows(kind.rule, 'list') ? shown : undefined;
}

/** A watch event as a person sees it: a delete of a kind they could list passes (they saw its put or not), a put as personView. */
export function personEvent(roles: RoleSet, event: WatchEvent): WatchEvent | undefined {
  if (event.type !== 'put') return kindOfKey(event.key) ? event : undefined;
  const item = personView(roles, event.item);
  return item && { type: 'put', item };
}

/** A stored record's metadata.labels ({} when it has none or is no object). */
function labelsOf(value: string): Record<string, string> {
  const labels = (parseObject(value)?.metadata as { labels?: unknown } | undefined)?.labels;
  return labels !== null && typeof labels === 'object' && !Array.isArray(labels) ? (labels as Record<string, string>) : {};
}

const outsideLabels = (rule: string, verb: string, name: string) =>
  `may not ${verb} ${rule} ${name}: no role's ${rule} rule reaches its labels (a role's rules cover the clusters its kubernetes_labels match, and a deny label removes one)`;
