import type { z } from 'zod';
import { ApiError } from '../../api/errors.ts';
import { backendCall } from '../../api/wire.ts';

/** One Backend method as it travels over `/v1/backend`: the route table's wire type (src/api/wire.ts). */
export type BackendCall = z.output<typeof backendCall>;

/** The longest key (or prefix, lease id, fence key) a call may name: kport's own keys stay under 300 bytes. */
export const MAX_KEY_BYTES = 1024;

/**
 * Why a call is malformed before any policy applies: a key longer than MAX_KEY_BYTES is refused
 * first, so it is never looked up, compared or copied into a refusal's reason.
 */
export function callProblem(call: BackendCall): string | undefined {
  const names: Array<[string, unknown]> = [
    ['key', 'key' in call ? call.key : undefined],
    ['prefix', 'prefix' in call ? call.prefix : undefined],
    ['lease', 'lease' in call ? call.lease : undefined],
    ['fence key', 'fence' in call ? call.fence?.key : undefined],
    ['fence value', 'fence' in call ? call.fence?.value : undefined],
  ];
  for (const [what, value] of names) {
    if (typeof value === 'string' && Buffer.byteLength(value) > MAX_KEY_BYTES)
      return `a ${what} is at most ${MAX_KEY_BYTES} bytes (this one has ${Buffer.byteLength(value)})`;
  }
  return undefined;
}

/** The one schema of a store call, the route table's; the router has parsed a call's body with it already. */
export const backendCallSchema = backendCall;

/** A /v1/backend or /v1/watch body as a BackendCall; an ApiError when it is not one. */
export function parseCall(body: unknown): BackendCall {
  const parsed = backendCallSchema.safeParse(body);
  if (parsed.success) return parsed.data;
  const op = (body as { op?: unknown } | null | undefined)?.op;
  throw new ApiError('bad_request', `not a backend call: ${JSON.stringify(op ?? null)}`);
}

/** What an audit event says was asked: the backend operation and its key, or the route. */
export function describeCall(path: string, body: unknown): string {
  const call = body as { op?: unknown; key?: unknown; prefix?: unknown } | null;
  return call && typeof call.op === 'string' ? `${call.op} ${String(call.key ?? call.prefix ?? '')}`.trim() : path;
}
