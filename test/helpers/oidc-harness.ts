import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { createCA } from '../../src/kube/pki.ts';
import { certPem, createAuthority, issueLeaf, verifiedCsrKey } from '../../src/pki/certs.ts';
import { Refusal } from '../../src/server/join.ts';
import type { OidcLogin } from '../../src/server/oidc.ts';
import { sourceKey } from '../../src/server/limits.ts';
import { OIDC_BEGIN_PATH, OIDC_CALLBACK_PATH, OIDC_FINISH_PATH, oidcBegin, oidcCallback, oidcFinish, redirect } from '../../src/server/oidc-routes.ts';

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
      if (req.method === 'POST' && url.pathname === OIDC_BEGIN_PATH) return send(res, 200, await oidcBegin(harness.login, body, sourceKey(req.socket.remoteAddress)));
      if (req.method === 'POST' && url.pathname === OIDC_FINISH_PATH) {
        const { user, roles, csr } = await oidcFinish(harness.login, body);
        const key = await verifiedCsrKey(csr);
        const cert = await issueLeaf(userCa, key!, { commonName: user, usage: 'client', validForMs: 12 * 3_600_000 });
        return send(res, 200, { user, roles, cert: certPem(cert), ca: tls.cert, expires: cert.notAfter.toISOString() });
      }
      send(res, 404, { error: { code: 'not_found', message: `no such call: ${url.pathname}` } });
    } catch (err) {
      const refused = err instanceof Refusal ? err : new Refusal(500, 'internal', (err as Error).message);
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
