import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { test } from 'node:test';
import { ChunkRelay, relay } from '../../src/kube/relay.ts';

/** A writable that records each write(), end() and the turn of the event loop they came in. */
function recorder(opts: { highWaterMark?: number; slow?: boolean } = {}) {
  const events: string[] = [];
  let turn = 0;
  const tick = setInterval(() => turn++, 0);
  const pending: Array<() => void> = [];
  const sink = new Writable({
    highWaterMark: opts.highWaterMark ?? 16384,
    write(chunk: Buffer, _enc, done) {
      events.push(`write ${chunk.toString()} @${turn}`);
      if (opts.slow) pending.push(done);
      else done();
    },
    writev(chunks, done) {
      events.push(`writev ${chunks.map((c) => (c.chunk as Buffer).toString()).join('+')} @${turn}`);
      done();
    },
    final(done) {
      events.push(`end @${turn}`);
      clearInterval(tick);
      done();
    },
  });
  return {
    sink,
    events,
    release: () => {
      for (const d of pending.splice(0)) d();
    },
    stop: () => clearInterval(tick),
  };
}

test('chunks that arrive in one turn are written together, and the end follows the last write in the same turn', async () => {
  const { sink, events } = recorder();
  const chunks = new ChunkRelay(sink, { pause: () => {}, resume: () => {} });
  chunks.push(Buffer.from('a'));
  chunks.push(Buffer.from('b'));
  chunks.end();
  await new Promise((resolve) => sink.once('finish', resolve));
  assert.equal(events.length, 2);
  assert.match(events[0]!, /^writev a\+b @(\d+)$/);
  assert.equal(events[1], `end @${events[0]!.split('@')[1]}`);
});

test('a chunk with no end behind it is written in the next turn, not held back', async () => {
  const { sink, events, stop } = recorder();
  const chunks = new ChunkRelay(sink, { pause: () => {}, resume: () => {} });
  chunks.push(Buffer.from('event-1'));
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(
    events.map((e) => e.split(' @')[0]),
    ['write event-1'],
  );
  chunks.push(Buffer.from('event-2'));
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(
    events.map((e) => e.split(' @')[0]),
    ['write event-1', 'write event-2'],
  );
  stop();
});

test('backpressure: the source is paused while the writable is full and resumed when it drains', async () => {
  const { sink, events, release } = recorder({ highWaterMark: 4, slow: true });
  const source = new PassThrough();
  relay(source, sink);
  source.write('12345678');
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(source.isPaused(), true, 'paused while the sink is over its high-water mark');
  const drained = new Promise((resolve) => sink.once('drain', resolve));
  release();
  await drained;
  assert.equal(source.isPaused(), false, 'resumed after drain');
  source.end('tail');
  await new Promise((resolve) => setImmediate(resolve));
  release();
  await new Promise((resolve) => sink.once('finish', resolve));
  assert.deepEqual(
    events.map((e) => e.split(' @')[0]),
    ['write 12345678', 'write tail', 'end'],
  );
});

test('nothing is written to a writable that was destroyed (the client went away)', async () => {
  const { sink, events, stop } = recorder();
  const chunks = new ChunkRelay(sink, { pause: () => {}, resume: () => {} });
  chunks.push(Buffer.from('late'));
  sink.destroy();
  chunks.end();
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(events, []);
  stop();
});
