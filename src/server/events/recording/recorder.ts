// Session recording at the server (docs/architecture.md §9): an exec or attach over WebSocket is written as
// asciicast v2, output and resizes with their timings, to a sink (recordings/sink.ts): by default
// <data_dir>/server/recordings/<id>.cast, or an S3 bucket every server shares.
// Input is not recorded (Teleport records output only: passwords typed at a prompt stay out).
import type { ServerAudit } from '../audit.ts';
import { DEFAULT_SIZE, eventLine, headerLine, type CastCode } from '../../../recordings/asciicast.ts';
import { SinkError, type RecordingSink, type SessionBudget, type SinkWriter } from '../../../recordings/sink.ts';
import type { BudgetLimits } from './budget.ts';
import { CHANNEL, CHANNEL_PROTOCOLS, ChannelReader } from './frames.ts';
import { LocalSink } from './local-sink.ts';
import { validSessionId } from '../../../recordings/store.ts';
import { auditFields, castSession, title, type SessionMeta } from './session-meta.ts';

export type { SessionMeta } from './session-meta.ts';

/** One recording's cap: a session past it goes on, unrecorded from there, and says so in its file and its session.end. */
export const MAX_SESSION_BYTES = 64 << 20;
/** Output is written in batches, so a chatty shell costs a write a tenth of a second, not one per frame. */
const FLUSH_MS = 100;
const FLUSH_BYTES = 64 << 10;
/** Until the first resize the header's size is unknown; this long or this much output, and 80x24 it is. */
const HEADER_WAIT_MS = 2_000;
/** At a server's stop, how long the sessions still open have to store their recordings before what is half-stored is given up. */
const CLOSE_GRACE_MS = 10_000;

export interface Recording {
  /** Whether output is being recorded: false for SPDY, a full disk, an unusable id. */
  readonly recorded: boolean;
  fromUpstream(chunk: Buffer): void;
  fromClient(chunk: Buffer): void;
  /** Ends the session: flushes, stores the recording, writes session.end. Safe to call more than once. */
  end(reason?: string): Promise<void>;
}

export interface RecorderOptions {
  /** A local sink in this directory, with `budget` (what the server had before sinks); or `sink`. */
  dir?: string;
  sink?: RecordingSink;
  audit: Pick<ServerAudit, 'record'>;
  log: (line: string) => void;
  /** Wall clock, for the header and the audit. */
  now?: () => Date;
  /** Monotonic milliseconds, for the timings. */
  clock?: () => number;
  maxSessionBytes?: number;
  /** The directory's budget, in all and per person (budget.ts): past it, new sessions are not recorded (session.start says why) until an operator makes room. */
  budget?: BudgetLimits;
}

/**
 * The routing's side of the contract: start() for every exec and attach (SPDY too, so its
 * session.start says recorded: false), the bytes of both directions as they are relayed (the
 * upstream's from its 101 on; the client's frames, the upgrade's head buffer first), end() when
 * either side closes. Where recordingDecision() says `required` and the Recording says it is not
 * `recorded` (no room in the budget), end it before any byte is relayed.
 */
export class SessionRecorder {
  readonly #opts: Required<Omit<RecorderOptions, 'now' | 'clock' | 'budget' | 'dir' | 'sink'>> & { now: () => Date; clock: () => number };
  readonly #sink: RecordingSink;
  /** The sessions being recorded, ended at the server's stop. */
  readonly #open = new Set<RecordedSession>();

  constructor(opts: RecorderOptions) {
    const { dir, sink, budget, ...rest } = opts;
    this.#opts = { maxSessionBytes: MAX_SESSION_BYTES, now: () => new Date(), clock: () => performance.now(), ...rest };
    if (!sink && dir === undefined) throw new Error('a SessionRecorder needs a sink or a directory');
    this.#sink = sink ?? new LocalSink(dir!, budget);
  }

  get sink(): RecordingSink {
    return this.#sink;
  }

  get budget(): SessionBudget {
    return this.#sink.budget;
  }

  /** The recordings directory, when the sink is one. */
  get dir(): string | undefined {
    return this.#sink.dir;
  }

  /** Why a new session of `person` could not be recorded now (the budget, with what is used), or undefined. */
  noRoom(person: string): string | undefined {
    return this.budget.noRoom(person);
  }

  /** Why no new session can be recorded now (the sink cannot be reached), or undefined: as last known. */
  unavailable(): string | undefined {
    return this.#sink.unavailable();
  }

  /** As unavailable(), asked of the sink now. */
  available(): Promise<string | undefined> {
    return this.#sink.ready();
  }

  start(meta: SessionMeta): Recording {
    const why = this.#unrecordedBecause(meta);
    const { budget } = this;
    if (why === undefined) budget.open(meta.sessionId, meta.person);
    const session: RecordedSession = new RecordedSession(meta, why === undefined, {
      ...this.#opts,
      create: () => this.#sink.create(meta.sessionId),
      charge: (bytes, force) => budget.charge(meta.sessionId, meta.person, bytes, force),
      noRoom: (bytes) => budget.stopped(meta.person, bytes),
      closed: () => {
        budget.close(meta.sessionId);
        this.#open.delete(session);
      },
    });
    if (why === undefined) this.#open.add(session);
    void this.#opts.audit.record({ type: 'session.start', outcome: 'allowed', ...auditFields(meta), recorded: why === undefined, ...(why && { reason: why }) });
    return session;
  }

  /**
   * The server stops: the sessions still open are ended and their recordings stored; what is not
   * stored within CLOSE_GRACE_MS is given up (a bucket keeps no half-uploaded object), and session.end says so.
   */
  async close(graceMs = CLOSE_GRACE_MS): Promise<void> {
    const ending = Promise.allSettled([...this.#open].map((s) => s.end('the server stopped')));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([ending, new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    await Promise.allSettled([...this.#open].map((s) => s.abort()));
    await ending;
    await this.#sink.close();
  }

  #unrecordedBecause(meta: SessionMeta): string | undefined {
    if (!validSessionId(meta.sessionId)) return `the session id ${JSON.stringify(meta.sessionId)} cannot name a file`;
    if (/^spdy\//i.test(meta.protocol)) return 'SPDY exec and attach are passed through unrecorded: kubectl 1.30 and later speak WebSocket';
    if (!meta.protocol.split(',').some((p) => CHANNEL_PROTOCOLS.includes(p.trim())))
      return `the WebSocket protocol ${JSON.stringify(meta.protocol)} is not one kport reads (${CHANNEL_PROTOCOLS.join(', ')})`;
    const down = this.#sink.unavailable();
    if (down) return `the recordings cannot be stored now (${down})`;
    const full = this.budget.noRoom(meta.person);
    if (full) return `no room in the recording budget (${full}): an operator makes room by moving old recordings out of ${this.#sink.where}`;
    return undefined;
  }
}

interface SessionDeps {
  /** The sink's writer for this session, made at its first write. */
  create(): SinkWriter;
  audit: Pick<ServerAudit, 'record'>;
  log: (line: string) => void;
  now: () => Date;
  clock: () => number;
  maxSessionBytes: number;
  /** Counts bytes against the budget; `force` for the header and the marker that says the budget was reached. */
  charge(bytes: number, force?: boolean): boolean;
  /** Why charge() said no to `bytes`, with what is used. */
  noRoom(bytes: number): string;
  /** The file is closed: the budget measures it from now on. */
  closed(): void;
}

class RecordedSession implements Recording {
  readonly recorded: boolean;
  readonly #meta: SessionMeta;
  readonly #deps: SessionDeps;
  readonly #start: number;
  readonly #startedAt: Date;
  readonly #upstream?: ChannelReader;
  readonly #client?: ChannelReader;
  readonly #decoders = new Map<number, TextDecoder>();
  #protocol?: string;
  #size?: { width: number; height: number };
  #headerWritten = false;
  #pending: string[] = [];
  #pendingBytes = 0;
  #written = 0;
  #stopped?: string;
  #writer?: SinkWriter;
  /** Why the sink could not store the recording at its end, for session.end. */
  #lost?: string;
  #writes: Promise<void> = Promise.resolve();
  #timer?: NodeJS.Timeout;
  #ended?: Promise<void>;
  /** A write was refused: nothing more goes to the sink. */
  #failed = false;

  constructor(meta: SessionMeta, recorded: boolean, deps: SessionDeps) {
    this.#meta = meta;
    this.#deps = deps;
    this.recorded = recorded;
    this.#start = deps.clock();
    this.#startedAt = deps.now();
    if (!recorded) return;
    this.#protocol = meta.protocol.split(',')[0]?.trim();
    const protocol = () => this.#protocol;
    this.#upstream = new ChannelReader('fromUpstream', protocol, {
      head: (info) => {
        if (info.protocol) this.#protocol = info.protocol;
        if (info.extensions) this.#stop(`the upstream compressed its frames (${info.extensions}), which kport does not read`);
      },
      message: (channel, data) => {
        if (channel === CHANNEL.stdout || channel === CHANNEL.stderr) this.#event('o', this.#text(channel, data));
      },
      broken: (why) => this.#stop(why),
    });
    this.#client = new ChannelReader('fromClient', protocol, {
      message: (channel, data) => {
        if (channel === CHANNEL.resize) this.#resize(data);
      },
      // A client's bad frames end its session at the apiserver; what was recorded stays.
      broken: (why) => this.#stop(`the client sent ${why}`),
    });
  }

  fromUpstream(chunk: Buffer): void {
    if (!this.#stopped) this.#upstream?.write(chunk);
  }

  fromClient(chunk: Buffer): void {
    if (!this.#stopped) this.#client?.write(chunk);
  }

  end(reason?: string): Promise<void> {
    this.#ended ??= this.#finish(reason);
    return this.#ended;
  }

  async #finish(reason?: string): Promise<void> {
    if (this.recorded) {
      // The receivers report a bad frame on the next tick: what was handed over is judged first.
      await new Promise((resolve) => setImmediate(resolve));
      for (const decoder of this.#decoders.values()) {
        const rest = decoder.decode();
        if (rest) this.#event('o', rest);
      }
      if (!this.#stopped) this.#flush();
      this.#stopped ??= 'ended';
      clearTimeout(this.#timer);
      await this.#writes;
      await this.#writer?.close().catch((err: Error) => {
        this.#lost = err instanceof SinkError ? err.why : err.message;
        this.#deps.log(JSON.stringify({ level: 'error', msg: `session ${this.#meta.sessionId}: the recording could not be stored: ${this.#lost}` }));
      });
      this.#deps.closed();
    }
    const { audit, clock } = this.#deps;
    const truncated = this.#stopped !== undefined && this.#stopped !== 'ended' ? this.#stopped : undefined;
    const lost = this.#lost && `the recording could not be stored: ${this.#lost}`;
    const why = [reason, truncated && `recording stopped early: ${truncated}`, lost].filter(Boolean).join('; ');
    const recorded = this.recorded && !lost;
    await audit.record({
      type: 'session.end',
      outcome: 'allowed',
      ...auditFields(this.#meta),
      recorded,
      ...(recorded && { bytes: this.#written }),
      duration_ms: Math.round(clock() - this.#start),
      ...(why && { reason: why }),
    });
  }

  /** The server stops before this session's recording could be stored: it is given up. */
  async abort(): Promise<void> {
    this.#lost ??= 'the server stopped before it was stored';
    await this.#writer?.abort().catch(() => undefined);
  }

  /** Output as text; a character split across two frames waits for its second half. */
  #text(channel: number, data: Buffer): string {
    let decoder = this.#decoders.get(channel);
    if (!decoder) this.#decoders.set(channel, (decoder = new TextDecoder('utf-8')));
    return decoder.decode(data, { stream: true });
  }

  #resize(data: Buffer): void {
    let size: { Width?: unknown; Height?: unknown };
    try {
      size = JSON.parse(data.toString('utf8'));
    } catch {
      return;
    }
    const width = Number(size?.Width);
    const height = Number(size?.Height);
    if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0 || width > 10_000 || height > 10_000) return;
    if (!this.#headerWritten && !this.#size) {
      // The first size is the terminal's: it goes in the header, and the buffered output was drawn at it.
      this.#size = { width, height };
      return this.#flush();
    }
    this.#event('r', `${width}x${height}`);
  }

  #event(code: CastCode, data: string): void {
    if (this.#stopped || data === '') return;
    const elapsed = this.#deps.clock() - this.#start;
    const line = eventLine(elapsed / 1000, code, data);
    this.#pending.push(line);
    this.#pendingBytes += Buffer.byteLength(line);
    if (this.#pendingBytes >= FLUSH_BYTES) return this.#flush();
    // Before the header, output waits for the terminal's size (kubectl sends it first thing).
    const wait = this.#headerWritten ? FLUSH_MS : Math.max(0, HEADER_WAIT_MS - elapsed);
    this.#timer ??= setTimeout(() => this.#flush(), wait).unref();
  }

  /** Writes what is pending (the header first, once), within this session's and the server's caps. */
  #flush(): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    let text = '';
    if (!this.#headerWritten) {
      this.#headerWritten = true;
      const { width, height } = this.#size ?? DEFAULT_SIZE;
      // The header always goes in (a cast without one is unreadable), whatever the caps say.
      text = headerLine({
        version: 2,
        width,
        height,
        timestamp: Math.floor(this.#startedAt.getTime() / 1000),
        title: title(this.#meta),
        env: { TERM: 'xterm-256color' },
        kport: castSession(this.#meta),
      });
      this.#deps.charge(Buffer.byteLength(text), true);
      this.#written += Buffer.byteLength(text);
    }
    const lines = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    for (const line of lines) {
      const bytes = Buffer.byteLength(line);
      let cap: string | undefined;
      if (this.#written + bytes > this.#deps.maxSessionBytes) cap = `the recording reached its cap of ${this.#deps.maxSessionBytes} bytes`;
      else if (!this.#deps.charge(bytes)) cap = this.#deps.noRoom(bytes);
      if (cap) {
        // The marker goes past the cap: a reader must see that the rest is missing, and why.
        const marker = eventLine((this.#deps.clock() - this.#start) / 1000, 'm', `kport stopped recording: ${cap}`);
        this.#deps.charge(Buffer.byteLength(marker), true);
        this.#written += Buffer.byteLength(marker);
        text += marker;
        this.#stopped = cap;
        break;
      }
      this.#written += bytes;
      text += line;
    }
    if (text) this.#append(text);
  }

  #append(text: string): void {
    const writer = (this.#writer ??= this.#deps.create());
    this.#writes = this.#writes.then(async () => {
      if (this.#failed) return;
      await writer.write(text).catch((err: Error) => {
        // The session goes on, unrecorded from here; session.end says why.
        const why = err instanceof SinkError ? err.why : `a write failed (${err.message})`;
        this.#failed = true;
        this.#stopped = why;
        this.#deps.log(JSON.stringify({ level: 'error', msg: `session ${this.#meta.sessionId}: recording stopped: ${why}` }));
      });
    });
  }

  #stop(why: string): void {
    if (this.#stopped) return;
    this.#flush();
    if (this.#stopped) return;
    this.#stopped = why;
    const marker = eventLine((this.#deps.clock() - this.#start) / 1000, 'm', `kport stopped recording: ${why}`);
    this.#deps.charge(Buffer.byteLength(marker), true);
    this.#written += Buffer.byteLength(marker);
    this.#append(marker);
  }
}
