// Recordings in an S3-compatible bucket (auth_service.audit_sessions_uri), so that any server of a
// cluster plays what another recorded. A session is uploaded as it runs: lib-storage's Upload reads
// the cast from a stream in parts of PART_SIZE (S3's least for every part but the last), one part
// in flight at a time, and completes the multipart upload at the session's end (a session shorter
// than a part is one PutObject). An object exists only once whole: a play never sees half a session.
import { once } from 'node:events';
import { PassThrough, Readable } from 'node:stream';
import { GetObjectCommand, HeadBucketCommand, ListObjectsV2Command, S3Client, S3ServiceException, type _Object } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { RecordingInfo } from '../api/wire.ts';
import { describeRecording, HEADER_MAX, lastEventIn, newestFirst, TAIL_READ } from './catalog.ts';
import type { S3Location } from '../config/sessions-uri.ts';
import { NO_BUDGET, SinkError, type RecordingSink, type SinkWriter } from './sink.ts';
import { NoRecording, validSessionId, type OpenedRecording } from './store.ts';

/** S3's least part size (every part but the last): what a session holds in memory before its first part goes. */
export const PART_SIZE = 5 * 1024 * 1024;
/** How often the bucket is asked whether it answers, so that a session can be told before it starts. */
const PROBE_MS = 10_000;
/** A probe, or a read for a listing, that takes longer than this is an unreachable bucket. */
const PROBE_TIMEOUT_MS = 3_000;
/** While the bucket is down, unavailable() probes again at most this often. */
const REPROBE_MS = 1_000;
/** Listed recordings read at once (their headers and ends). */
const LIST_READERS = 8;

export interface S3SinkOptions {
  log: (line: string) => void;
  /** Bytes per part (tests use S3's least, 5 MiB; never less). */
  partSize?: number;
  probeMs?: number;
}

export class S3Sink implements RecordingSink {
  readonly budget = NO_BUDGET;
  readonly #loc: S3Location;
  readonly #client: S3Client;
  readonly #opts: Required<S3SinkOptions>;
  readonly #timer: NodeJS.Timeout;
  #down?: string;
  #probing?: Promise<void>;
  #probedAt = 0;

  /** The sink, once the bucket was asked whether it answers (the server starts either way: sessions are told). */
  static async open(loc: S3Location, opts: S3SinkOptions): Promise<S3Sink> {
    const sink = new S3Sink(loc, opts);
    await sink.probe();
    if (sink.#down) opts.log(JSON.stringify({ level: 'warn', msg: `session recordings cannot be stored now: ${sink.#down}` }));
    return sink;
  }

  private constructor(loc: S3Location, opts: S3SinkOptions) {
    this.#loc = loc;
    this.#opts = { partSize: PART_SIZE, probeMs: PROBE_MS, ...opts };
    if (this.#opts.partSize < PART_SIZE) throw new Error(`a part is at least ${PART_SIZE} bytes (S3's least)`);
    // Credentials from the default chain: environment, shared files, web identity, the instance's role.
    this.#client = new S3Client({
      // S3-compatible storage mostly ignores the region, but the SDK signs with one; AWS's own is the chain's (AWS_REGION).
      ...((loc.region ?? (loc.endpoint && !process.env.AWS_REGION && !process.env.AWS_DEFAULT_REGION)) && { region: loc.region ?? 'us-east-1' }),
      // A bucket in another region than the one given answers with a redirect the SDK follows.
      followRegionRedirects: true,
      ...(loc.endpoint && { endpoint: loc.endpoint }),
      forcePathStyle: loc.pathStyle,
      // An unreachable endpoint fails a call in seconds, not after the SDK's retries with backoff.
      maxAttempts: 2,
      requestHandler: { connectionTimeout: PROBE_TIMEOUT_MS, requestTimeout: 60_000 },
    });
    this.#timer = setInterval(() => void this.probe(), this.#opts.probeMs).unref();
  }

  get where(): string {
    return this.#loc.where;
  }

  unavailable(): string | undefined {
    // Down: a session's question probes again (at most once a second), so the bucket's return is seen soon.
    if (this.#down && Date.now() - this.#probedAt >= REPROBE_MS) void this.probe();
    return this.#down;
  }

  /** Asked at each session's start (one HeadBucket, joined by the sessions starting while it is in flight): a bucket gone a moment ago is seen. */
  async ready(): Promise<string | undefined> {
    await this.probe();
    return this.#down;
  }

  /** Asks the bucket whether it answers (HeadBucket), and keeps the answer for unavailable(). */
  probe(): Promise<void> {
    this.#probing ??= (async () => {
      try {
        await this.#client.send(new HeadBucketCommand({ Bucket: this.#loc.bucket }), { abortSignal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
        if (this.#down) this.#opts.log(JSON.stringify({ level: 'info', msg: `session recordings are stored again in ${this.where}` }));
        this.#down = undefined;
      } catch (err) {
        const was = this.#down;
        // An answer (no such bucket, access denied) is not silence: the operator's fix differs.
        this.#down = err instanceof S3ServiceException ? `${this.where} refuses: ${problem(err)}` : `${this.where} does not answer: ${problem(err)}`;
        if (was === undefined && this.#probedAt > 0)
          this.#opts.log(JSON.stringify({ level: 'error', msg: `session recordings cannot be stored now: ${this.#down}` }));
      } finally {
        this.#probedAt = Date.now();
        this.#probing = undefined;
      }
    })();
    return this.#probing;
  }

  create(id: string): SinkWriter {
    // A failed upload asks the bucket again: the next session is told at once if it is gone.
    return new UploadWriter(this.#client, { Bucket: this.#loc.bucket, Key: this.#key(id) }, this.#opts.partSize, () => void this.probe());
  }

  async open(id: string): Promise<OpenedRecording> {
    if (!validSessionId(id)) throw new NoRecording(`${JSON.stringify(id)} is not a session id (letters, digits, - and _)`);
    try {
      const got = await this.#client.send(new GetObjectCommand({ Bucket: this.#loc.bucket, Key: this.#key(id) }));
      const body = got.Body as Readable | undefined;
      return { size: got.ContentLength ?? 0, stream: body ?? Readable.from([]) };
    } catch (err) {
      if (err instanceof S3ServiceException && (err.name === 'NoSuchKey' || err.$metadata.httpStatusCode === 404))
        throw new NoRecording(`no recording of session ${id} (one is stored when its session ends)`);
      throw new SinkError(`the recording of session ${id} could not be read from ${this.where}: ${problem(err)}`, { cause: err });
    }
  }

  /**
   * The bucket's listing under the prefix is what exists: every server's recordings, none half
   * uploaded, whatever the audit's retention kept. Newest stored first; only the listed ones'
   * headers and ends are read (two ranged GETs each).
   */
  async list(limit: number): Promise<RecordingInfo[]> {
    const objects: Array<{ id: string; size: number; written: number }> = [];
    const base = this.#loc.prefix ? `${this.#loc.prefix}/` : '';
    let token: string | undefined;
    try {
      do {
        const page = await this.#client.send(new ListObjectsV2Command({ Bucket: this.#loc.bucket, Prefix: base, ...(token && { ContinuationToken: token }) }));
        for (const o of page.Contents ?? []) {
          const id = castId(o, base);
          if (id) objects.push({ id, size: o.Size ?? 0, written: o.LastModified?.getTime() ?? 0 });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      throw new SinkError(`the recordings in ${this.where} could not be listed: ${problem(err)}`, { cause: err });
    }
    objects.sort((a, b) => b.written - a.written || a.id.localeCompare(b.id));
    // A few reads at a time: a listing of 10,000 is 20,000 GETs, and each holds up to 320 KiB while it is read.
    const chosen = objects.slice(0, limit);
    const listed: Array<ReturnType<typeof describeRecording>> = [];
    let next = 0;
    const worker = async () => {
      for (let o = chosen[next++]; o; o = chosen[next++]) {
        const entry = await this.#describe(o).catch((err: unknown) => {
          if (err instanceof NoRecording) return undefined;
          throw new SinkError(`the recordings in ${this.where} could not be listed: ${problem(err)}`, { cause: err });
        });
        if (entry) listed.push(entry);
      }
    };
    await Promise.all(Array.from({ length: LIST_READERS }, worker));
    return listed.sort(newestFirst).map((e) => e.info);
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#probing;
    this.#client.destroy();
  }

  /** One listed recording: its header (a ranged GET) and its end (another, unless the first was all of it). NoRecording when it went since the listing. */
  async #describe(o: { id: string; size: number; written: number }): Promise<ReturnType<typeof describeRecording>> {
    if (o.size === 0) return describeRecording(o.id, undefined, 0, o.written);
    const head = await this.#range(o.id, `bytes=0-${Math.min(o.size, HEADER_MAX) - 1}`);
    const nl = head.indexOf(10);
    const entry = describeRecording(o.id, nl < 0 ? undefined : head.subarray(0, nl).toString('utf8'), o.size, o.written);
    // A small recording's head is all of it; a larger one's end is read on its own.
    const tail = head.length === o.size ? head : await this.#range(o.id, `bytes=-${TAIL_READ}`);
    entry.info.duration_ms = lastEventIn(tail, o.size <= TAIL_READ);
    return entry;
  }

  #key(id: string): string {
    return `${this.#loc.prefix ? `${this.#loc.prefix}/` : ''}${id}.cast`;
  }

  async #range(id: string, range: string): Promise<Buffer> {
    try {
      const got = await this.#client.send(new GetObjectCommand({ Bucket: this.#loc.bucket, Key: this.#key(id), Range: range }));
      return Buffer.from((await got.Body?.transformToByteArray()) ?? []);
    } catch (err) {
      if (err instanceof S3ServiceException && err.name === 'NoSuchKey') throw new NoRecording(`no recording of session ${id}`);
      throw err;
    }
  }
}

/** `<prefix>/<session id>.cast` directly under the prefix, or nothing. */
function castId(o: _Object, base: string): string | undefined {
  const rest = o.Key?.startsWith(base) ? o.Key.slice(base.length) : undefined;
  const id = rest?.endsWith('.cast') ? rest.slice(0, -'.cast'.length) : undefined;
  return validSessionId(id) ? id : undefined;
}

/** An SDK error in a few words: S3's code and status, or the connection's error. */
function problem(err: unknown): string {
  if ((err as Error)?.message === 'Region is missing') return 'no region is set: add region=REGION to audit_sessions_uri, or set AWS_REGION';
  if (err instanceof S3ServiceException)
    return `${err.name} (HTTP ${err.$metadata.httpStatusCode ?? '?'})${err.message && err.message !== err.name ? `: ${err.message}` : ''}`;
  const e = err as NodeJS.ErrnoException;
  return e?.code ? `${e.code}${e.message ? ` (${e.message})` : ''}` : String(e?.message ?? err);
}

/**
 * One session's multipart upload, fed as the recorder writes. A part that fails ends the upload
 * (lib-storage aborts it: no parts are left behind); the recorder then stops recording that session
 * and says why, and the session goes on.
 */
class UploadWriter implements SinkWriter {
  readonly #body = new PassThrough();
  readonly #upload: Upload;
  readonly #done: Promise<void>;
  #failed?: string;

  constructor(client: S3Client, target: { Bucket: string; Key: string }, partSize: number, failed: () => void) {
    this.#upload = new Upload({
      client,
      params: { ...target, Body: this.#body, ContentType: 'application/x-asciicast' },
      partSize,
      // One part in flight: a session holds at most two parts' bytes (one read, one sent).
      queueSize: 1,
      leavePartsOnError: false,
    });
    // A failure is the upload's (#done), whatever the stream says of it.
    this.#body.on('error', () => {});
    this.#done = this.#upload.done().then(
      () => undefined,
      (err: unknown) => {
        this.#failed ??= `the upload to S3 failed (${problem(err)})`;
        this.#body.destroy();
        failed();
      },
    );
  }

  async write(text: string): Promise<void> {
    if (this.#failed) throw new SinkError(this.#failed);
    // Backpressure: while a part is sent, the next waits here (the recorder's writes queue behind it).
    if (!this.#body.write(text)) await Promise.race([once(this.#body, 'drain').catch(() => undefined), this.#done]);
    if (this.#failed) throw new SinkError(this.#failed);
  }

  async close(): Promise<void> {
    if (!this.#failed) this.#body.end();
    await this.#done;
    if (this.#failed) throw new SinkError(this.#failed);
  }

  async abort(): Promise<void> {
    this.#failed ??= 'the server stopped before the upload was complete';
    await this.#upload.abort().catch(() => undefined);
    this.#body.destroy();
    await this.#done;
  }
}
