// One direction of a Kubernetes exec/attach WebSocket, read as the channels it carries. The frames
// are parsed by ws's Receiver (fragmentation, masking, control frames), never by hand.
import * as ws from 'ws';

/** What ws exports beside WebSocket and @types/ws leaves out. */
interface Receiver extends NodeJS.WritableStream {
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: string, listener: (...args: unknown[]) => void): this;
}
type ReceiverCtor = new (opts: { isServer: boolean; maxPayload: number; skipUTF8Validation: boolean; allowSynchronousEvents?: boolean }) => Receiver;
const { Receiver: ReceiverClass } = ws as unknown as { Receiver: ReceiverCtor };

/** Kubernetes' remotecommand channels (k8s.io/apimachinery/pkg/util/remotecommand). */
export const CHANNEL = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4, close: 255 } as const;

/** The WebSocket subprotocols of exec and attach whose frames kport reads: binary (channel byte first) or base64 text. */
export const CHANNEL_PROTOCOLS = [
  'v5.channel.k8s.io',
  'v4.channel.k8s.io',
  'v3.channel.k8s.io',
  'v2.channel.k8s.io',
  'channel.k8s.io',
  'v4.base64.channel.k8s.io',
  'base64.channel.k8s.io',
];

/** The largest message read; kubelets send output in 32 KiB frames, and ws buffers a message until it is whole. */
const MAX_MESSAGE = 4 << 20;
/** An HTTP head longer than this is not the 101 of an exec. */
const MAX_HEAD = 64 << 10;

export interface HeadInfo {
  status: number;
  protocol?: string;
  extensions?: string;
}

export interface ChannelReaderEvents {
  /** The HTTP head this direction began with, when it began with one (the upstream's 101). */
  head?(info: HeadInfo): void;
  message(channel: number, data: Buffer): void;
  /** The bytes stopped making sense: nothing more is read from this direction. */
  broken(why: string): void;
}

/**
 * Feeds one direction's bytes (an HTTP head first, when there is one) to a ws Receiver. `fromClient`
 * frames are masked (a client's), the upstream's are not. `protocol()` is read at each message, so
 * the upstream's 101 can settle it after the reader is made.
 */
export class ChannelReader {
  readonly #events: ChannelReaderEvents;
  readonly #protocol: () => string | undefined;
  readonly #receiver: Receiver;
  /** ws unmasks a client's frame in place, and the chunks read are the very buffers relayed on to the cluster. */
  readonly #masked: boolean;
  #head: Buffer | undefined = Buffer.alloc(0);
  #broken = false;

  constructor(direction: 'fromClient' | 'fromUpstream', protocol: () => string | undefined, events: ChannelReaderEvents) {
    this.#events = events;
    this.#protocol = protocol;
    this.#masked = direction === 'fromClient';
    this.#receiver = new ReceiverClass({
      isServer: direction === 'fromClient',
      maxPayload: MAX_MESSAGE,
      skipUTF8Validation: true,
      allowSynchronousEvents: true,
    });
    this.#receiver.on('message', (data, isBinary) => this.#message(data, isBinary));
    this.#receiver.on('error', (err: Error) => this.#break(`unreadable WebSocket frames (${err.message})`));
  }

  get broken(): boolean {
    return this.#broken;
  }

  write(chunk: Buffer): void {
    if (this.#broken) return;
    if (this.#head !== undefined) {
      const rest = this.#readHead(chunk);
      if (rest === undefined || rest.length === 0) return;
      chunk = rest;
    }
    try {
      // Unmasked where they are, the relayed bytes would reach the apiserver unmasked, which then
      // unmasks them again: what is typed becomes noise on no channel and the pod never sees it.
      this.#receiver.write(this.#masked ? Buffer.from(chunk) : chunk);
    } catch (err) {
      this.#break(`unreadable WebSocket frames (${(err as Error).message})`);
    }
  }

  /** The bytes after the head, undefined while the head is still coming. A stream that starts with a frame has no head. */
  #readHead(chunk: Buffer): Buffer | undefined {
    const seen = Buffer.concat([this.#head!, chunk]);
    // A frame's first byte has FIN or an opcode bit set with no RSV bits: never an ASCII capital.
    if (!/^[A-Z]/.test(seen.subarray(0, 1).toString('latin1'))) {
      this.#head = undefined;
      return seen;
    }
    const end = seen.indexOf('\r\n\r\n');
    if (end < 0) {
      if (seen.length > MAX_HEAD) this.#break('an HTTP head longer than 64 KiB');
      else this.#head = seen;
      return undefined;
    }
    this.#head = undefined;
    const lines = seen.subarray(0, end).toString('latin1').split('\r\n');
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1];
    const header = (name: string) =>
      lines
        .find((l) => l.toLowerCase().startsWith(`${name}:`))
        ?.slice(name.length + 1)
        .trim();
    if (status !== undefined) {
      const protocol = header('sec-websocket-protocol');
      const extensions = header('sec-websocket-extensions');
      this.#events.head?.({ status: Number(status), ...(protocol && { protocol }), ...(extensions && { extensions }) });
      if (status !== '101') return void this.#break(`the upgrade was answered ${status}`);
    }
    return seen.subarray(end + 4);
  }

  #message(data: Buffer, isBinary: boolean): void {
    const protocol = this.#protocol() ?? '';
    if (protocol.includes('base64')) {
      // The channel is an ASCII digit, the rest base64 (text frames).
      const text = data.toString('latin1');
      const channel = text.charCodeAt(0) - 48;
      if (channel < 0 || channel > 9) return;
      return this.#events.message(channel, Buffer.from(text.slice(1), 'base64'));
    }
    if (!isBinary || data.length === 0) return;
    this.#events.message(data[0]!, data.subarray(1));
  }

  #break(why: string): void {
    if (this.#broken) return;
    this.#broken = true;
    this.#events.broken(why);
  }
}
