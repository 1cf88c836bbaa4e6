// Why kport ended a person's Kubernetes request, in the words each protocol can carry to kubectl
// (issue #8): a watch's ERROR event, an exec's error channel, a WebSocket's close reason. The
// apiserver itself ends a watch with an ERROR event carrying a Status, and an exec with a Status on
// channel 3; client-go prints the Status's message and kubectl exits 1. A request ended without one
// reads as finished (a watch exits 0) or as a broken connection ("close 1006 (abnormal closure)").

/** What kport tells the person: a Status code (401 their login expired, 403 refused now, 503 gone away) and one sentence. */
export interface Ending {
  code: 401 | 403 | 503;
  message: string;
}

/** The connection of a person's request is ended by the server for `reason` (ConnectionGuard.drop: a lock, a removal, an expiry). */
export function droppedEnding(caller: { person: string; notAfter: number }, reason: string | undefined, now = Date.now()): Ending {
  if (now >= caller.notAfter)
    return {
      code: 401,
      message: `the certificate of ${caller.person} expired at ${new Date(caller.notAfter).toISOString()}: run kport login, then this command again`,
    };
  return { code: 403, message: reason ?? 'the kport server closed the connection' };
}

/** The agent's stream broke under a request: why the server ended the connection if it did (or the certificate expired), else the agent's going. */
export function lostEnding(
  caller: { person: string; notAfter: number },
  cluster: string,
  cause: string,
  closedBecause: string | undefined,
  now = Date.now(),
): Ending {
  if (closedBecause || now >= caller.notAfter) return droppedEnding(caller, closedBecause, now);
  return { code: 503, message: `the kport agent serving ${cluster} went away (${cause}): run this command again; \`kport get kube_server\` lists the agents` };
}

const REASONS: Record<Ending['code'], string> = { 401: 'Unauthorized', 403: 'Forbidden', 503: 'ServiceUnavailable' };

function status(ending: Ending): string {
  return JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: ending.message,
    reason: REASONS[ending.code],
    code: ending.code,
  });
}

/** The end of a watch: one JSON ERROR event, as the apiserver writes it. Only for a JSON watch stream, at an event's end. */
export function watchErrorEvent(ending: Ending): Buffer {
  return Buffer.from(`{"type":"ERROR","object":${status(ending)}}\n`);
}

/**
 * The last line of a followed log kport ends (the stream is reset after it, so kubectl exits 1): a
 * log can carry only text, and a line is what the person reads. It starts a line of its own.
 */
export function logLine(ending: Ending, lastByte: number): Buffer {
  return Buffer.from(`${lastByte === -1 || lastByte === 0x0a ? '' : '\n'}kport: ${ending.message}\n`);
}

/** Whether a response is a stream of JSON watch events (protobuf and CBOR watches are framed otherwise: those are reset instead). */
export function isJsonWatch(verb: string, contentType: string): boolean {
  return verb === 'watch' && /^application\/json(?:;|$)/i.test(contentType.trim());
}

/** The channel protocols (exec, attach) whose error channel carries a JSON Status: v4 and v5 (k8s.io/apimachinery remotecommand). */
const STATUS_CHANNEL = /^v[45]\./;

/**
 * The frames a server sends to end an exec or attach WebSocket with `ending`: on a channel protocol,
 * the sentence on the error channel (3; a Status from v4 on, plain text before, base64 text for the
 * base64 protocols); then a Close frame, 1000 (client-go reads the error channel to its end only on
 * a normal closure) with the sentence as its reason, cut to the 123 bytes a Close frame carries.
 */
export function websocketEnding(protocol: string | undefined, ending: Ending): Buffer {
  const frames: Buffer[] = [];
  if (protocol && /(?:^|\.)channel\.k8s\.io$/.test(protocol)) {
    const text = Buffer.from(STATUS_CHANNEL.test(protocol) ? status(ending) : ending.message);
    frames.push(protocol.includes('base64') ? frame(0x1, Buffer.from(`3${text.toString('base64')}`)) : frame(0x2, Buffer.concat([Buffer.from([3]), text])));
  }
  const reason = Buffer.from(ending.message);
  let cut = reason.subarray(0, 123);
  // A reason cut inside a UTF-8 character would be invalid, and the client would drop the connection instead.
  while (cut.length > 0 && cut.length < reason.length && (reason[cut.length]! & 0xc0) === 0x80) cut = cut.subarray(0, cut.length - 1);
  frames.push(frame(0x8, Buffer.concat([Buffer.from([0x03, 0xe8]), cut])));
  return Buffer.concat(frames);
}

/** One unmasked frame (a server's), FIN set. */
function frame(opcode: number, payload: Buffer): Buffer {
  const n = payload.length;
  const head =
    n < 126
      ? Buffer.from([0x80 | opcode, n])
      : n < 65_536
        ? Buffer.from([0x80 | opcode, 126, n >> 8, n & 0xff])
        : Buffer.concat([Buffer.from([0x80 | opcode, 127]), u64(n)]);
  return Buffer.concat([head, payload]);
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/**
 * Where a stream of WebSocket frames from one side stands (RFC 6455 §5.2): between two frames, or
 * inside one. kport's own frames may go in only between two (and before a Close), or the client
 * reads noise.
 */
export class FrameBoundary {
  /** Bytes still to come of the current frame's payload. */
  #payload = 0;
  /** A frame header read so far, when it came split across chunks. */
  #header: Buffer = Buffer.alloc(0);

  /** A Close frame went by: no frame may follow it. */
  #closed = false;

  /** Whether a frame may be sent now: between two frames, and before any Close. */
  get between(): boolean {
    return this.#payload === 0 && this.#header.length === 0 && !this.#closed;
  }

  feed(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.#payload > 0) {
        const take = Math.min(this.#payload, chunk.length - at);
        this.#payload -= take;
        at += take;
        continue;
      }
      const header = Buffer.concat([this.#header, chunk.subarray(at, at + 14)]);
      const size = headerSize(header);
      if (size === undefined || header.length < size) {
        // Not all of it here yet: keep what came (at most 14 bytes).
        this.#header = header;
        return;
      }
      const consumed = size - this.#header.length;
      if ((header[0]! & 0x0f) === 0x8) this.#closed = true;
      this.#payload = payloadLength(header);
      this.#header = Buffer.alloc(0);
      at += consumed;
    }
  }
}

/** The header's length once its first two bytes are known. */
function headerSize(header: Buffer): number | undefined {
  if (header.length < 2) return undefined;
  const len7 = header[1]! & 0x7f;
  return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (header[1]! & 0x80 ? 4 : 0);
}

function payloadLength(header: Buffer): number {
  const len7 = header[1]! & 0x7f;
  if (len7 < 126) return len7;
  if (len7 === 126) return header.readUInt16BE(2);
  return Number(header.readBigUInt64BE(2));
}
