// The S3 recording sink against a real S3 API (moto's server, no mock): audit_sessions_uri's forms
// and refusals; a session uploaded as it runs in parts of exactly S3's 5 MiB least, the last
// smaller, completed at its end; a small session as one object; a stop before the end leaves no
// object and no open upload; an unreachable bucket is known before a session starts; a failed
// upload is logged and put in session.end, never thrown at the session.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { parseCast } from '../../src/recordings/asciicast.ts';
import { parseSessionsUri } from '../../src/config/sessions-uri.ts';
import { SinkError } from '../../src/recordings/sink.ts';
import { SessionRecorder } from '../../src/server/events/recording/recorder.ts';
import { PART_SIZE, S3Sink } from '../../src/recordings/s3-sink.ts';
import { startMoto, type Moto } from '../peers/moto.ts';
import { freePort, havePeer, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

const MiB = 1024 * 1024;

describe('audit_sessions_uri', () => {
  test("s3://bucket/prefix with Teleport's query parameters: region, endpoint (a URL, or host:port made http by insecure=true), path style on with an endpoint", () => {
    assert.deepEqual(parseSessionsUri('s3://rec/team/a/?region=eu-west-1'), {
      bucket: 'rec',
      prefix: 'team/a',
      region: 'eu-west-1',
      pathStyle: false,
      where: 's3://rec/team/a',
    });
    assert.deepEqual(parseSessionsUri('s3://rec?endpoint=http://127.0.0.1:9000'), {
      bucket: 'rec',
      prefix: '',
      endpoint: 'http://127.0.0.1:9000',
      pathStyle: true,
      where: 's3://rec',
    });
    assert.equal(parseSessionsUri('s3://rec/p?endpoint=minio.internal:9000&insecure=true').endpoint, 'http://minio.internal:9000');
    assert.equal(parseSessionsUri('s3://rec/p?endpoint=minio.internal:9000').endpoint, 'https://minio.internal:9000');
    assert.equal(parseSessionsUri('s3://rec/p?endpoint=minio.internal&path_style=false').pathStyle, false);
    assert.equal(parseSessionsUri('s3://rec/p?disablesse=true').bucket, 'rec');
  });

  test('anything else is refused with one sentence saying what is wrong: another scheme, no bucket, a bad bucket name, credentials, unknown parameters, bad values', () => {
    const refused: Array<[string, RegExp]> = [
      ['/var/lib/recordings', /is not a URI/],
      ['file:///var/lib/recordings', /not an s3:\/\/ URI/],
      ['gs://bucket/prefix', /not an s3:\/\/ URI/],
      ['s3:///prefix', /names no bucket/],
      ['s3://', /names no bucket/],
      ['s3://My_Bucket/p', /not an S3 bucket name/],
      ['s3://ab/p', /not an S3 bucket name/],
      ['s3://AKIA:secret@bucket/p', /must not hold credentials/],
      ['s3://bucket:9000/p', /port after the bucket/],
      ['s3://bucket/p?regoin=us-east-1', /parameter "regoin", which kport does not know/],
      ['s3://bucket/p?insecure=yes', /insecure is true or false/],
      ['s3://bucket/p?endpoint=ftp://host', /not http or https/],
      ['s3://bucket/p?endpoint=http://k:s@host', /must not hold credentials/],
      ['s3://bucket/p?endpoint=http://host/path', /has a path/],
      // A path the URL parser would resolve away to /: percent-encoded, . and .. segments, backslashes.
      ['s3://bucket/p?endpoint=127.0.0.1:5599%2F..%2F', /has a path/],
      ['s3://bucket/p?endpoint=http://127.0.0.1:5599%2F..%2F', /has a path/],
      ['s3://bucket/p?endpoint=http://host:1/a/..', /has a path/],
      ['s3://bucket/p?endpoint=http://host:1/.', /has a path/],
      ['s3://bucket/p?endpoint=http://host:1%5C..%5C', /has a path/],
      ['s3://bucket/p?endpoint=http://host:1%23x', /has a path/],
      // A parameter given twice: which one was meant is not guessed.
      ['s3://bucket/p?endpoint=http://a:1&endpoint=http://b:2', /parameter "endpoint" more than once/],
      ['s3://bucket/p?region=us-east-1&region=eu-west-1', /parameter "region" more than once/],
      ['s3://bucket/p?insecure=true&insecure=false', /parameter "insecure" more than once/],
      ['s3://bucket/../p', /\.\. segment/],
      ['s3://bucket/p?region=us east', /not a region name/],
    ];
    for (const [uri, why] of refused) assert.throws(() => parseSessionsUri(uri), why, uri);
  });
});

describe('the S3 sink on moto', { concurrency: false, timeout: 180_000 }, () => {
  let moto: Moto | undefined;
  let s3: S3Client;
  const saved: Record<string, string | undefined> = {};
  const lines: string[] = [];
  const log = (line: string) => void lines.push(line);

  before(async (t) => {
    if (!havePeer(t as never, 'moto', [BINARIES.motoServer()])) return;
    moto = await startMoto();
    // The default credential chain, as a server has it: the environment.
    for (const [k, v] of Object.entries(moto.env)) {
      saved[k] = process.env[k];
      process.env[k] = v;
    }
    s3 = new S3Client({ endpoint: moto.endpoint, region: 'us-east-1', forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: 'recordings' }));
  });
  after(async () => {
    s3?.destroy();
    await moto?.stop();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  const open = (uri: string) => S3Sink.open(parseSessionsUri(uri), { log, probeMs: 60_000 });
  const object = async (key: string) => {
    const got = await s3.send(new GetObjectCommand({ Bucket: 'recordings', Key: key }));
    return { text: await got.Body!.transformToString(), etag: got.ETag ?? '' };
  };
  const openUploads = async () => (await s3.send(new ListMultipartUploadsCommand({ Bucket: 'recordings' }))).Uploads ?? [];

  test('a long session is uploaded while it runs, in parts of exactly 5 MiB, the last smaller; the object exists only once the session ends, whole and in order', async (t) => {
    if (!moto) return t.skip('no moto');
    const sink = await open(`s3://recordings/team?endpoint=${moto.endpoint}&region=us-east-1`);
    assert.equal(sink.unavailable(), undefined);
    const writer = sink.create('s-long');
    // 64 KiB writes, as the recorder flushes, each line numbered: 12 MiB in all.
    const chunk = (i: number) => `${String(i).padStart(8, '0')}${'x'.repeat(64 * 1024 - 9)}\n`;
    const total = (12 * MiB) / (64 * 1024);
    for (let i = 0; i < total; i++) await writer.write(chunk(i));
    // Two full parts are stored before the session ends (the third, 2 MiB, waits for the end).
    const upload = await waitFor('two parts stored while the session runs', async () => {
      const [u] = (await openUploads()).filter((x) => x.Key === 'team/s-long.cast');
      if (!u) return undefined;
      const parts = (await s3.send(new ListPartsCommand({ Bucket: 'recordings', Key: u.Key!, UploadId: u.UploadId! }))).Parts ?? [];
      return parts.length >= 2 ? parts : undefined;
    });
    assert.deepEqual(
      upload.map((p) => p.Size),
      [PART_SIZE, PART_SIZE],
    );
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: 'recordings', Key: 'team/s-long.cast' })), /NoSuchKey|does not exist/);
    await writer.close();
    const { text, etag } = await object('team/s-long.cast');
    assert.equal(text.length, 12 * MiB);
    // A multipart object's ETag ends in its number of parts: 5 + 5 + 2 MiB.
    assert.match(etag, /-3"?$/);
    const numbers = text
      .split('\n')
      .slice(0, -1)
      .map((l) => Number(l.slice(0, 8)));
    assert.deepEqual(
      numbers,
      Array.from({ length: total }, (_, i) => i),
    );
    assert.deepEqual(await openUploads(), []);
    await sink.close();
  });

  test('a stop before the end gives the upload up: no object, no parts left in the bucket', async (t) => {
    if (!moto) return t.skip('no moto');
    const sink = await open(`s3://recordings/team?endpoint=${moto.endpoint}`);
    const writer = sink.create('s-cut');
    for (let i = 0; i < 6 * 16; i++) await writer.write('y'.repeat(64 * 1024));
    await waitFor('a part stored', async () => ((await openUploads()).some((u) => u.Key === 'team/s-cut.cast') ? true : undefined));
    await writer.abort();
    await assert.rejects(writer.close(), /the server stopped before the upload was complete/);
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: 'recordings', Key: 'team/s-cut.cast' })), /NoSuchKey|does not exist/);
    assert.deepEqual(
      (await openUploads()).filter((u) => u.Key === 'team/s-cut.cast'),
      [],
    );
    await sink.close();
  });

  test('the recorder through the sink: a session is one object, plays back as asciicast, and is listed with its owner; an unreachable endpoint is known before any session starts', async (t) => {
    if (!moto) return t.skip('no moto');
    const sink = await open(`s3://recordings/rec?endpoint=${moto.endpoint}`);
    const events: Array<Record<string, unknown>> = [];
    const recorder = new SessionRecorder({ sink, audit: { record: async (e) => void events.push(e as Record<string, unknown>) }, log });
    const session = recorder.start({
      sessionId: 's-small',
      person: 'alice',
      cluster: 'prod',
      kubeUser: 'alice',
      kubeGroups: [],
      namespace: 'apps',
      pod: 'web',
      protocol: 'v5.channel.k8s.io',
    });
    assert.equal(session.recorded, true);
    session.fromUpstream(Buffer.from('HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n'));
    session.fromUpstream(Buffer.from([0x82, 6, 1, ...Buffer.from('hello')]));
    await session.end();
    const cast = parseCast((await object('rec/s-small.cast')).text);
    assert.equal(cast.header.kport?.user, 'alice');
    assert.deepEqual(
      cast.events.map(([, code, data]) => [code, data]),
      [['o', 'hello']],
    );
    const end = events.find((e) => e.type === 'session.end')!;
    assert.equal(end.recorded, true);
    const [listed] = await sink.list(10);
    assert.equal(listed?.session_id, 's-small');
    assert.equal(listed?.user, 'alice');
    assert.equal(listed?.pod, 'web');
    const played = await sink.open('s-small');
    let text = '';
    for await (const c of played.stream) text += c;
    assert.equal(text.length, played.size);
    await sink.close();

    const closed = await freePort();
    const down = await open(`s3://recordings/rec?endpoint=http://127.0.0.1:${closed}`);
    assert.match(down.unavailable() ?? '', /^s3:\/\/recordings\/rec does not answer: /);
    const refused = new SessionRecorder({ sink: down, audit: { record: async (e) => void events.push(e as Record<string, unknown>) }, log });
    const unrecorded = refused.start({
      sessionId: 's-down',
      person: 'alice',
      cluster: 'prod',
      kubeUser: 'alice',
      kubeGroups: [],
      protocol: 'v5.channel.k8s.io',
    });
    assert.equal(unrecorded.recorded, false);
    await unrecorded.end();
    const start = events.find((e) => e.type === 'session.start' && e.session_id === 's-down')!;
    assert.match(String(start.reason), /^the recordings cannot be stored now \(s3:\/\/recordings\/rec does not answer: /);
    await down.close();
  });

  test("a listing holds only the prefix's <session id>.cast objects, each with its owner and duration, a long one's read from its end", async (t) => {
    if (!moto) return t.skip('no moto');
    const sink = await open(`s3://recordings/listing?endpoint=${moto.endpoint}`);
    const header = (id: string, user: string) =>
      `${JSON.stringify({ version: 2, width: 80, height: 24, timestamp: 1_700_000_000, kport: { session_id: id, user, cluster: 'prod', kind: 'exec', pod: 'web' } })}\n`;
    const short = sink.create('s-short');
    await short.write(`${header('s-short', 'alice')}[0.5,"o","a"]\n[1.25,"o","b"]\n`);
    await short.close();
    // Past the 256 KiB read for the end: its duration comes from a second, ranged read.
    const long = sink.create('s-long');
    await long.write(header('s-long', 'bob'));
    for (let i = 1; i <= 400; i++) await long.write(`[${i / 10},"o",${JSON.stringify('z'.repeat(1000))}]\n`);
    await long.close();
    await s3.send(new PutObjectCommand({ Bucket: 'recordings', Key: 'listing/notes.txt', Body: 'not a recording' }));
    await s3.send(new PutObjectCommand({ Bucket: 'recordings', Key: 'listing/deeper/s-x.cast', Body: header('s-x', 'eve') }));
    await s3.send(new PutObjectCommand({ Bucket: 'recordings', Key: 'listing/bad id.cast', Body: header('bad id', 'eve') }));
    const rows = await sink.list(50);
    assert.deepEqual(rows.map((r) => [r.session_id, r.user, r.duration_ms]).sort(), [
      ['s-long', 'bob', 40_000],
      ['s-short', 'alice', 1250],
    ]);
    assert.equal((await sink.list(1)).length, 1);
    await sink.close();
  });

  test('an upload that fails (the bucket deleted under a session) is logged and said in session.end; the session is never thrown at', async (t) => {
    if (!moto) return t.skip('no moto');
    await s3.send(new CreateBucketCommand({ Bucket: 'going' }));
    const sink = await open(`s3://going/rec?endpoint=${moto.endpoint}`);
    assert.equal(sink.unavailable(), undefined);
    const events: Array<Record<string, unknown>> = [];
    const recorder = new SessionRecorder({ sink, audit: { record: async (e) => void events.push(e as Record<string, unknown>) }, log });
    const session = recorder.start({ sessionId: 's-fail', person: 'bob', cluster: 'prod', kubeUser: 'bob', kubeGroups: [], protocol: 'v5.channel.k8s.io' });
    assert.equal(session.recorded, true);
    session.fromUpstream(Buffer.from('HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n'));
    session.fromUpstream(Buffer.from([0x82, 3, 1, ...Buffer.from('hi')]));
    await s3.send(new DeleteBucketCommand({ Bucket: 'going' }));
    await session.end();
    const end = events.find((e) => e.type === 'session.end')!;
    assert.equal(end.recorded, false);
    assert.match(String(end.reason), /^the recording could not be stored: the upload to S3 failed \(NoSuchBucket/);
    assert.ok(
      lines.some((l) => l.includes('"level":"error"') && l.includes('session s-fail: the recording could not be stored')),
      lines.join('\n'),
    );
    await sink.close();
  });
});

describe('a part that fails while the session runs', { timeout: 120_000 }, () => {
  test('the recording stops there with the reason in session.end, and the session is never thrown at', async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    const moto = await startMoto();
    const saved = { ...process.env };
    Object.assign(process.env, moto.env);
    const s3 = new S3Client({ endpoint: moto.endpoint, region: 'us-east-1', forcePathStyle: true });
    try {
      await s3.send(new CreateBucketCommand({ Bucket: 'midway' }));
      const sink = await S3Sink.open(parseSessionsUri(`s3://midway/rec?endpoint=${moto.endpoint}`), { log: () => {} });
      const events: Array<Record<string, unknown>> = [];
      const lines: string[] = [];
      const recorder = new SessionRecorder({
        sink,
        audit: { record: async (e) => void events.push(e as Record<string, unknown>) },
        log: (l) => void lines.push(l),
      });
      const session = recorder.start({
        sessionId: 's-midway',
        person: 'carol',
        cluster: 'prod',
        kubeUser: 'carol',
        kubeGroups: [],
        protocol: 'v5.channel.k8s.io',
      });
      session.fromUpstream(Buffer.from('HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n'));
      await s3.send(new DeleteBucketCommand({ Bucket: 'midway' }));
      // 8 MiB of output in 32 KiB frames, as a kubelet sends it: the first part's upload fails midway.
      const payload = Buffer.concat([Buffer.from([1]), Buffer.alloc(32 * 1024, 'a')]);
      const frame = Buffer.concat([Buffer.from([0x82, 127, 0, 0, 0, 0, 0, 0, payload.length >> 8, payload.length & 0xff]), payload]);
      for (let i = 0; i < 256; i++) {
        session.fromUpstream(frame);
        await new Promise((resolve) => setImmediate(resolve));
      }
      await session.end();
      const end = events.find((e) => e.type === 'session.end')!;
      assert.equal(end.recorded, false);
      assert.match(String(end.reason), /recording stopped early: the upload to S3 failed \(NoSuchBucket/);
      assert.ok(
        lines.some((l) => l.includes('session s-midway: recording stopped: the upload to S3 failed')),
        lines.join('\n'),
      );
      await sink.close();
    } finally {
      s3.destroy();
      await moto.stop();
      for (const k of Object.keys(moto.env)) if (saved[k] === undefined) delete process.env[k];
      Object.assign(process.env, saved);
    }
  });
});

describe("the recorder at the server's stop", () => {
  test('sessions still open are ended and stored; one whose store does not finish within the grace is given up, and its session.end says so', async () => {
    // A sink whose stores finish only when told (the one module under test is the recorder).
    const pending: Array<{ id: string; finish: () => void; fail: (why: string) => void; aborted: boolean }> = [];
    const sink = {
      where: 'test://sink',
      budget: (await import('../../src/recordings/sink.ts')).NO_BUDGET,
      unavailable: () => undefined,
      ready: async () => undefined,
      open: async () => {
        throw new Error('unused');
      },
      list: async () => [],
      close: async () => {},
      create(id: string) {
        let finish!: () => void;
        let fail!: (why: string) => void;
        const stored = new Promise<void>((resolve, reject) => {
          finish = resolve;
          fail = (why) => reject(new SinkError(why));
        });
        const entry = { id, finish, fail, aborted: false };
        pending.push(entry);
        return {
          write: async () => {},
          close: () => stored,
          abort: async () => {
            entry.aborted = true;
            fail('the server stopped before the upload was complete');
          },
        };
      },
    };
    const events: Array<Record<string, unknown>> = [];
    const recorder = new SessionRecorder({ sink, audit: { record: async (e) => void events.push(e as Record<string, unknown>) }, log: () => {} });
    for (const id of ['s-quick', 's-stuck']) {
      const s = recorder.start({ sessionId: id, person: 'alice', cluster: 'prod', kubeUser: 'alice', kubeGroups: [], protocol: 'v5.channel.k8s.io' });
      s.fromUpstream(Buffer.from('HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n'));
      s.fromUpstream(Buffer.from([0x82, 3, 1, ...Buffer.from('hi')]));
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
    const closing = recorder.close(200);
    // The quick one's store finishes; the stuck one's never does.
    await waitFor('both stores begun', async () => (pending.length === 2 ? true : undefined));
    pending[0]!.finish();
    await closing;
    const ends = Object.fromEntries(events.filter((e) => e.type === 'session.end').map((e) => [e.session_id, e]));
    assert.equal(ends['s-quick']?.recorded, true);
    assert.equal(ends['s-quick']?.reason, 'the server stopped');
    assert.equal(pending[1]!.aborted, true);
    assert.equal(ends['s-stuck']?.recorded, false);
    assert.equal(ends['s-stuck']?.reason, 'the server stopped; the recording could not be stored: the server stopped before the upload was complete');
  });
});
