// Where session recordings go and are read back from, behind one interface: the server's own
// directory (one server; the default) or an S3-compatible bucket (auth_service.audit_sessions_uri),
// which every server of a cluster writes to and plays from. The recorder (server/events/recording)
// decides what a recording holds; a sink only stores bytes and gives them back.
import type { RecordingInfo } from '../api/wire.ts';
import type { OpenedRecording } from './store.ts';

/** A sink's refusal of bytes: `why` completes "the recording stopped: ..." in the cast's marker and session.end. */
export class SinkError extends Error {
  readonly why: string;
  constructor(why: string, options?: { cause?: unknown }) {
    super(why, options);
    this.why = why;
  }
}

/** One session's recording being written; the writes come in order, one at a time. */
export interface SinkWriter {
  /** Appends `text`; rejects with a SinkError when the sink cannot take it (the recording stops there). */
  write(text: string): Promise<void>;
  /** The session ended: what was written is made whole and readable. Rejects with a SinkError when it could not be stored. */
  close(): Promise<void>;
  /** The server stops before the session's end could be stored: what is half-stored is given up (no half object left behind). */
  abort(): Promise<void>;
}

/** What the recorder counts recordings against (budget.ts for a directory; nothing for a bucket, whose owner sets its limits). */
export interface SessionBudget {
  readonly limits: { total: number; perUser: number };
  usage(user: string): { total: number; user: number };
  noRoom(user: string): string | undefined;
  open(id: string, user: string): void;
  close(id: string): void;
  charge(id: string, user: string, bytes: number, force?: boolean): boolean;
  stopped(user: string, bytes: number): string;
}

export interface RecordingSink {
  /** Where the recordings are, for messages: a directory, or s3://bucket/prefix. */
  readonly where: string;
  /** The directory of a local sink; undefined for object storage. */
  readonly dir?: string;
  readonly budget: SessionBudget;
  /** Why a new recording cannot be taken now (the bucket unreachable), or undefined. Synchronous: it is asked before an upgrade is let through. */
  unavailable(): string | undefined;
  /** As unavailable(), asked of the storage now: before each session starts. */
  ready(): Promise<string | undefined>;
  /** A new recording, named by its session id (validSessionId); nothing is stored until the first write. */
  create(id: string): SinkWriter;
  /** One session's cast to be streamed; NoRecording when there is none. */
  open(id: string): Promise<OpenedRecording>;
  /** The newest `limit` recordings, newest first. */
  list(limit: number): Promise<RecordingInfo[]>;
  /** The server stops: probes and timers end (writers are ended by the recorder first). */
  close(): Promise<void>;
}

/** A bucket's recordings are not counted against a budget: its owner's quotas and lifecycle rules apply (README "Session recordings"). */
export const NO_BUDGET: SessionBudget = {
  limits: { total: Number.POSITIVE_INFINITY, perUser: Number.POSITIVE_INFINITY },
  usage: () => ({ total: 0, user: 0 }),
  noRoom: () => undefined,
  open: () => {},
  close: () => {},
  charge: () => true,
  stopped: () => 'no room',
};
