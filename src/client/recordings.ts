import { UserError } from '../core/errors.ts';
import { routes } from '../api/routes.ts';
import type { RecordingInfo } from '../api/wire.ts';
import type { Invocation } from './invocation.ts';
import type { PersonClient } from './person.ts';
import type { S3Sink } from '../recordings/s3-sink.ts';

/** A recording line is one event of a WebSocket message's output, escaped: far below this; a longer one is damage, not read on. */
export const MAX_CAST_LINE = 16 << 20;

/**
 * What `kport play` and `kport recordings ls` ask of whoever keeps the recordings: the server of the
 * login profile through /v1/recordings (an auditor), or this machine's server data dir (on the
 * server's host). A cast comes as lines, read as they are replayed: never whole in memory.
 */
export interface RecordingsService {
  list(limit: number): Promise<RecordingInfo[]>;
  lines(id: string, signal: AbortSignal): AsyncIterable<string>;
}

export function remoteRecordings(person: PersonClient): RecordingsService {
  return {
    list: async (limit) => (await person.call(routes.recordings, { op: 'ls', limit })).recordings,
    lines: (id, signal) => person.lines(routes.recordings, { session_id: id }, signal, { maxLine: MAX_CAST_LINE }),
  };
}

async function localRecordings(session: Pick<Invocation, 'config'>): Promise<RecordingsService> {
  const config = await session.config();
  // The server keeps its recordings in a bucket: read there, as any server of the cluster does.
  const uri = config.auth_service?.audit_sessions_uri;
  if (uri !== undefined) return bucketRecordings(uri);
  const [{ recordingsDir, openRecording, NoRecording }, { listRecordings }, { splitLines }] = await Promise.all([
    import('../recordings/store.ts'),
    import('../recordings/catalog.ts'),
    import('../core/lines.ts'),
  ]);
  const dir = recordingsDir(config.dataDir);
  return {
    list: (limit) => listRecordings(dir, limit),
    async *lines(id) {
      let opened;
      try {
        opened = await openRecording(dir, id);
      } catch (err) {
        if (err instanceof NoRecording)
          throw new UserError(`${err.message} in ${dir}: find sessions with kport recordings ls, or log in to the server that recorded it.`);
        throw err;
      }
      try {
        // As through the server (ServerClient.lines): empty lines are no events.
        for await (const line of splitLines(opened.stream, MAX_CAST_LINE)) if (line) yield line;
      } finally {
        opened.stream.destroy();
      }
    },
  };
}

async function bucketRecordings(uri: string): Promise<RecordingsService> {
  const [{ S3Sink: Sink }, { parseSessionsUri }, { NoRecording }, { splitLines }] = await Promise.all([
    import('../recordings/s3-sink.ts'),
    import('../config/sessions-uri.ts'),
    import('../recordings/store.ts'),
    import('../core/lines.ts'),
  ]);
  const location = parseSessionsUri(uri);
  const use = async <T>(read: (sink: S3Sink) => Promise<T>): Promise<T> => {
    const sink = await Sink.open(location, { log: () => {} });
    try {
      return await read(sink);
    } catch (err) {
      throw new UserError(`${(err as Error).message}: check auth_service.audit_sessions_uri and the AWS credentials.`);
    } finally {
      await sink.close();
    }
  };
  return {
    list: (limit) => use((sink) => sink.list(limit)),
    async *lines(id) {
      const sink = await Sink.open(location, { log: () => {} });
      try {
        let opened;
        try {
          opened = await sink.open(id);
        } catch (err) {
          if (err instanceof NoRecording) throw new UserError(`${err.message} in ${location.where}: find sessions with kport recordings ls.`);
          throw new UserError(`${(err as Error).message}: check auth_service.audit_sessions_uri and the AWS credentials.`);
        }
        try {
          for await (const line of splitLines(opened.stream, MAX_CAST_LINE)) if (line) yield line;
        } finally {
          opened.stream.destroy();
        }
      } finally {
        await sink.close();
      }
    },
  };
}

/** Through the server when commands run through one (Session.where), else the recordings directory of this machine's server. */
export async function recordingsService(session: Pick<Invocation, 'person' | 'config'>): Promise<RecordingsService> {
  const person = await session.person();
  return person ? remoteRecordings(person) : localRecordings(session);
}
