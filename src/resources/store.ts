import type { Backend, Item } from '../backend/backend.ts';
import { UserError } from '../core/errors.ts';
import { kindOfKey, type KindDescriptor } from './kinds.ts';
import { kindPrefix, resourceKey, type Resource } from './resource.ts';

/**
 * A stored record that is not what its kind says (written by hand, or by a kport that is not this
 * one): named by kind and name, never handed on as if it were one.
 */
export class StoredResourceError extends UserError {
  readonly kind: string;
  readonly resource: string;
  constructor(kind: string, name: string, problem: string) {
    super(
      `The stored ${kind} ${JSON.stringify(name)} cannot be read (${problem}): write it again with kport create -f --force, or remove it with kport rm ${kind}/${name}.`,
    );
    this.name = 'StoredResourceError';
    this.kind = kind;
    this.resource = name;
  }
}

export function encodeResource(resource: Resource): string {
  const { revision: _revision, ...metadata } = resource.metadata;
  return JSON.stringify({ ...resource, metadata });
}

/**
 * The record an item holds, checked against its kind's stored schema (src/resources/kinds.ts), with
 * the item's revision; a StoredResourceError when it is not one. The caller names the type of the
 * key's kind; readResource and readResources take it from the descriptor.
 */
export function decodeResource<R extends Resource>(item: Item): R {
  const target = kindOfKey(item.key);
  if (!target) throw new StoredResourceError('resource', item.key, 'no kind of kport is stored under this key');
  return decodeAs(target.kind, target.name, item) as R;
}

function decodeAs<R extends Resource>(kind: KindDescriptor<R>, name: string, item: Item): R {
  let value: unknown;
  try {
    value = JSON.parse(item.value);
  } catch {
    throw new StoredResourceError(kind.kind, name, 'it is not JSON');
  }
  const checked = kind.stored.safeParse(value);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    throw new StoredResourceError(kind.kind, name, `${issue?.path.join('.') || 'the record'}: ${issue?.message ?? 'invalid'}`);
  }
  const resource = checked.data;
  if (resource.metadata.name !== name) throw new StoredResourceError(kind.kind, name, `it names ${JSON.stringify(resource.metadata.name)}`);
  resource.metadata.revision = item.revision;
  return resource;
}

/** The record of this kind and name, typed by its descriptor and checked by its schema; undefined when there is none. */
export async function readResource<R extends Resource>(backend: Backend, kind: KindDescriptor<R>, name: string): Promise<R | undefined> {
  const item = await backend.get(kind.key(name));
  return item && decodeAs(kind, name, item);
}

/** Every record of this kind, typed by its descriptor and checked by its schema. */
export async function readResources<R extends Resource>(backend: Backend, kind: KindDescriptor<R>): Promise<R[]> {
  return (await backend.list(kind.key(''))).map((item) => decodeAs(kind, kind.nameOf(item.key) ?? item.key, item));
}

export async function listResources<R extends Resource>(backend: Backend, kind: string): Promise<R[]> {
  return (await backend.list(kindPrefix(kind))).map((item) => decodeResource<R>(item));
}

export async function getResource<R extends Resource>(backend: Backend, kind: string, name: string): Promise<R | undefined> {
  const item = await backend.get(resourceKey(kind, name));
  return item && decodeResource<R>(item);
}

function ttlOf(resource: Resource, now: number): number | undefined {
  return resource.metadata.expires ? Math.max(0, Date.parse(resource.metadata.expires) - now) : undefined;
}

/** Creates the resource; false when one of that name exists. */
export async function createResource(backend: Backend, resource: Resource, now = Date.now()): Promise<boolean> {
  const ttlMs = ttlOf(resource, now);
  return !!(await backend.create(resourceKey(resource.kind, resource.metadata.name), encodeResource(resource), ttlMs === undefined ? {} : { ttlMs }));
}

export async function upsertResource(backend: Backend, resource: Resource, now = Date.now()): Promise<void> {
  const ttlMs = ttlOf(resource, now);
  await backend.put(resourceKey(resource.kind, resource.metadata.name), encodeResource(resource), ttlMs === undefined ? {} : { ttlMs });
}

export async function deleteResource(backend: Backend, kind: string, name: string): Promise<boolean> {
  return backend.delete(resourceKey(kind, name));
}
