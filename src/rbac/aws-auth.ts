import { isMap, isScalar, isSeq, parseDocument, type YAMLMap, type Document } from 'yaml';
import { UserError } from '../core/errors.ts';
import { sameArn } from './arn.ts';

export interface RoleMapping {
  rolearn: string;
  username: string;
  groups: string[];
}

/**
 * Puts one mapRoles entry into the aws-auth ConfigMap's mapRoles text, editing the YAML
 * document in place so every other entry, unknown key (such as `sso`) and comment survives.
 * An entry for the same role ARN (compared as aws-iam-authenticator does) is updated, never
 * duplicated. Returns the new text (unchanged when nothing needed to change).
 */
export function upsertMapRole(mapRoles: string | undefined, mapping: RoleMapping): string {
  const doc = parseMapRoles(mapRoles ?? '');
  if (!doc.contents || (isScalar(doc.contents) && doc.contents.value == null)) doc.contents = doc.createNode([]) as never;
  const seq = doc.contents;
  if (!isSeq(seq)) throw new UserError('aws-auth mapRoles is not a list: fix kube-system/aws-auth by hand; nothing was written.');
  const matches = seq.items.filter(
    (item): item is YAMLMap => isMap(item) && typeof item.get('rolearn') === 'string' && sameArn(String(item.get('rolearn')), mapping.rolearn),
  );
  if (matches.length === 0) {
    seq.items.push(doc.createNode({ rolearn: mapping.rolearn, username: mapping.username, groups: mapping.groups }) as never);
  } else {
    for (const entry of matches) {
      if (entry.get('username') !== mapping.username) entry.set('username', mapping.username);
      const groups = entry.get('groups', true);
      const current = isSeq(groups) ? groups.items.map((g) => String(isScalar(g) ? g.value : g)) : [];
      if (current.join('\0') !== mapping.groups.join('\0')) entry.set('groups', doc.createNode(mapping.groups));
    }
  }
  const text = doc.toString({ lineWidth: 0, flowCollectionPadding: false });
  return mapRoles !== undefined && sameDocument(mapRoles, text) ? mapRoles : text;
}

/** The mapRoles entries, for `rbac check --as-role-arn`. */
export function readMapRoles(mapRoles: string | undefined): RoleMapping[] {
  const value = parseMapRoles(mapRoles ?? '').toJS() as unknown;
  if (!Array.isArray(value)) return [];
  return value.flatMap((e: Record<string, unknown>) =>
    e && typeof e.rolearn === 'string'
      ? [{ rolearn: e.rolearn, username: String(e.username ?? ''), groups: Array.isArray(e.groups) ? e.groups.map(String) : [] }]
      : [],
  );
}

function parseMapRoles(text: string): Document {
  const doc = parseDocument(text, { keepSourceTokens: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const line = e.linePos?.[0]?.line;
    const source = line ? text.split('\n')[line - 1] : undefined;
    throw new UserError(
      `aws-auth mapRoles does not parse at line ${line ?? '?'}${source !== undefined ? ` ("${source.trim()}")` : ''}: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}. Fix kube-system/aws-auth by hand; nothing was written.`,
    );
  }
  return doc;
}

function sameDocument(a: string, b: string): boolean {
  return JSON.stringify(parseDocument(a).toJS()) === JSON.stringify(parseDocument(b).toJS());
}
