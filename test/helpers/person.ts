// A person's side of the server's API, spoken with raw node:http2 (the kport client is built
// elsewhere): logins, and calls with the user certificate they return.
import { connect, type ClientHttp2Session } from 'node:http2';
import { TOTP, Secret } from 'otpauth';
import { createCsr, generateKeys, keyPem } from '../../src/pki/certs.ts';

export interface Answer {
  status: number;
  body: any;
}

/** One HTTP/2 connection, with a client certificate or none, from `localAddress` (another loopback address is another source). */
export class Session {
  readonly h2: ClientHttp2Session;
  private constructor(h2: ClientHttp2Session) {
    this.h2 = h2;
  }

  static async open(port: number, opts: { cert?: string; key?: string; localAddress?: string } = {}): Promise<Session> {
    const h2 = connect(`https://127.0.0.1:${port}`, {
      rejectUnauthorized: false,
      ...(opts.cert && { cert: opts.cert, key: opts.key }),
      ...(opts.localAddress && { localAddress: opts.localAddress }),
    } as never);
    h2.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      h2.once('connect', () => resolve());
      h2.once('error', reject);
      h2.once('close', () => reject(new Error('the server closed the connection before it was set up')));
    });
    return new Session(h2);
  }

  post(path: string, body: unknown): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = this.h2.request({ ':method': 'POST', ':path': path, 'content-type': 'application/json' });
      const chunks: Buffer[] = [];
      let status = 0;
      req.on('response', (headers) => (status = Number(headers[':status'])));
      req.on('data', (c: Buffer) => chunks.push(c));
      // A refusal before the whole body was sent resets the stream after the answer: read it on close.
      req.on('error', () => {});
      // Never hang a test: a stream the server neither answers nor closes is a failure that says so.
      req.setTimeout(30_000, () => req.close());
      req.on('close', () => {
        if (!status) return reject(new Error(`${path}: the stream closed without an answer`));
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status, body: text ? JSON.parse(text) : null });
        } catch {
          resolve({ status, body: text });
        }
      });
      req.end(JSON.stringify(body));
    });
  }

  /** Ends the connection now, so a test's connections never pile up against the server's per-address limits. */
  close(): void {
    this.h2.destroy();
  }
}

/** One call on a connection of its own. */
export async function post(port: number, path: string, body: unknown, opts: { cert?: string; key?: string; localAddress?: string } = {}): Promise<Answer> {
  const session = await Session.open(port, opts);
  try {
    return await session.post(path, body);
  } finally {
    session.close();
  }
}

export async function keyAndCsr(name: string): Promise<{ key: string; csr: string }> {
  const keys = await generateKeys();
  return { key: await keyPem(keys.privateKey), csr: await createCsr(keys, name) };
}

/** The code an authenticator app shows for `secret` at `at` (ms). */
export function totpAt(secret: string, at: number): string {
  return new TOTP({ secret: Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30 }).generate({ timestamp: at });
}

/** A six-digit code that is none of the codes valid within a step of `at`. */
export function wrongCode(secret: string, at: number): string {
  const valid = new Set([-60_000, -30_000, 0, 30_000, 60_000].map((d) => totpAt(secret, at + d)));
  for (let n = 0; ; n++) {
    const code = String(n).padStart(6, '0');
    if (!valid.has(code)) return code;
  }
}
