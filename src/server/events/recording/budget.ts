// The disk the recordings directory may take (attack issue #6): a total, and each person's share of
// it, so one person's sessions cannot fill it for everyone. Counted from the files themselves, by
// the owner each recording's header names: an operator makes room by deleting or moving files
// (kport has no command that removes recordings), and the next session that would not fit sees it,
// without a restart.
import { lstatSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { formatBytes } from '../../../core/bytes.ts';
import { castIdsSync, recordingOwnerSync } from '../../../recordings/catalog.ts';

export interface BudgetLimits {
  /** All recordings together. */
  total: number;
  /** What one person's recordings may take of the total. */
  perUser: number;
}

/** 4 GiB in all, a quarter of it per person: auth_service.recording_budget sets them. */
export const DEFAULT_BUDGET: BudgetLimits = { total: 4 * 1024 ** 3, perUser: 1024 ** 3 };

/** The limits from auth_service.recording_budget: a total alone gives each person a quarter of it. */
export function budgetLimits(config: { total?: number; per_user?: number } | undefined): BudgetLimits {
  const total = config?.total ?? DEFAULT_BUDGET.total;
  return { total, perUser: config?.per_user ?? (config?.total === undefined ? DEFAULT_BUDGET.perUser : Math.floor(total / 4)) };
}

/** Room a new session needs to be recorded at all: its header and a screenful; less would record a header and a marker. */
const MIN_ROOM = 4 * 1024;

interface Entry {
  user?: string;
  bytes: number;
}

export class RecordingBudget {
  readonly #dir: string;
  readonly #limits: BudgetLimits;
  readonly #files = new Map<string, Entry>();
  /** Sessions being written: their bytes are what they were charged (the file may not be there yet). */
  readonly #active = new Set<string>();
  readonly #byUser = new Map<string, number>();
  #total = 0;
  /** The directory's mtime when it was last measured: a file added or removed changes it. */
  #stamp?: bigint;

  constructor(dir: string, limits: BudgetLimits = DEFAULT_BUDGET) {
    this.#dir = dir;
    this.#limits = limits;
    this.#measure();
  }

  get limits(): BudgetLimits {
    return this.#limits;
  }

  /** What all recordings, and `user`'s, take as counted now. */
  usage(user: string): { total: number; user: number } {
    return { total: this.#total, user: this.#byUser.get(user) ?? 0 };
  }

  /** Why `user`'s new session cannot be recorded (what is used, against what), or undefined when there is room. */
  noRoom(user: string): string | undefined {
    if (!this.#fits(user, MIN_ROOM)) this.#remeasure();
    if (this.#fits(user, MIN_ROOM)) return undefined;
    return this.#describe(user, MIN_ROOM);
  }

  /** A session starts being written. */
  open(id: string, user: string): void {
    this.#active.add(id);
    if (!this.#files.has(id)) this.#files.set(id, { user, bytes: 0 });
  }

  /** A session's file is closed: from now on it is measured like any other. */
  close(id: string): void {
    this.#active.delete(id);
  }

  /**
   * Counts `bytes` more of session `id` (open()ed for `user`); false, and nothing counted, when they
   * do not fit the total or the person's share. `force` counts them anyway (a header, the marker
   * saying the recording stopped: a reader must see them).
   */
  charge(id: string, user: string, bytes: number, force = false): boolean {
    if (!force && !this.#fits(user, bytes)) {
      this.#remeasure();
      if (!this.#fits(user, bytes)) return false;
    }
    const entry = this.#files.get(id) ?? { user, bytes: 0 };
    this.#files.set(id, entry);
    entry.bytes += bytes;
    this.#add(user, bytes);
    return true;
  }

  /** Why a write of `bytes` did not fit, for the marker and session.end. */
  stopped(user: string, bytes: number): string {
    return `no room left in the recording budget (${this.#describe(user, bytes)})`;
  }

  #fits(user: string, bytes: number): boolean {
    return this.#total + bytes <= this.#limits.total && (this.#byUser.get(user) ?? 0) + bytes <= this.#limits.perUser;
  }

  /** What is used, the limit that `bytes` more would pass first. */
  #describe(user: string, bytes: number): string {
    const { total, perUser } = this.#limits;
    const mine = this.#byUser.get(user) ?? 0;
    const all = `all recordings take ${formatBytes(this.#total)} of the server's ${formatBytes(total)}`;
    const theirs = `${user}'s take ${formatBytes(mine)} of their ${formatBytes(perUser)} share`;
    return mine + bytes > perUser ? `${theirs}; ${all}` : `${all}; ${theirs}`;
  }

  #add(user: string | undefined, bytes: number): void {
    this.#total += bytes;
    if (user !== undefined) this.#byUser.set(user, (this.#byUser.get(user) ?? 0) + bytes);
  }

  /** Measures again only when the directory changed since the last time: a refused session costs one stat. */
  #remeasure(): void {
    if (this.#dirStamp() !== this.#stamp) this.#measure();
  }

  #dirStamp(): bigint | undefined {
    try {
      return statSync(this.#dir, { bigint: true }).mtimeNs;
    } catch {
      return undefined;
    }
  }

  /** The files as they are: sizes again, owners of new ones from their headers, the gone ones forgotten. Sessions being written keep their count. */
  #measure(): void {
    this.#stamp = this.#dirStamp();
    const present = new Set(castIdsSync(this.#dir));
    for (const id of this.#files.keys()) if (!present.has(id) && !this.#active.has(id)) this.#files.delete(id);
    for (const id of present) {
      if (this.#active.has(id)) continue;
      const known = this.#files.get(id);
      // A known file's owner is known: its size is one lstat. A new one's header names its owner.
      const found = known ? sizeOf(join(this.#dir, `${id}.cast`), known.user) : recordingOwnerSync(this.#dir, id);
      if (found) this.#files.set(id, { ...(found.user !== undefined && { user: found.user }), bytes: found.bytes });
      else this.#files.delete(id);
    }
    this.#total = 0;
    this.#byUser.clear();
    for (const entry of this.#files.values()) this.#add(entry.user, entry.bytes);
  }
}

function sizeOf(path: string, user: string | undefined): Entry | undefined {
  try {
    const stat = lstatSync(path);
    return stat.isFile() ? { ...(user !== undefined && { user }), bytes: stat.size } : undefined;
  } catch {
    return undefined;
  }
}
