import { X509Certificate } from 'node:crypto';
import { performServerHandshake, type ServerHttp2Session } from 'node:http2';
import { isIP } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeConnectError } from '../core/net-errors.ts';
import { ApiError } from '../api/errors.ts';
import type { ServerAddress } from '../client/server-client.ts';
import { TUNNEL_PATH, TUNNEL_PROTOCOL } from './protocol.ts';

/** How often the agent PINGs its tunnel, and how long it waits for the answer before it redials. */
export const TUNNEL_PING_MS = 15_000;
/** Redial backoff: from 1 s, doubling, at most 30 s, each wait jittered down to half. */
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30_000;
/** "tunnel lost" is said once, then at most this often while it stays lost. */
const SAY_EVERY_MS = 30_000;
/** The dial (TCP, TLS, the upgrade's answer) must be done in this long. */
const DIAL_TIMEOUT_MS = 15_000;
/** A refusal's body is one JSON sentence; more than this is not a kport server. */
const MAX_ANSWER_BYTES = 16 * 1024;
/** Streams the server may open at once on one tunnel (each is one proxied request or upgrade). */
export const TUNNEL_STREAMS = 1000;
/** Before its certificate expires (the server closes the tunnel then), a tunnel is replaced by one dialled with the renewed certificate. */
const REPLACE_BEFORE_EXPIRY_MS = 60_000;

export interface TunnelCredentials {
  cert: string;
  key: string;
  /** The server TLS CA the agent pinned when it joined. */
  ca: string;
}

export interface AgentTunnelOptions {
  server: ServerAddress;
  /** Read at each dial, so a renewed certificate is used from the next tunnel on. */
  credentials: () => TunnelCredentials;
  signal: AbortSignal;
  warn: (message: string) => void;
  /** Each tunnel once open: the agent serves the server's streams on it (AgentKubeService.serve). */
  onSession: (session: ServerHttp2Session) => void;
  /** A tunnel is open (the first, or again after it was lost). */
  onOpen?: () => void;
  pingMs?: number;
}

/**
 * The Kubernetes agent's reverse tunnel (docs/architecture.md §9, protocol.ts): it dials the server, asks for
 * the upgrade with its host certificate, and serves HTTP/2 on the connection it dialled, so the agent
 * never listens. Kept open with PING; redialled with jittered backoff while `signal` lasts. Resolves
 * when stopped; rejects with the server's refusal (an ApiError) when no redial can help (the agent was
 * removed, or its certificate does not allow the kube role).
 */
export async function runAgentTunnel(opts: AgentTunnelOptions): Promise<void> {
  const where = `${opts.server.host}:${opts.server.port}`;
  const pingMs = opts.pingMs ?? TUNNEL_PING_MS;
  let attempt = 0;
  let lostSince: number | undefined;
  let lastSaid = 0;
  const lost = (cause: string) => {
    const now = Date.now();
    lostSince ??= now;
    if (now - lastSaid < SAY_EVERY_MS) return;
    lastSaid = now;
    const since = now - lostSince >= 1000 ? ` (for ${Math.round((now - lostSince) / 1000)} s)` : '';
    opts.warn(`tunnel to ${where} lost: ${cause}; redialing${since}`);
  };
  /** The tunnel a renewal or a server's GOAWAY replaces: closed (gracefully: its streams finish) once the next one is open. */
  let replaced: ServerHttp2Session | undefined;
  /** When the last GOAWAY was answered with an immediate dial: one more within BACKOFF_MIN_MS waits its turn, so no server can make the agent spin. */
  let lastGoaway = 0;
  while (!opts.signal.aborted) {
    let tunnel: OpenTunnel;
    try {
      tunnel = await dialTunnel(opts.server, opts.credentials(), opts.signal);
    } catch (err) {
      if (opts.signal.aborted) break;
      if (err instanceof ApiError && isFinal(err)) throw err;
      lost(err instanceof ApiError ? `the server refused it: ${err.message}` : (err as Error).message);
      await backoff(attempt++, opts.signal);
      continue;
    }
    replaced?.close();
    replaced = undefined;
    if (lostSince !== undefined) opts.warn(`tunnel to ${where} open again after ${Math.round((Date.now() - lostSince) / 1000)} s`);
    lostSince = undefined;
    lastSaid = 0;
    attempt = 0;
    opts.onSession(tunnel.session);
    opts.onOpen?.();
    const gone = new AbortController();
    // A GOAWAY is the server draining (SIGTERM): it opens no new stream here, and finishes those open.
    const goaway = new Promise<'goaway'>((resolve) => tunnel.session.once('goaway', () => resolve('goaway')));
    const closed = held(tunnel, pingMs, opts.signal).finally(() => gone.abort());
    const outcome = await Promise.race([
      closed,
      goaway,
      replaceAt(tunnel.notAfter, opts.credentials, AbortSignal.any([opts.signal, gone.signal])).then(() => undefined),
    ]);
    if (opts.signal.aborted) break;
    if (outcome === 'goaway') {
      // The next tunnel is dialled now, through the same address (the load balancer sends it to a
      // server that is not draining), while this one finishes the requests it carries.
      opts.warn(`tunnel to ${where}: the server is stopping (GOAWAY); dialing a new tunnel while this one finishes its open requests`);
      if (Date.now() - lastGoaway < BACKOFF_MIN_MS) await backoff(attempt++, opts.signal);
      lastGoaway = Date.now();
      replaced = tunnel.session;
      continue;
    }
    if (outcome === undefined) {
      // Renewed: the next tunnel is dialled now, with the new certificate, before the server closes this one.
      replaced = tunnel.session;
      continue;
    }
    lost(outcome);
    await backoff(attempt++, opts.signal);
  }
  replaced?.destroy();
}

interface OpenTunnel {
  session: ServerHttp2Session;
  socket: TLSSocket;
  /** When the certificate it was dialled with expires (the server closes it then). */
  notAfter: number;
}

/** 401 (an expired certificate the renewal may still replace), 429 and 5xx pass; the rest is final. */
function isFinal(err: ApiError): boolean {
  return err.status === 403 || err.status === 400;
}

async function backoff(attempt: number, signal: AbortSignal): Promise<void> {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);
  const wait = Math.max(BACKOFF_MIN_MS, ceiling * (0.5 + Math.random() / 2));
  await sleep(wait, undefined, { signal }).catch(() => undefined);
}

/** Resolves when the certificate this tunnel was dialled with is near expiry and a renewed one is at hand. */
async function replaceAt(notAfter: number, credentials: () => TunnelCredentials, signal: AbortSignal): Promise<void> {
  for (;;) {
    const wait = Math.max(1000, notAfter - REPLACE_BEFORE_EXPIRY_MS - Date.now());
    await sleep(Math.min(wait, 2 ** 31 - 1), undefined, { signal }).catch(() => undefined);
    if (signal.aborted) return new Promise(() => {});
    if (Date.now() < notAfter - REPLACE_BEFORE_EXPIRY_MS) continue;
    if (certNotAfter(credentials().cert) > notAfter) return;
    // Not renewed yet: look again soon (the renewal retries every few seconds).
    await sleep(5000, undefined, { signal }).catch(() => undefined);
    if (signal.aborted) return new Promise(() => {});
    notAfter = Math.max(notAfter, Date.now() + REPLACE_BEFORE_EXPIRY_MS);
  }
}

function certNotAfter(pemText: string): number {
  return Date.parse(new X509Certificate(pemText).validTo);
}

/**
 * Keeps one tunnel: a PING every `pingMs`; one unanswered for as long closes it. Resolves with why
 * it closed.
 */
function held({ session, socket }: OpenTunnel, pingMs: number, signal: AbortSignal): Promise<string> {
  return new Promise((resolve) => {
    let cause: string | undefined;
    const fail = (why: string) => {
      cause ??= why;
      session.destroy();
    };
    const stop = () => session.destroy();
    signal.addEventListener('abort', stop, { once: true });
    let waiting: NodeJS.Timeout | undefined;
    const ping = setInterval(() => {
      // Destroyed, its 'close' not yet emitted: ping() would throw.
      if (waiting || session.destroyed || session.closed) return;
      waiting = setTimeout(() => fail(`no answer to a PING in ${Math.round(pingMs / 1000)} s`), pingMs);
      const sent = session.ping((err) => {
        clearTimeout(waiting);
        waiting = undefined;
        if (err && !session.destroyed) fail(`a PING failed (${err.message})`);
      });
      if (!sent) fail('the tunnel could not send a PING');
    }, pingMs);
    session.on('error', (err) => (cause ??= describeConnectError(err) ?? err.message));
    socket.on('error', (err) => (cause ??= describeConnectError(err) ?? err.message));
    session.on('goaway', () => (cause ??= 'the server closed it (GOAWAY)'));
    session.once('close', () => {
      clearInterval(ping);
      clearTimeout(waiting);
      signal.removeEventListener('abort', stop);
      socket.destroy();
      resolve(cause ?? 'the server closed the connection');
    });
  });
}

/** One dial: TLS with the host certificate, the upgrade asked and answered, then HTTP/2 with the agent as its server. */
export async function dialTunnel(server: ServerAddress, credentials: TunnelCredentials, signal?: AbortSignal): Promise<OpenTunnel> {
  const notAfter = certNotAfter(credentials.cert);
  const socket = tlsConnect({
    host: server.host,
    port: server.port,
    ...(isIP(server.host) ? {} : { servername: server.host }),
    ca: credentials.ca,
    cert: credentials.cert,
    key: credentials.key,
    // The upgrade is HTTP/1.1; after it the bytes are HTTP/2 with the roles swapped.
    ALPNProtocols: ['http/1.1'],
  });
  const abort = () => socket.destroy(new Error('stopped'));
  signal?.addEventListener('abort', abort, { once: true });
  try {
    const rest = await upgrade(socket, server);
    socket.setTimeout(0);
    const session = performServerHandshake(socket, { settings: { maxConcurrentStreams: TUNNEL_STREAMS, enablePush: false } });
    // Bytes that came with the 101 (the server's HTTP/2 preface) go to the session, not lost.
    if (rest.length > 0) socket.unshift(rest);
    session.on('error', () => {});
    return { session, socket, notAfter };
  } catch (err) {
    socket.destroy();
    throw err;
  } finally {
    signal?.removeEventListener('abort', abort);
  }
}

/** Writes the upgrade request and reads the answer's head; a 101 gives back the bytes after it, anything else is thrown. */
function upgrade(socket: TLSSocket, server: ServerAddress): Promise<Buffer> {
  const host = server.host.includes(':') ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`;
  return new Promise((resolve, reject) => {
    let received = Buffer.alloc(0);
    const done = (err?: Error, rest?: Buffer) => {
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.off('timeout', onTimeout);
      if (err) reject(err);
      else resolve(rest ?? Buffer.alloc(0));
    };
    const onError = (err: Error) => done(new Error(describeConnectError(err) ?? err.message, { cause: err }));
    const onClose = () =>
      done(new Error(received.length ? 'the server closed the connection before its answer ended' : 'the server closed the connection without answering'));
    const onTimeout = () => {
      done(new Error(`no answer in ${DIAL_TIMEOUT_MS / 1000} s`));
      socket.destroy();
    };
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) {
        if (received.length > MAX_ANSWER_BYTES) done(new Error('the server answered with something that is not HTTP'));
        return;
      }
      const head = received.subarray(0, end).toString('latin1');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
      const after = received.subarray(end + 4);
      if (status === 101) {
        if (!new RegExp(`^upgrade:\\s*${TUNNEL_PROTOCOL.replace(/[./]/g, '\\$&')}\\s*$`, 'im').test(head))
          return done(new Error(`the server switched to a protocol other than ${TUNNEL_PROTOCOL}`));
        // Pause before the HTTP/2 session takes the socket over, so no byte is read in between.
        socket.pause();
        return done(undefined, after);
      }
      if (status === 0) return done(new Error('the server answered with something that is not HTTP'));
      const length = Number(/^content-length:\s*(\d+)/im.exec(head)?.[1] ?? 0);
      if (after.length < Math.min(length, MAX_ANSWER_BYTES)) return;
      done(refusal(status, after.subarray(0, length).toString('utf8')));
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.setTimeout(DIAL_TIMEOUT_MS, onTimeout);
    socket.once('secureConnect', () =>
      socket.write(`GET ${TUNNEL_PATH} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: ${TUNNEL_PROTOCOL}\r\n\r\n`),
    );
  });
}

function refusal(status: number, body: string): Error {
  try {
    const error = (JSON.parse(body) as { error?: { code?: string; message?: string } }).error;
    if (error?.message) return ApiError.fromWire(status, error);
  } catch {}
  return new ApiError('unknown', `HTTP ${status} to ${TUNNEL_PATH} (a server older than this agent does not take tunnels)`, { status });
}
