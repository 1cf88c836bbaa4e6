import { z } from 'zod';
import { ApiError } from '../../api/errors.ts';
import type { Fence } from '../../backend/backend.ts';
import { LIMITS } from '../call/limits.ts';

/** One Backend method as it travels over `/v1/backend`. */
export type BackendCall =
  | { op: 'get'; key: string }
  | { op: 'list'; prefix: string }
  | { op: 'watch'; prefix: string }
  | { op: 'put' | 'create'; key: string; value: string; ttl_ms?: number; lease?: string; fence?: Fence }
  | { op: 'cas'; key: string; value: string; revision: number; ttl_ms?: number; lease?: string; fence?: Fence }
  | { op: 'delete'; key: string; revision?: number; fence?: Fence }
  | { op: 'grant'; ttl_ms: number }
  | { op: 'keepalive' | 'revoke'; lease: string };

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

// A /v1/backend or /v1/watch body, decoded at the boundary (docs/style.md 23): every string at
// most a body's size, every number finite, nothing else kept.
const text = z.string().max(LIMITS.agentBodyBytes);
const optionalNumber = z.number().optional();
const fence = z.object({ key: z.string(), value: z.string() }).optional();
const write = { key: text, value: text, ttl_ms: optionalNumber, lease: text.optional(), fence };
export const backendCallSchema: z.ZodType<BackendCall> = z.union([
  z.object({ op: z.literal('get'), key: text }),
  z.object({ op: z.enum(['list', 'watch']), prefix: text }),
  z.object({ op: z.enum(['put', 'create']), ...write }),
  z.object({ op: z.literal('cas'), ...write, revision: z.number() }),
  z.object({ op: z.literal('delete'), key: text, revision: optionalNumber, fence }),
  z.object({ op: z.literal('grant'), ttl_ms: z.number() }),
  z.object({ op: z.enum(['keepalive', 'revoke']), lease: text }),
]);

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
