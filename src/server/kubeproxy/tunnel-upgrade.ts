import type { IncomingMessage } from 'node:http';
import { constants, type ClientHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { isImpersonation } from '../../kube/access.ts';
import { KPORT_HEADER_PREFIX } from '../../kube/forward-headers.ts';
import { rawStatus } from '../../kube/status.ts';
import { IDENTITY_HEADER, TUNNEL_AUTHORITY } from '../../reversetunnel/protocol.ts';
import { BUSY_RESET } from '../../reversetunnel/tunnel-registry.ts';
import { FrameBoundary, websocketEnding, type Ending } from './kube-ending.ts';
import { busyMessage, UNREACHABLE, type Attempts, type Forwarding, type Outcome } from './tunnel-forward.ts';

/** The longest HTTP/1.1 answer head an agent may send before the upgraded bytes. */
const MAX_ANSWER_HEAD = 64 * 1024;
/** The person's credentials; and every kport-* header (IDENTITY_HEADER among them), set by kport alone on its hops. */
const DROP = new Set(['authorization', 'proxy-authorization']);
const dropped = (lower: string) => DROP.has(lower) || lower.startsWith(KPORT_HEADER_PREFIX);

/**
 * An upgrade (exec, attach, port-forward) over a tunnel: a CONNECT stream carrying the person's
 * HTTP/1.1 request (less credentials and impersonation), then the agent's answer and the upgraded
 * bytes both ways. An agent whose stream fails before any byte of its answer is given up for the
 * next. `opened` is called once the answer is a 101 and its head went to the person, before any
 * upgraded byte moves either way: the session recorder's hook.
 */
export function upgradeOverTunnel(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  path: string,
  attempts: Attempts,
  opened: (hostId: string, sessionId: string, tunnel: ClientHttp2Stream, answerHead: Buffer) => void,
  done: (outcome: Outcome) => void,
  lost?: (cause: string) => Ending,
): Forwarding {
  const request = Buffer.concat([Buffer.from(requestHead(req, path)), head]);
  const websocket =
    String(req.headers.upgrade ?? '')
      .trim()
      .toLowerCase() === 'websocket';
  let lastError = 'no agent answered';
  let i = 0;
  let busy = 0;
  let gone = false;
  /** Set once kport ended the session itself: what it told the person. */
  let cutWith: Ending | undefined;
  /** Once the agent's 101 went to the person: the upgraded bytes' relay, which kport's own last words may end. */
  let session: { up: ClientHttp2Stream; stop(): void; between(): boolean; protocol?: string } | undefined;
  /** Ends the person's side: on a WebSocket between two frames, kport's frames first (kube-ending.ts); then the socket. */
  const finish = (ending: Ending) => {
    if (session && websocket && session.between() && !socket.writableEnded) socket.write(websocketEnding(session.protocol, ending));
    socket.end();
    setTimeout(() => socket.destroy(), 10_000).unref();
  };
  const cut = (ending: Ending) => {
    if (cutWith || gone) return;
    cutWith = ending;
    if (!session) {
      // Not upgraded yet: the ending is the answer.
      if (!socket.writableEnded) rawStatus(socket, ending.code, ending.message);
      return;
    }
    session.stop();
    finish(ending);
  };
  socket.once('close', () => (gone = true));
  const next = async (): Promise<void> => {
    while (i < attempts.hosts.length && !gone && !cutWith) {
      const hostId = attempts.hosts[i++]!;
      let up: ClientHttp2Stream | 'busy' | undefined;
      let sessionId: string;
      try {
        const id = await attempts.identity(hostId);
        sessionId = id.sessionId;
        up = attempts.open(hostId, { ':method': 'CONNECT', ':authority': TUNNEL_AUTHORITY, [IDENTITY_HEADER]: id.token });
      } catch (err) {
        lastError = (err as Error).message;
        continue;
      }
      if (up === 'busy') busy++;
      if (!up || up === 'busy') continue;
      return attach(up, hostId, sessionId);
    }
    if (cutWith) return done({ status: cutWith.code, error: cutWith.message });
    if (gone) return done({ status: 499, error: 'the client went away' });
    // An agent that was busy is up: that is what the person hears, though another attempt (a stale holder, a dead agent) failed.
    if (busy > 0) {
      const message = busyMessage(busy);
      rawStatus(socket, 502, message);
      return done({ status: 502, error: message });
    }
    const message = UNREACHABLE;
    rawStatus(socket, 502, message);
    done({ status: 502, error: `${message} (${lastError})` });
  };
  const attach = (up: ClientHttp2Stream, hostId: string, sessionId: string) => {
    let status = 0;
    let answered = false;
    let piped = false;
    let chunks: Buffer[] = [];
    up.on('error', (err) => (lastError = err.message));
    up.once('response', (h) => {
      const code = Number(h[':status']);
      if (code === 200) return;
      // The agent refused the stream itself (an identity it does not accept): its Status, as HTTP/1.1.
      answered = true;
      status = code;
      const body: Buffer[] = [];
      up.on('data', (c: Buffer) => body.push(c));
      up.once('end', () => {
        const text = Buffer.concat(body);
        socket.end(
          Buffer.concat([
            Buffer.from(
              `HTTP/1.1 ${code} Refused\r\ncontent-type: ${String(h['content-type'] ?? 'text/plain')}\r\ncontent-length: ${text.length}\r\nconnection: close\r\n\r\n`,
            ),
            text,
          ]),
        );
      });
    });
    const onData = (chunk: Buffer) => {
      if (answered) return;
      chunks.push(chunk);
      const all = Buffer.concat(chunks);
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) {
        if (all.length > MAX_ANSWER_HEAD) up.destroy(new Error('the agent sent no HTTP answer'));
        return;
      }
      answered = true;
      up.off('data', onData);
      up.pause();
      chunks = [];
      const answerHead = all.subarray(0, end).toString('latin1');
      status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(answerHead)?.[1] ?? 502);
      if (cutWith) return void up.destroy();
      socket.write(all.subarray(0, end + 4));
      const rest = all.subarray(end + 4);
      if (rest.length > 0) up.unshift(rest);
      if (status === 101) opened(hostId, sessionId, up, all.subarray(0, end + 4));
      piped = true;
      session = relayUpgraded(up, socket, status === 101 && websocket, /^sec-websocket-protocol:[ \t]*(\S+)/im.exec(answerHead)?.[1]);
    };
    up.on('data', onData);
    let ended = false;
    up.once('end', () => (ended = true));
    up.once('close', () => {
      if (!answered) {
        // A peer server holding the agent's tunnel found it busy (peer-listener.ts): counted as a local 'busy' is.
        if (up.rstCode === BUSY_RESET) busy++;
        return void next();
      }
      if (cutWith) return done({ status, hostId, sessionId, error: cutWith.message });
      // node ends a stream's readable side whenever it closes, its tunnel lost included (tunnel-forward.ts).
      if (up.rstCode !== constants.NGHTTP2_NO_ERROR) ended = false;
      // The agent's stream broke (its tunnel lost, the agent stopped): the person is told why, where the protocol can say it.
      const ending = !ended && piped && !gone ? lost?.(lastError) : undefined;
      // Ended, not destroyed: the last bytes of a session may still be on their way to the person.
      if (ending) finish((cutWith = ending));
      else if (piped) {
        socket.end();
        setTimeout(() => socket.destroy(), 10_000).unref();
      }
      done({ status, hostId, sessionId, ...(ending && { error: ending.message }) });
    });
    socket.once('close', () => {
      if (!up.closed) up.destroy();
    });
    up.write(request);
  };
  socket.on('error', () => socket.destroy());
  void next();
  return { cut };
}

/**
 * The upgraded bytes both ways, as pipe() would, with the agent's side read through a FrameBoundary
 * on a WebSocket, so kport can end it between two frames. `stop` detaches both directions.
 */
function relayUpgraded(up: ClientHttp2Stream, socket: Duplex, websocket: boolean, protocol: string | undefined) {
  const boundary = websocket ? new FrameBoundary() : undefined;
  const onData = (chunk: Buffer) => {
    boundary?.feed(chunk);
    if (!socket.write(chunk)) {
      up.pause();
      socket.once('drain', () => up.resume());
    }
  };
  // A reset code set by then means the tunnel broke: the 'close' handler ends the socket, with kport's words where it can.
  const onEnd = () => up.rstCode || socket.end();
  up.on('data', onData);
  up.once('end', onEnd);
  // The head's reader paused it (pipe() would resume it too).
  up.resume();
  socket.pipe(up);
  return {
    up,
    protocol,
    between: () => boundary?.between ?? false,
    stop() {
      up.off('data', onData);
      up.off('end', onEnd);
      socket.unpipe(up);
      if (!up.destroyed) up.destroy();
    },
  };
}

/** The request line and headers as the person sent them, less credentials, impersonation and any identity. */
function requestHead(req: IncomingMessage, path: string): string {
  const lines = [`${req.method ?? 'GET'} ${path} HTTP/1.1`];
  const raw = req.rawHeaders;
  for (let k = 0; k < raw.length; k += 2) {
    const name = raw[k]!;
    const lower = name.toLowerCase();
    if (dropped(lower) || isImpersonation(lower)) continue;
    lines.push(`${name}: ${raw[k + 1]!}`);
  }
  return `${lines.join('\r\n')}\r\n\r\n`;
}
