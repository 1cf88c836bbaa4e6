import { CredentialsError, ExternalError } from '../core/errors.ts';
import { describeConnectError } from '../core/net-errors.ts';

/** Turns a client-node failure into one sentence that says what was being done. */
export function kubeError(what: string, err: unknown): Error {
  const e = err as { code?: number; body?: unknown; message?: string; cause?: { code?: string } };
  const status = e.code;
  let detail = e.message ?? String(err);
  try {
    const body = typeof e.body === 'string' ? JSON.parse(e.body) : e.body;
    if (body && typeof body === 'object' && 'message' in body) detail = String((body as { message: unknown }).message);
  } catch {}
  if (status === 401) return new CredentialsError(what, `Kubernetes rejected the credentials while trying to ${what} (401): check the kubeconfig user or AWS identity.`, { cause: err });
  if (status === 403) return new CredentialsError(what, `Kubernetes refused to ${what} (403): ${detail}. Run this with an identity allowed to manage RBAC (cluster-admin).`, { cause: err });
  if (typeof status !== 'number') return new ExternalError(what, `Cannot reach the cluster to ${what}: ${describeConnectError(err) ?? detail}.`, 1, { cause: err });
  return new ExternalError(what, `Failed to ${what} (${status}): ${detail}.`, 1, { cause: err });
}

export function statusOf(err: unknown): number | undefined {
  return (err as { code?: number }).code;
}
