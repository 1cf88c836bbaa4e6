// An HTTP/2 peer written frame by frame, for tests that play an attacker: it opens as many streams as
// it likes, whatever the server's SETTINGS say (node:http2's client would obey them).
import { connect, type TLSSocket } from 'node:tls';

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, GOAWAY: 7 } as const;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const ACK = 0x1;

export class RawH2 {
  readonly socket: TLSSocket;
  readonly frames: Frame[] = [];
  closed = false;
  #buffer = Buffer.alloc(0);

  private constructor(socket: TLSSocket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.#read(chunk));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
  }

  static async open(port: number, creds: { cert?: string; key?: string } = {}): Promise<RawH2> {
    const socket = connect({ host: '127.0.0.1', port, ALPNProtocols: ['h2'], rejectUnauthorized: false, ...creds });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', () => resolve());
      socket.once('error', reject);
      socket.once('close', () => reject(new Error('closed before the handshake ended')));
    });
    const peer = new RawH2(socket);
    socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(FRAME.SETTINGS, 0, 0, Buffer.alloc(0))]));
    return peer;
  }

  /** A POST's HEADERS frame; its body follows with data(). */
  post(stream: number, path: string, endStream = false): void {
    const fields = [
      [':method', 'POST'],
      [':scheme', 'https'],
      [':path', path],
      [':authority', 'localhost'],
      ['content-type', 'application/json'],
    ];
    // HPACK literals without indexing, new names, no Huffman: enough for any server to decode.
    const block = Buffer.concat(fields.flatMap(([n, v]) => [Buffer.from([0, n!.length]), Buffer.from(n!), Buffer.from([v!.length]), Buffer.from(v!)]));
    this.socket.write(frame(FRAME.HEADERS, END_HEADERS | (endStream ? END_STREAM : 0), stream, block));
  }

  data(stream: number, body: Buffer, endStream = false): void {
    this.socket.write(frame(FRAME.DATA, endStream ? END_STREAM : 0, stream, body));
  }

  /** Streams the server reset, with their error codes (7 is REFUSED_STREAM). */
  resets(): Map<number, number> {
    return new Map(this.frames.filter((f) => f.type === FRAME.RST_STREAM).map((f) => [f.stream, f.payload.readUInt32BE(0)]));
  }

  /** Streams the server answered (sent HEADERS on). */
  answered(): Set<number> {
    return new Set(this.frames.filter((f) => f.type === FRAME.HEADERS).map((f) => f.stream));
  }

  close(): void {
    this.socket.destroy();
  }

  #read(chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    while (this.#buffer.length >= 9) {
      const length = this.#buffer.readUIntBE(0, 3);
      if (this.#buffer.length < 9 + length) return;
      const f: Frame = {
        type: this.#buffer[3]!,
        flags: this.#buffer[4]!,
        stream: this.#buffer.readUInt32BE(5) & 0x7fffffff,
        payload: this.#buffer.subarray(9, 9 + length),
      };
      this.#buffer = this.#buffer.subarray(9 + length);
      this.frames.push(f);
      if (f.type === FRAME.SETTINGS && !(f.flags & ACK)) this.socket.write(frame(FRAME.SETTINGS, ACK, 0, Buffer.alloc(0)));
    }
  }
}

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}
