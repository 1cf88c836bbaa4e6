import type { Readable, Writable } from 'node:stream';

/**
 * Passes body chunks on to a writable with backpressure, writing what arrived in one turn of the
 * event loop together and ending the writable in the same turn as its last write. On HTTP/2 that
 * puts END_STREAM on the last DATA frame: pipe() ends a turn later, which costs an empty DATA
 * frame, a TLS record and a write(2) of its own, and the client waits for it.
 */
export class ChunkRelay {
  readonly #to: Writable;
  readonly #pause: () => void;
  readonly #resume: () => void;
  #pending: Buffer[] = [];
  #scheduled = false;
  /** The last byte pushed, -1 before any: whether a stream of lines stands at a line's end. */
  last = -1;

  constructor(to: Writable, flow: { pause: () => void; resume: () => void }) {
    this.#to = to;
    this.#pause = flow.pause;
    this.#resume = flow.resume;
  }

  push(chunk: Buffer): void {
    if (chunk.length > 0) this.last = chunk[chunk.length - 1]!;
    this.#pending.push(chunk);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flush);
    }
  }

  /** Writes what is pending, then `tail`; `done` once the writable took it (not ended: the caller decides how it ends). */
  write(tail: Buffer, done: () => void): void {
    this.#flush();
    if (this.#to.destroyed || this.#to.writableEnded) return done();
    this.#to.write(tail, () => done());
  }

  /** Writes what is pending, then `tail` (kport's own last words), and ends the writable. */
  end(tail?: Buffer): void {
    this.#flush();
    if (!this.#to.destroyed && !this.#to.writableEnded) this.#to.end(tail);
  }

  readonly #flush = () => {
    this.#scheduled = false;
    if (this.#pending.length === 0) return;
    const chunks = this.#pending;
    this.#pending = [];
    const to = this.#to;
    if (to.destroyed || to.writableEnded) return;
    let room = true;
    if (chunks.length === 1) room = to.write(chunks[0]);
    else {
      to.cork();
      for (const chunk of chunks) room = to.write(chunk);
      to.uncork();
    }
    if (!room) {
      this.#pause();
      to.once('drain', this.#resume);
    }
  };
}

/**
 * pipe(), through a ChunkRelay. node ends an HTTP/2 stream's readable side when it is reset too:
 * one with a reset code is not ended here, and its owner passes the break on as a break.
 */
export function relay(from: Readable & { rstCode?: number }, to: Writable): ChunkRelay {
  const chunks = new ChunkRelay(to, { pause: () => from.pause(), resume: () => from.resume() });
  from.on('data', (chunk: Buffer) => chunks.push(chunk));
  from.once('end', () => from.rstCode || chunks.end());
  return chunks;
}
