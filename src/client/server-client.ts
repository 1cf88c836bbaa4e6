import { X509Certificate } from 'node:crypto';
import { connect as h2connect, constants as h2constants, type ClientHttp2Session } from 'node:http2';
import { isIP } from 'node:net';
import { checkServerIdentity, connect as tlsConnect, type DetailedPeerCertificate } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { ExternalError, UserError } from '../core/errors.ts';
import { LineTooLong, splitLines } from '../core/lines.ts';
import { splitHostPort } from '../core/host-port.ts';
import { describeConnectError } from '../core/net-errors.ts';
import { pem, spkiPin } from '../pki/certs.ts';
import { ApiError } from '../api/errors.ts';
import type { RequestOf, ResponseOf, Route } from '../api/routes.ts';

const CALL_TIMEOUT_MS = 15_000;

/** The server could not be reached or the connection broke mid-call: worth retrying. */
export class ServerUnreachable extends ExternalError {
  constructor(message: string, options?: ErrorOptions) {
    super('kport server', `${message.charAt(0).toUpperCase()}${message.slice(1)}.`, 1, options);
    this.name = 'ServerUnreachable';
  }
}

export interface ServerAddress {
  host: string;
  port: number;
}

/** `host:port` as Teleport's `proxy_server` takes it (default port 3080). */
export function parseServerAddress(value: string): ServerAddress {
  const parts = splitHostPort(value);
  if (!parts?.host || parts.port === 0) throw new UserError(`teleport.proxy_server "${value}" is not host:port, such as kport.example.com:3080.`, 2);
  return { host: parts.host, port: parts.port ?? 3080 };
}

export interface Untrusted {
  /** "this agent joined" */
  trusted: string;
  next: string;
}

const AGENT_UNTRUSTED: Untrusted = {
  trusted: 'this agent joined',
  next: "if the server was rebuilt with new CAs, remove the agent's identity directory and join again with a new token",
};

export interface ClientCredentials {
  /** The server TLS CA, trusted from the first contact on. */
  ca: string;
  cert?: string;
  key?: string;
  /** Whose server this is and what to do when its certificate is not from `ca` (default: an agent's). */
  untrusted?: Untrusted;
}

/** How the pin is named to an agent (its config) and to a person (kport login's flag). */
export const PIN_NAMES = {
  agent: { name: 'teleport.ca_pin', hint: 'set ca_pin to what `kport tokens add` prints', check: 'ca_pin against `kport tokens add`' },
  person: {
    name: '--ca-pin',
    hint: 'pass --ca-pin with the pin `kport server start` printed to check it',
    check: '--ca-pin against what `kport server start` printed',
  },
} as const;

/**
 * The first contact (docs/architecture.md §9): the CA at the end of the server's chain must match one of the
 * pins, and must have issued the certificate the server presents for its name. Nothing is sent
 * before that. Returns the CA (PEM) to trust from now on.
 */
export async function fetchPinnedCA(
  address: ServerAddress,
  pins: string[],
  warn: (message: string) => void,
  pinFlag: { name: string; hint: string; check: string } = PIN_NAMES.agent,
): Promise<string> {
  const chain = await new Promise<DetailedPeerCertificate>((resolve, reject) => {
    const socket = tlsConnect({
      host: address.host,
      port: address.port,
      servername: isIP(address.host) ? undefined : address.host,
      rejectUnauthorized: false,
      ALPNProtocols: ['h2', 'http/1.1'],
    });
    socket.setTimeout(CALL_TIMEOUT_MS, () => socket.destroy(new Error('timed out')));
    socket.once('secureConnect', () => {
      // Every kport server speaks HTTP/2; a TLS port that does not is some other service.
      if (socket.alpnProtocol !== 'h2') reject(notKportServer(address, 'it speaks TLS but not HTTP/2, as every kport server does'));
      else resolve(socket.getPeerCertificate(true));
      socket.destroy();
    });
    socket.once('error', (err) => reject(unreachable(address, err)));
  });
  let ca: DetailedPeerCertificate = chain;
  while (ca.issuerCertificate && ca.issuerCertificate !== ca && ca.issuerCertificate.raw && !ca.issuerCertificate.raw.equals(ca.raw)) ca = ca.issuerCertificate;
  const caPem = pem('CERTIFICATE', ca.raw);
  const pin = spkiPin(caPem);
  const where = `${address.host}:${address.port}`;
  // A kport server presents its certificate with the CA that issued it; a lone self-signed one is another service's.
  if (ca === chain) throw notKportServer(address, "its certificate is self-signed, where a kport server's comes with the CA that issued it");
  if (pins.length === 0) {
    warn(`${pinFlag.name} is not set: trusting the CA of ${where} (${pin}) on first contact; ${pinFlag.hint}.`);
  } else if (!pins.includes(pin)) {
    throw new UserError(
      `The server at ${where} presents a CA (${pin}) that does not match ${pinFlag.name} (${pins.join(', ')}): nothing was sent; check ${pinFlag.check}, or the address.`,
      4,
    );
  }
  const leaf = new X509Certificate(chain.raw);
  const caCert = new X509Certificate(ca.raw);
  if (!leaf.verify(caCert.publicKey)) {
    throw new UserError(`The server at ${where} presents a certificate its CA (${pin}) did not issue: nothing was sent.`, 4);
  }
  if (checkServerIdentity(address.host, chain) !== undefined) {
    const names = (chain.subjectaltname ?? '').replace(/(DNS|IP Address):/g, '');
    throw new UserError(
      `The server's certificate does not name ${address.host} (it names ${names || 'nothing'}): nothing was sent; set teleport.proxy_server to one of those names, or add ${address.host} to the server's proxy_service.public_addr.`,
      4,
    );
  }
  return caPem;
}

/**
 * JSON calls to the kport server over one HTTP/2 connection, with the agent's host certificate once
 * it has one. A broken connection is redialled on the next call.
 */
export class ServerClient {
  readonly address: ServerAddress;
  #credentials: ClientCredentials;
  #session?: ClientHttp2Session;

  constructor(address: ServerAddress, credentials: ClientCredentials) {
    this.address = address;
    this.#credentials = credentials;
  }

  /** New credentials (a renewed certificate) for new calls; calls in flight finish on the old connection. */
  setCredentials(credentials: ClientCredentials): void {
    this.#credentials = credentials;
    const old = this.#session;
    this.#session = undefined;
    old?.close();
  }

  close(): void {
    this.#session?.close();
    this.#session = undefined;
  }

  #connect(): ClientHttp2Session {
    if (this.#session && !this.#session.closed && !this.#session.destroyed) return this.#session;
    const { host, port } = this.address;
    const session = h2connect(`https://${host.includes(':') ? `[${host}]` : host}:${port}`, {
      ca: this.#credentials.ca,
      ...(this.#credentials.cert && { cert: this.#credentials.cert, key: this.#credentials.key }),
      ...(isIP(host) ? {} : { servername: host }),
    });
    session.on('error', () => {});
    session.on('goaway', () => this.#session === session && (this.#session = undefined));
    session.on('close', () => this.#session === session && (this.#session = undefined));
    this.#session = session;
    return session;
  }

  /**
   * One call of a route (src/api/routes.ts): its path from the table, its answer checked with the
   * route's schema. A refusal is an ApiError, a network failure a ServerUnreachable.
   */
  async call<R extends Route>(route: R, body: RequestOf<R>): Promise<ResponseOf<R>> {
    return decodeAnswer(this.address, route, await this.#answer(route.path, body));
  }

  /**
   * A call by path with the body as it is, its answer unchecked: what any client could send, for
   * tests of the server against malformed and hostile calls. kport's own code calls routes
   * (test/unit/api-routes.test.ts holds src/ to that).
   */
  async rawCall<T = unknown>(path: string, body: unknown): Promise<T> {
    return (await this.#answer(path, body)) as T;
  }

  /** The answer's JSON, or the refusal it carries as an ApiError. */
  async #answer(path: string, body: unknown): Promise<unknown> {
    const response = await this.#request(path, body);
    let parsed: unknown;
    try {
      parsed = JSON.parse(response.body.toString('utf8'));
    } catch {
      // A load balancer's page while kport restarts is worth a retry; any other answer that is not kport's JSON comes from another service.
      if (response.status === 502 || response.status === 503 || response.status === 504)
        throw new ServerUnreachable(`the server at ${this.address.host}:${this.address.port} answered ${response.status} with something that is not JSON`);
      throw notKportServer(this.address, `it answered ${path} with HTTP ${response.status} and no kport answer`);
    }
    if (response.status !== 200) throw ApiError.fromWire(response.status, (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error);
    return parsed;
  }

  /**
   * A streaming POST: the response body, line by line (empty lines, a watch's keepalives, left out),
   * read only as fast as the caller asks for lines. A watch never ends on its own (its end is an
   * error); a `finite` answer ends, and must have come whole (its content-length).
   */
  async *lines<R extends Route>(route: R, body: RequestOf<R>, signal: AbortSignal, opts: { finite?: boolean; maxLine?: number } = {}): AsyncGenerator<string> {
    const path = route.path;
    const session = this.#connect();
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/json' }, { signal });
    stream.end(JSON.stringify(body));
    const head = await new Promise<{ status: number; length?: number }>((resolve, reject) => {
      stream.once('response', (headers) =>
        resolve({ status: Number(headers[':status']), ...(headers['content-length'] !== undefined && { length: Number(headers['content-length']) }) }),
      );
      stream.once('error', (err) => reject(unreachable(this.address, err, this.#credentials.untrusted)));
    });
    // A reader that waits (kport play until an event's time) leaves the connection silent, and the
    // server closes connections silent for two minutes: a ping every 30 s keeps it.
    const ping = setInterval(() => {
      if (!session.destroyed) session.ping(() => {});
    }, 30_000).unref();
    let received = 0;
    const counted = async function* () {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        received += chunk.length;
        yield chunk;
      }
    };
    try {
      if (head.status !== 200) {
        let text = '';
        for await (const line of splitLines(counted(), 64 * 1024)) text += line;
        throw ApiError.fromWire(head.status, (JSON.parse(text || '{}') as { error?: { code?: unknown; message?: unknown } } | null)?.error);
      }
      for await (const line of splitLines(counted(), opts.maxLine)) if (line) yield line;
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError || err instanceof LineTooLong) throw err;
      if (err instanceof SyntaxError)
        throw new ServerUnreachable(`the server at ${this.address.host}:${this.address.port} answered ${head.status} with something that is not JSON`);
      throw unreachable(this.address, err, this.#credentials.untrusted);
    } finally {
      clearInterval(ping);
      if (!stream.closed) stream.close(h2constants.NGHTTP2_CANCEL);
    }
    if (signal.aborted) return;
    if (!opts.finite) throw new ServerUnreachable(`the server at ${this.address.host}:${this.address.port} ended the watch`);
    if (head.length !== undefined && received < head.length)
      throw new ServerUnreachable(`the server at ${this.address.host}:${this.address.port} ended the answer after ${received} of its ${head.length} bytes`);
  }

  async #request(path: string, body: unknown): Promise<{ status: number; body: Buffer }> {
    let session: ClientHttp2Session;
    try {
      session = this.#connect();
    } catch (err) {
      throw unreachable(this.address, err, this.#credentials.untrusted);
    }
    return new Promise((resolve, reject) => {
      const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/json' });
      stream.setTimeout(CALL_TIMEOUT_MS, () => stream.close());
      const fail = (err: unknown) => reject(unreachable(this.address, err, this.#credentials.untrusted));
      let status = 0;
      const chunks: Buffer[] = [];
      stream.once('response', (headers) => (status = Number(headers[':status'])));
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.once('end', () => resolve({ status, body: Buffer.concat(chunks) }));
      stream.once('error', fail);
      // After 'end' this changes nothing; before it, the call was cut off.
      stream.once('close', () => fail(new Error(`the call ended early (HTTP/2 code ${stream.rstCode})`)));
      stream.end(JSON.stringify(body));
    });
  }
}

/**
 * A port that answers, but not as a kport server (plain HTTP, another TLS service): no retry, pin or
 * new identity helps, so the sentence says what was found there (exit 2: the address is wrong).
 */
export function notKportServer(address: ServerAddress, why: string): UserError {
  return new UserError(
    `The server at ${address.host}:${address.port} is not a kport server: ${why}; check the address and port (kport server start prints the one it listens on).`,
    2,
  );
}

/** A route's answer as its schema reads it; another service's JSON is said to be no kport answer. */
export function decodeAnswer<R extends Route>(address: ServerAddress, route: R, answer: unknown): ResponseOf<R> {
  const decoded = route.response.safeParse(answer);
  if (decoded.success) return decoded.data as ResponseOf<R>;
  const issue = decoded.error.issues[0];
  const named = route.answer ?? { call: route.path, is: 'its answer' };
  throw notKportServer(
    address,
    `it answered ${named.call} with something that is not ${named.is} (${issue?.path.join('.') || 'the answer'}: ${issue?.message ?? 'invalid'})`,
  );
}

/** What a TLS handshake failure says about the port: it is no kport server when it speaks no TLS, or no HTTP/2. */
function protocolMismatch(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (e.code === 'ERR_SSL_WRONG_VERSION_NUMBER' || e.code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG')
      return 'it does not speak TLS (it answered in plain text, as a plain HTTP port does)';
    if (e.code === 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL') return 'it speaks TLS but not HTTP/2, as every kport server does';
  }
  return undefined;
}

/** A failed connection: retried, except a certificate that is not from the pinned CA, or a port that is no kport server, which no retry fixes. */
function unreachable(address: ServerAddress, err: unknown, untrusted = AGENT_UNTRUSTED): Error {
  const mismatch = protocolMismatch(err);
  if (mismatch) return notKportServer(address, mismatch);
  const cause = describeConnectError(err) ?? (err as Error).message;
  const where = `${address.host}:${address.port}`;
  if (cause.startsWith('TLS verification failed')) {
    return new UserError(`The kport server at ${where} is not the one ${untrusted.trusted}: ${cause}; ${untrusted.next}.`, 4, { cause: err });
  }
  return new ServerUnreachable(`the kport server at ${where} is unreachable: ${cause}`, { cause: err });
}

/**
 * Says when the server became unreachable (then every 30 s while it stays so) and when it answers
 * again. With `giveUpAfterMs` (a one-shot run), an outage that long calls `giveUp` instead: the
 * outage starts when the first failed call started, so a call that hangs until its timeout counts.
 */
export class OutageLog {
  readonly #say: (message: string) => void;
  readonly #giveUp?: { afterMs: number; onGiveUp: (err: Error, forMs: number) => void };
  #since?: number;
  #lastSaid = 0;

  constructor(say: (message: string) => void, giveUp?: { afterMs: number; onGiveUp: (err: Error, forMs: number) => void }) {
    this.#say = say;
    this.#giveUp = giveUp;
  }

  failed(err: Error, attemptStarted = Date.now()): void {
    const now = Date.now();
    this.#since ??= attemptStarted;
    if (this.#giveUp && now - this.#since >= this.#giveUp.afterMs) return this.#giveUp.onGiveUp(err, now - this.#since);
    if (now - this.#lastSaid < 30_000) return;
    this.#lastSaid = now;
    const until = this.#giveUp ? ` for up to ${Math.round(this.#giveUp.afterMs / 1000)} s` : '';
    this.#say(`${err.message.replace(/\.$/, '')}; retrying${until}${now - this.#since >= 1000 ? ` (for ${Math.round((now - this.#since) / 1000)} s)` : ''}`);
  }

  answered(address?: ServerAddress): void {
    if (this.#since === undefined) return;
    if (address) this.#say(`the kport server at ${address.host}:${address.port} answers again after ${Math.round((Date.now() - this.#since) / 1000)} s`);
    this.#since = undefined;
    this.#lastSaid = 0;
  }
}

/**
 * Calls `fn` until it does not fail with ServerUnreachable (or a 429/503 refusal), backing off 0.25-2 s
 * with jitter, or until `signal` aborts. `retryable` narrows which failures are retried (a call that
 * changes something: only one that never reached the server).
 */
export async function retrying<T>(
  fn: () => Promise<T>,
  signal?: AbortSignal,
  outage?: OutageLog,
  address?: ServerAddress,
  retryable: (err: unknown) => boolean = () => true,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const started = Date.now();
    try {
      const result = await fn();
      outage?.answered(address);
      return result;
    } catch (err) {
      // A server too busy for now (429 join rate, 503 body budget) is as good as unreachable for now.
      const busy = err instanceof ApiError && (err.status === 429 || err.status === 503);
      if (!(err instanceof ServerUnreachable || busy) || signal?.aborted || !retryable(err)) throw err;
      if (err instanceof ServerUnreachable) outage?.failed(err, started);
      const delay = Math.min(2000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2);
      await sleep(delay, undefined, { signal }).catch(() => undefined);
      if (signal?.aborted) throw err;
    }
  }
}

/**
 * The request never did anything at the server: the connection was never made, or the server
 * turned it away unprocessed (busy, 429/503), so sending it again cannot do twice what it does.
 */
export function neverSent(err: unknown): boolean {
  if (err instanceof ApiError) return true;
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'].includes(e.code)) return true;
  }
  return false;
}
