import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { constants, type ClientHttp2Stream, type ClientSessionRequestOptions } from 'node:http2';
import type { Readable, Writable } from 'node:stream';
import { isImpersonation } from '../../kube/access.ts';
import { ChunkRelay } from '../../kube/relay.ts';
import { dropsRequestHeader, responseHeaders } from '../../kube/forward-headers.ts';
import { requestInfo } from '../../kube/request-info.ts';
import { abortAfter, type ClientSide } from '../../kube/client-side.ts';
import { IDENTITY_HEADER, TUNNEL_AUTHORITY } from '../../reversetunnel/protocol.ts';
import { BUSY_RESET } from '../../reversetunnel/tunnel-registry.ts';
import { isJsonWatch, logLine, watchErrorEvent, type Ending } from './kube-ending.ts';

/** A request body kept in memory for another agent while none has answered; a larger one is not retried. */
export const MAX_REPLAY_BYTES = 1 << 20;

/** One person's request and its response, whichever HTTP version it came on: the forwarding engine's adapter. */
export type TunnelClient = ClientSide;

export interface Attempts {
  /** Agents to try, in order. */
  hosts: string[];
  /** A stream on the agent's tunnel (TunnelRegistry.request): 'busy' when its tunnels are full, undefined when it has none. */
  open(hostId: string, headers: OutgoingHttpHeaders | string[], options?: ClientSessionRequestOptions): ClientHttp2Stream | 'busy' | undefined;
  identity(hostId: string): Promise<{ token: string; sessionId: string }>;
}

export interface Outcome {
  status: number;
  hostId?: string;
  sessionId?: string;
  error?: string;
}

/** A request being forwarded, which kport may end with a reason (kube-ending.ts). */
export interface Forwarding {
  /** Ends it with `ending`: a watch's last event says it; any other response is reset. Once; later calls do nothing. */
  cut(ending: Ending): void;
}

/**
 * Sends a person's request to the first agent of `hosts` whose tunnel takes it, as a stream
 * (protocol.ts), and streams the answer back. An agent whose stream fails before any byte of the
 * response is given up for the next; after the first byte the response is the person's, failures
 * included. Either side closing closes the other (a cancelled watch, a dead agent).
 */
export function forwardOverTunnel(
  client: TunnelClient,
  path: string,
  attempts: Attempts,
  done: (outcome: Outcome) => void,
  lost?: (cause: string) => Ending,
): Forwarding {
  const { method } = client;
  const hasBody = method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS';
  const body = hasBody ? new ReplayableBody(client.body, MAX_REPLAY_BYTES) : undefined;
  let current: ClientHttp2Stream | undefined;
  let lastError = 'no agent answered';
  let i = 0;
  let busy = 0;
  /** Set once kport ended the request itself: what it told the person. */
  let cutWith: Ending | undefined;
  /** The response's relay and content type, once the agent answered. */
  let answer: { chunks?: ChunkRelay; contentType: string } | undefined;
  client.onClose(() => {
    if (current && !current.closed) current.close(constants.NGHTTP2_CANCEL);
  });
  /**
   * The person's side ended with `ending`: a JSON watch's ERROR event at an event's end; a followed
   * log's last line, then a reset (kubectl prints the line and exits 1); anything else a reset.
   */
  const finish = (ending: Ending) => {
    const chunks = answer?.chunks;
    if (!chunks) return client.abort();
    const info = requestInfo(method, path);
    if (isJsonWatch(info.verb, answer!.contentType) && (chunks.last === -1 || chunks.last === 0x0a)) return chunks.end(watchErrorEvent(ending));
    if (info.subresource === 'log' && /^text\/plain(?:;|$)/i.test(answer!.contentType)) {
      // Reset once the line went out, or a few seconds on if the person does not read it.
      return abortAfter(client, chunks, logLine(ending, chunks.last));
    }
    client.abort();
  };
  const cut = (ending: Ending) => {
    if (cutWith || client.gone()) return;
    cutWith = ending;
    // Not answered yet: the ending is the answer (the agent's stream, if any, is cancelled).
    if (!answer) {
      client.fail(ending.code, ending.message);
      if (current && !current.closed) current.close(constants.NGHTTP2_CANCEL);
      return;
    }
    if (current && !current.closed) {
      current.pause();
      current.removeAllListeners('data');
      current.close(constants.NGHTTP2_CANCEL);
    }
    finish(ending);
  };
  const next = async (): Promise<void> => {
    while (i < attempts.hosts.length) {
      if (cutWith) return done({ status: cutWith.code, error: cutWith.message });
      if (client.gone()) return done({ status: 499, error: 'the client went away' });
      const hostId = attempts.hosts[i++]!;
      let id;
      let opened;
      try {
        id = await attempts.identity(hostId);
        opened = attempts.open(hostId, tunnelHeaders(method, path, client.headers, id.token), { endStream: !hasBody });
      } catch (err) {
        lastError = (err as Error).message;
        continue;
      }
      if (opened === 'busy') busy++;
      if (!opened || opened === 'busy') continue;
      return attach((current = opened), hostId, id.sessionId);
    }
    // An agent that was busy is up: that is what the person hears, though another attempt (a stale holder, a dead agent) failed.
    if (busy > 0) {
      const message = busyMessage(busy);
      client.fail(502, message);
      return done({ status: 502, error: message });
    }
    const message = UNREACHABLE;
    client.fail(502, message);
    done({ status: 502, error: `${message} (${lastError})` });
  };
  const attach = (up: ClientHttp2Stream, hostId: string, sessionId: string) => {
    let status = 0;
    let ended = false;
    up.once('response', (h) => {
      status = Number(h[':status']);
      const sink = client.respond(status, responseHeaders(h as IncomingHttpHeaders));
      answer = { contentType: String(h['content-type'] ?? '') };
      if (!sink) return;
      const chunks = (answer.chunks = new ChunkRelay(sink, { pause: () => up.pause(), resume: () => up.resume() }));
      up.on('data', (chunk: Buffer) => chunks.push(chunk));
      // A reset code set by then means the stream broke (the 'close' handler says why), not that the agent ended it.
      up.once('end', () => up.rstCode || chunks.end());
    });
    up.once('end', () => (ended = true));
    up.on('error', (err) => (lastError = err.message));
    up.once('close', () => {
      // node ends a stream's readable side whenever it closes, its tunnel lost included: only a
      // stream closed without a reset code was ended by the agent.
      if (up.rstCode !== constants.NGHTTP2_NO_ERROR) ended = false;
      if (cutWith) return done({ status: status || cutWith.code, hostId, sessionId, error: cutWith.message });
      if (status === 0) {
        // A peer server holding the agent's tunnel found it busy (peer-listener.ts): counted as a local 'busy' is.
        if (up.rstCode === BUSY_RESET) busy++;
        body?.detach();
        if (!body || body.replayable) return void next();
        // Why (a peer's address or TLS error, when the tunnel was another server's) is the audit's, not the person's.
        const message = "kport lost the agent's tunnel while sending the request, and its body was too large to send again: run the command again";
        client.fail(502, message);
        return done({ status: 502, hostId, sessionId, error: `${message} (${lastError})` });
      }
      if (ended) {
        client.end();
        return done({ status, hostId, sessionId });
      }
      if (client.gone()) return done({ status, hostId, sessionId });
      // The agent's stream broke (its tunnel lost, the agent stopped): the person is told why, where their protocol can say it.
      const ending = lost?.(lastError);
      if (ending) finish((cutWith = ending));
      else client.abort();
      done({ status, hostId, sessionId, error: ending?.message ?? `the agent's stream ended early: ${lastError}` });
    });
    body?.attach(up);
  };
  void next();
  return { cut };
}

/**
 * No agent took the request. The person is told no more: why (a peer's address, a server id, a TLS
 * error) is the server's, in its audit event and its log (peer-client.ts).
 */
export const UNREACHABLE = 'kport could not reach any agent serving this cluster: run the command again, and see `kport get kube_server` if it keeps failing';

/** Every agent serving the cluster has its tunnels full (TunnelRegistry.request): nothing was sent. */
export function busyMessage(agents: number): string {
  return `the ${agents === 1 ? 'agent' : `${agents} agents`} serving this cluster ${agents === 1 ? 'is' : 'are'} busy: ${agents === 1 ? 'its tunnel carries' : 'their tunnels carry'} as many requests as it allows; try again shortly`;
}

/** The stream's headers: the person's, less hop-by-hop ones, credentials and impersonation; the signed identity. */
function tunnelHeaders(method: string, path: string, headers: IncomingHttpHeaders, token: string): string[] {
  const list = [':method', method, ':path', path, ':authority', TUNNEL_AUTHORITY, IDENTITY_HEADER, token];
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name.charCodeAt(0) === 58 /* : */ || dropsRequestHeader(name) || isImpersonation(name)) continue;
    if (typeof value === 'string') list.push(name, value);
    else for (const v of value) list.push(name, v);
  }
  return list;
}

/**
 * A request body passed on as it arrives, and kept (up to `cap` bytes) until an agent answers, so
 * the request can go to another agent if this one's stream fails first.
 */
class ReplayableBody {
  readonly #source: Readable;
  readonly #cap: number;
  #kept: Buffer[] = [];
  #size = 0;
  #ended = false;
  #to?: Writable;
  replayable = true;

  constructor(source: Readable, cap: number) {
    this.#source = source;
    this.#cap = cap;
    source.on('data', (chunk: Buffer) => this.#chunk(chunk));
    source.once('end', () => {
      this.#ended = true;
      this.#to?.end();
    });
  }

  attach(to: Writable): void {
    this.#to = to;
    for (const chunk of this.#kept) to.write(chunk);
    this.#trim();
    if (this.#ended) to.end();
    else this.#source.resume();
  }

  detach(): void {
    this.#to = undefined;
  }

  #chunk(chunk: Buffer): void {
    if (this.replayable) {
      this.#kept.push(chunk);
      this.#size += chunk.length;
    }
    const to = this.#to;
    if (!to) {
      // Nobody to send it to yet: stop reading past the cap rather than buffer without end.
      if (this.#size > this.#cap) this.#source.pause();
      return;
    }
    this.#trim();
    if (!to.write(chunk)) {
      this.#source.pause();
      to.once('drain', () => this.#to === to && this.#source.resume());
    }
  }

  /** Past the cap the kept chunks go: this body is sent once, to this agent. */
  #trim(): void {
    if (this.#size > this.#cap && this.replayable) {
      this.replayable = false;
      this.#kept = [];
    }
  }
}
