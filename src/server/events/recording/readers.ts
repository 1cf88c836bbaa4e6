// How many recording reads (plays and listings) the server serves at once. A play holds an open file
// and a stream for as long as its reader takes, which for `kport play` is the session's own length:
// each costs little (a 64 KiB read and the stream's window), but without a bound one person could
// hold every file descriptor. Past the bound the answer is 429 with the number, not a queue.
import { ApiError } from '../../../api/errors.ts';

export const READER_LIMITS = { perPerson: 4, total: 64 };

export class RecordingReaders {
  readonly #limits: { perPerson: number; total: number };
  readonly #byPerson = new Map<string, number>();
  #total = 0;

  constructor(limits = READER_LIMITS) {
    this.#limits = limits;
  }

  /** A slot for `person`'s read, or a 429 refusal; call the returned function once the read ends. */
  enter(person: string, what: 'play' | 'list'): () => void {
    const held = this.#byPerson.get(person) ?? 0;
    if (held >= this.#limits.perPerson) {
      throw new ApiError(
        'too_many_reads',
        `user ${person} already has ${held} recording plays or listings in flight, the most one person may have at once (${this.#limits.perPerson}): let one finish (or stop it with Ctrl-C), then ${what} again`,
      );
    }
    if (this.#total >= this.#limits.total) {
      throw new ApiError(
        'too_many_reads',
        `the server already serves ${this.#total} recording plays and listings, the most it serves at once (${this.#limits.total}): try again when one has finished`,
      );
    }
    this.#byPerson.set(person, held + 1);
    this.#total++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.#total--;
      const now = (this.#byPerson.get(person) ?? 1) - 1;
      if (now > 0) this.#byPerson.set(person, now);
      else this.#byPerson.delete(person);
    };
  }
}
