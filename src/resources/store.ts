import type { Backend, Item } from '../backend/backend.ts';
import { kindPrefix, resourceKey, type Resource } from './resource.ts';

export function encodeResource(resource: Resource): string {
  const { revision: _revision, ...metadata } = resource.metadata;
  return JSON.stringify({ ...resource, metadata });
}

export function decodeResource<R extends Resource>(item: Item): R {
  const resource = JSON.parse(item.value) as R;
  resource.metadata.revision = item.revision;
  return resource;
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
