import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { Agent, fetch } from 'undici';
import type { OidcAuthentication } from '../../src/config/schema.ts';
import { createCA } from '../../src/kube/pki.ts';
import { certPem, createAuthority, createCsr, generateKeys, issueLeaf, verifiedCsrKey } from '../../src/pki/certs.ts';
import { ApiError } from '../../src/api/errors.ts';
import type { OidcLogin } from '../../src/server/auth/oidc.ts';
import { sourceKey } from '../../src/server/call/limits.ts';
import { OIDC_BEGIN_PATH, OIDC_CALLBACK_PATH, OIDC_FINISH_PATH, oidcBegin, oidcCallback, oidcFinish, redirect } from '../../src/server/auth/oidc-routes.ts';
import type { OidcPeer } from '../peers/oidc.ts';
import { Browser } from './browser.ts';

/** Where the harness's OidcLogin keeps logins in flight: a store of its own, with a seal key of its own. */
export function harnessStore(): { backend: MemoryBackend; sealKey: Buffer } {
  return { backend: new MemoryBackend(), sealKey: randomBytes(32) };
}

/** Where the harness's logins send the browser back to: a client listener that is never there (tests stop before it). */
export const CLIENT_LOOPBACK = 'http://127.0.0.1:9/callback';

export interface Harness {
  url: string;
  callbackUrl: string;
  /** The harness's TLS CA, for the browser and the API client. */
  caPem: string;
  /** The OidcLogin behind the routes, set once the provider (which needs callbackUrl) runs. */
  login?: OidcLogin;
  /** Refusals the callback reported for the audit, in order. */
  callbackRefusals: string[];
  close(): Promise<void>;
}

/**
 * The three /v1/login/oidc/* routes over real HTTPS (HTTP/2 and HTTP/1.1, as the kport server
 * serves them), wired the way the kport server's router wires them: one line each, and finish
 * signs a user certificate for the CSR sent at begin.
 */
export async function startHarness(): Promise<Harness> {
  const tls = await createCA('kport-test-harness-tls');
  const serving = await tls.issue({ commonName: 'kport server', ips: ['127.0.0.1'], usage: 'server' });
  const userCa = await createAuthority('kport-test-user-ca', 86_400_000);
  const harness: Harness = { url: '', callbackUrl: '', caPem: tls.cert, callbackRefusals: [], close: async () => {} };

  async function handle(req: Http2ServerRequest, res: Http2ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    try {
      if (req.method === 'GET' && url.pathname === OIDC_CALLBACK_PATH) {
        const answer = await oidcCallback(harness.login, url.searchParams);
        if (answer.refusal) harness.callbackRefusals.push(answer.refusal.message);
        return redirect(res, answer.location);
      }
      const chunks: Buffer[] = [];
      for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
      if (req.method === 'POST' && url.pathname === OIDC_BEGIN_PATH)
        return send(res, 200, await oidcBegin(harness.login, body, sourceKey(req.socket.remoteAddress)));
      if (req.method === 'POST' && url.pathname === OIDC_FINISH_PATH) {
        const { user, roles, csr } = await oidcFinish(harness.login, body);
        const key = await verifiedCsrKey(csr);
        const cert = await issueLeaf(userCa, key!, { commonName: user, usage: 'client', validForMs: 12 * 3_600_000 });
        return send(res, 200, { user, roles, cert: certPem(cert), ca: tls.cert, expires: cert.notAfter.toISOString() });
      }
      send(res, 404, { error: { code: 'not_found', message: `no such call: ${url.pathname}` } });
    } catch (err) {
      const refused = err instanceof ApiError ? err : new ApiError('internal', (err as Error).message);
      send(res, refused.status, { error: { code: refused.code, message: refused.message } });
    }
  }

  const server = createSecureServer({ allowHTTP1: true, cert: serving.cert, key: serving.key });
  server.on('request', (req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as { port: number };
  harness.url = `https://127.0.0.1:${port}`;
  harness.callbackUrl = `${harness.url}${OIDC_CALLBACK_PATH}`;
  harness.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      setTimeout(resolve, 1000).unref();
    });
  return harness;
}

function send(res: Http2ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

export interface HarnessClient {
  /** A call to the harness's API as the kport client makes it: JSON, and a refusal thrown as its code, status and sentence. */
  post(path: string, body: unknown): Promise<any>;
  begin(): Promise<{ auth_url: string; attempt: string; secret: string; csr: string }>;
  /** begin, sign in at the provider as `login`, and stop where the browser would reach the client's listener. */
  signInToLoopback(
    login: string,
    peer: OidcPeer,
  ): Promise<{ begun: { auth_url: string; attempt: string; secret: string; csr: string }; attempt: string; code: string }>;
  /** The whole login as `login`: the finish call's answer, or its refusal thrown. */
  finishAs(login: string, peer: OidcPeer): Promise<any>;
  close(): Promise<void>;
}

export function harnessClient(harness: Harness): HarnessClient {
  const api = new Agent({ connect: { ca: harness.caPem } });
  const client: HarnessClient = {
    async post(path, body) {
      const res = await fetch(`${harness.url}${path}`, {
        method: 'POST',
        body: JSON.stringify(body),
        headers: { 'content-type': 'application/json' },
        dispatcher: api,
      });
      const answer = (await res.json()) as any;
      if (res.status !== 200) throw Object.assign(new Error(answer.error.message), { code: answer.error.code, status: res.status });
      return answer;
    },
    async begin() {
      const csr = await createCsr(await generateKeys(), 'oidc-test');
      return { ...(await client.post(OIDC_BEGIN_PATH, { csr, redirect_uri: CLIENT_LOOPBACK })), csr };
    },
    async signInToLoopback(login, peer) {
      const begun = await client.begin();
      const browser = new Browser([peer.caPem, harness.caPem]);
      try {
        const { stoppedAt } = await browser.signIn(begun.auth_url, login, (url) => url.startsWith(CLIENT_LOOPBACK));
        assert.ok(stoppedAt, `the browser never reached the client's listener; visited:\n${browser.visited.join('\n')}`);
        const query = new URL(stoppedAt).searchParams;
        return { begun, attempt: query.get('attempt')!, code: query.get('code')! };
      } finally {
        await browser.close();
      }
    },
    async finishAs(login, peer) {
      const { begun, attempt, code } = await client.signInToLoopback(login, peer);
      return client.post(OIDC_FINISH_PATH, { attempt, secret: begun.secret, code });
    },
    close: () => api.close(),
  };
  return client;
}

/** The server's OIDC settings for a provider peer: groups dev -> access, ^op[a-z]*$ -> editor and auditor. */
export function oidcSettings(peer: OidcPeer, more: Partial<OidcAuthentication> = {}): OidcAuthentication {
  return {
    type: 'oidc',
    issuer_url: peer.issuer,
    client_id: peer.clientId,
    client_secret: peer.clientSecret,
    ca_file: peer.caFile,
    username_claim: 'preferred_username',
    scope: ['groups'],
    claims_to_roles: [
      { claim: 'groups', value: 'dev', roles: ['access'] },
      { claim: 'groups', value: '^op[a-z]*$', roles: ['editor', 'auditor'] },
    ],
    ...more,
  };
}
