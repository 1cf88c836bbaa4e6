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
  if (status === 401)
    return new CredentialsError(what, `Kubernetes rejected the credentials while trying to ${what} (401): check the kubeconfig user or AWS identity.`, {
      cause: err,
    });
  if (status === 403)
    return new CredentialsError(what, `Kubernetes refused to ${what} (403): ${detail}. Run this with an identity allowed to manage RBAC (cluster-admin).`, {
      cause: err,
    });
  if (typeof status !== 'number')
    return new ExternalError(what, `Cannot reach the cluster to ${what}: ${describeConnectError(err) ?? detail}.`, 1, { cause: err });
  return new ExternalError(what, `Failed to ${what} (${status}): ${detail}.`, 1, { cause: err });
}

export function statusOf(err: unknown): number | undefined {
  return (err as { code?: number }).code;
}

/**
 * client-node turns any 200 answer into a typed object, even a web page or `{}` from something
 * that is not a Kubernetes API server (a proxy's login page, a wrong port): what is not the kind
 * asked for is refused here, naming the server that answered, before kport reads fields it lacks.
 */
export function expectKind<T>(server: string | undefined, what: string, kind: string, value: T): T {
  const got = (value as { kind?: unknown } | undefined | null)?.kind;
  if (got === kind) return value;
  const answer = typeof got === 'string' && got ? `a ${got}` : 'something that is not a Kubernetes object';
  throw new ExternalError(
    what,
    `${server ?? 'The cluster'} answered the request to ${what} with ${answer} where a ${kind} was expected: check that the kubeconfig's server is the cluster's Kubernetes API server.`,
  );
}
