// How kport ends a person's Kubernetes request with a reason (issue #8), and which upgrades a
// require_session_recording role lets through (the attack issue, #12): the pure parts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ws from 'ws';
import { requestInfo } from '../../src/kube/request-info.ts';
import { RoleSet } from '../../src/roles/evaluate.ts';
import { parseRole } from '../../src/resources/role-check.ts';
import {
  droppedEnding,
  FrameBoundary,
  isJsonWatch,
  logLine,
  lostEnding,
  watchErrorEvent,
  websocketEnding,
  type Ending,
} from '../../src/server/kubeproxy/kube-ending.ts';
import { clusterRoute, upgradeProblem } from '../../src/server/kubeproxy/kube-route-path.ts';
import { requestRefusal, requestTarget, SPDY_REFUSAL, upgradeRefusal } from '../../src/server/events/recording/decision.ts';

type Receiver = NodeJS.WritableStream & { on(event: string, fn: (...args: any[]) => void): Receiver };
const { Receiver: ReceiverClass } = ws as unknown as { Receiver: new (opts: { isServer: boolean; skipUTF8Validation?: boolean }) => Receiver };

/** What a WebSocket client (ws's own parser, as gorilla reads them) makes of a server's bytes. */
function clientReads(bytes: Buffer): Array<{ message?: Buffer; binary?: boolean; close?: { code: number; reason: string } }> {
  const seen: Array<{ message?: Buffer; binary?: boolean; close?: { code: number; reason: string } }> = [];
  const receiver = new ReceiverClass({ isServer: false });
  receiver.on('message', (data: Buffer, binary: boolean) => seen.push({ message: Buffer.from(data), binary }));
  receiver.on('conclude', (code: number, reason: Buffer) => seen.push({ close: { code, reason: reason.toString() } }));
  receiver.on('error', (err: Error) => assert.fail(`the client could not read kport's frames: ${err.message}`));
  receiver.write(bytes);
  return seen;
}

const LOCKED: Ending = {
  code: 403,
  message: 'the server closed the connection: user carol is locked (incident 42): ask an editor to run kport users unlock carol.',
};

test('a WebSocket exec ended by kport: the Status on the error channel (v4, v5), plain text before v4, base64 for the base64 protocols; then Close 1000 with the sentence, cut whole', () => {
  for (const protocol of ['v5.channel.k8s.io', 'v4.channel.k8s.io']) {
    const [status, close] = clientReads(websocketEnding(protocol, LOCKED));
    assert.equal(status!.binary, true);
    assert.equal(status!.message![0], 3, 'channel 3, the error channel');
    assert.deepEqual(JSON.parse(status!.message!.subarray(1).toString()), {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: LOCKED.message,
      reason: 'Forbidden',
      code: 403,
    });
    assert.equal(close!.close!.code, 1000);
    assert.equal(close!.close!.reason, LOCKED.message.slice(0, 123));
  }
  const [v3] = clientReads(websocketEnding('v3.channel.k8s.io', LOCKED));
  assert.equal(v3!.message!.subarray(1).toString(), LOCKED.message);
  const [b64] = clientReads(websocketEnding('v4.base64.channel.k8s.io', LOCKED));
  assert.equal(b64!.binary, false);
  assert.equal(b64!.message!.toString()[0], '3');
  assert.equal(JSON.parse(Buffer.from(b64!.message!.toString().slice(1), 'base64').toString()).message, LOCKED.message);
  // Port-forward (SPDY tunnelled in a WebSocket) has no error channel: only the Close.
  assert.deepEqual(
    clientReads(websocketEnding('SPDY/3.1+portforward.k8s.io', LOCKED)).map((f) => Object.keys(f)),
    [['close']],
  );
  // A long message in UTF-8 is cut at a character's edge (an invalid reason would drop the connection instead).
  const long = { code: 503 as const, message: `${'é'.repeat(100)} and more` };
  const [, cut] = clientReads(websocketEnding('v5.channel.k8s.io', long));
  assert.ok(long.message.startsWith(cut!.close!.reason) && Buffer.byteLength(cut!.close!.reason) <= 123);
  // A Status longer than 125 and 65,535 bytes takes the longer length forms.
  for (const size of [200, 70_000]) {
    const [big] = clientReads(websocketEnding('v5.channel.k8s.io', { code: 403, message: 'x'.repeat(size) }));
    assert.equal(JSON.parse(big!.message!.subarray(1).toString()).message.length, size);
  }
});

test("FrameBoundary: between frames only at a frame's end, whatever the chunking; never after a Close", () => {
  const frames = [websocketEnding('v5.channel.k8s.io', { code: 403, message: 'x'.repeat(300) }).subarray(0, -127), Buffer.from([0x82, 0x03, 1, 104, 105])];
  // Server frames (unmasked) and client frames (masked, as a peer's): split at every byte.
  const masked = Buffer.from([0x82, 0x83, 1, 2, 3, 4, 1 ^ 1, 104 ^ 2, 105 ^ 3]);
  for (const stream of [Buffer.concat(frames), masked]) {
    const ends = new Set<number>();
    // Where each frame ends, from a boundary fed the stream whole up to each byte.
    for (let cut = 1; cut <= stream.length; cut++) {
      const b = new FrameBoundary();
      for (let i = 0; i < cut; i++) b.feed(stream.subarray(i, i + 1));
      if (b.between) ends.add(cut);
      const whole = new FrameBoundary();
      whole.feed(stream.subarray(0, cut));
      assert.equal(whole.between, b.between, `byte ${cut}: one chunk and single bytes agree`);
    }
    assert.ok(ends.has(stream.length), 'between, at the end of the last frame');
    assert.ok(ends.size <= frames.length, `only at frame ends: ${[...ends]}`);
  }
  const closed = new FrameBoundary();
  closed.feed(Buffer.from([0x88, 0x02, 0x03, 0xe8]));
  assert.equal(closed.between, false, 'no frame may follow a Close');
});

test('a watch ended by kport: one JSON ERROR event with the Status, only on a JSON watch', () => {
  const event = JSON.parse(watchErrorEvent({ code: 401, message: 'the certificate of carol expired at X' }).toString());
  assert.deepEqual(event, {
    type: 'ERROR',
    object: {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'the certificate of carol expired at X',
      reason: 'Unauthorized',
      code: 401,
    },
  });
  assert.ok(watchErrorEvent(LOCKED).toString().endsWith('}\n'));
  const verb = (path: string) => requestInfo('GET', path).verb;
  assert.equal(isJsonWatch(verb('/api/v1/namespaces/a/configmaps?watch=1'), 'application/json'), true);
  assert.equal(isJsonWatch(verb('/api/v1/watch/namespaces/a/configmaps'), 'application/json;as=Table;v=v1;g=meta.k8s.io'), true);
  assert.equal(isJsonWatch(verb('/api/v1/namespaces/a/configmaps?watch=1'), 'application/vnd.kubernetes.protobuf;stream=watch'), false);
  assert.equal(isJsonWatch(verb('/api/v1/namespaces/a/configmaps?watch=1'), 'application/cbor-seq'), false);
  assert.equal(isJsonWatch(verb('/api/v1/namespaces/a/pods/web/log?follow=true'), 'text/plain'), false);
});

test("require_session_recording: pods' exec and attach as before, port-forward through, every other upgrade and a kubelet's run refused; nothing refused without it", () => {
  const role = (name: string, options?: Record<string, unknown>) =>
    parseRole({ kind: 'role', version: 'v7', metadata: { name }, spec: { allow: { kubernetes_labels: { env: 'prod' } }, ...(options && { options }) } });
  const recorded = new RoleSet([role('rec', { require_session_recording: true })], 'alice');
  const free = new RoleSet([role('free')], 'alice');
  const prod = { env: 'prod' };
  const target = (path: string) => requestTarget(requestInfo('GET', path), path);
  const upgrades: Array<[string, string, RegExp | undefined]> = [
    ['/api/v1/namespaces/a/pods/web/exec?command=sh', 'v5.channel.k8s.io', undefined],
    ['/api/v1/namespaces/a/pods/web/attach', 'v5.channel.k8s.io', undefined],
    ['/api/v1/namespaces/a/pods/web/portforward', 'v5.channel.k8s.io', undefined],
    ['/api/v1/namespaces/a/pods/web/exec?command=sh', 'SPDY/3.1', /SPDY/],
    ['/api/v1/nodes/kwok-node/proxy/exec/a/web/c?command=sh', 'v5.channel.k8s.io', /a kubelet \(nodes\/NAME\/proxy\/exec\/a\/web\/c\)/],
    ['/api/v1/nodes/kwok-node/proxy/%61ttach/a/web/c', 'v5.channel.k8s.io', /a kubelet \(nodes\/NAME\/proxy\/attach\/a\/web\/c\)/],
    ['/api/v1/nodes/n/proxy/cri/exec/token', 'SPDY/3.1', /a kubelet/],
    ['/api/v1/nodes/n:10250/proxy/portForward/a/web', 'SPDY/3.1', /a kubelet/],
    ['/api/v1/namespaces/a/pods/web/proxy/shell', 'websocket', /a pod's proxy/],
    ['/api/v1/namespaces/a/services/web:80/proxy/', 'websocket', /a service's proxy/],
    ['/apis/example.com/v1/namespaces/a/widgets/w/console', 'websocket', /widgets\/console/],
  ];
  for (const [path, protocol, refused] of upgrades) {
    const why = upgradeRefusal(target(path), protocol, recorded, prod);
    if (refused) assert.match(why ?? '', refused, path);
    else assert.equal(why, undefined, path);
    if (refused && refused.source !== 'SPDY') assert.match(why!, /require_session_recording.*use kubectl exec/);
    assert.equal(upgradeRefusal(target(path), protocol, free, prod), undefined, `${path} without the option`);
  }
  assert.equal(upgradeRefusal(target('/api/v1/namespaces/a/pods/web/exec'), 'SPDY/3.1', recorded, prod), SPDY_REFUSAL);
  // Plain requests: a kubelet's run (a command without an upgrade) is refused; its stats and logs are not.
  assert.match(requestRefusal(target('/api/v1/nodes/n/proxy/run/a/web/c?cmd=id'), recorded, prod) ?? '', /kubelet's run endpoint/);
  assert.match(requestRefusal(target('/api/v1/nodes/n/proxy/%72un/a/web/c'), recorded, prod) ?? '', /kubelet's run endpoint/);
  assert.equal(requestRefusal(target('/api/v1/nodes/n/proxy/stats/summary'), recorded, prod), undefined);
  assert.equal(requestRefusal(target('/api/v1/nodes/n/proxy/run/a/web/c'), free, prod), undefined);
  assert.equal(requestRefusal(target('/api/v1/namespaces/a/pods/web/log'), recorded, prod), undefined);
});

test("why a request ended, in the person's words: an expired certificate (401) whatever the reason given, a lock or removal (403) as the server said it, an agent gone (503)", () => {
  const carol = { person: 'carol', notAfter: Date.parse('2030-01-01T00:00:00Z') };
  const before = carol.notAfter - 1;
  assert.deepEqual(droppedEnding(carol, 'the server closed the connection: user carol is locked', before), {
    code: 403,
    message: 'the server closed the connection: user carol is locked',
  });
  assert.deepEqual(droppedEnding(carol, 'anything', carol.notAfter), {
    code: 401,
    message: 'the certificate of carol expired at 2030-01-01T00:00:00.000Z: run kport login, then this command again',
  });
  assert.equal(droppedEnding(carol, undefined, before).message, 'the kport server closed the connection');
  assert.deepEqual(lostEnding(carol, 'lab', 'stream reset', undefined, before), {
    code: 503,
    message: 'the kport agent serving lab went away (stream reset): run this command again; `kport get kube_server` lists the agents',
  });
  // The agent's reset raced the server's own ending: the server's reason wins.
  assert.equal(lostEnding(carol, 'lab', 'stream reset', 'the server closed the connection: user carol is locked', before).code, 403);
  assert.equal(lostEnding(carol, 'lab', 'stream reset', undefined, carol.notAfter).code, 401);
  // A followed log's last line starts a line of its own.
  assert.equal(logLine({ code: 403, message: 'm' }, 0x0a).toString(), 'kport: m\n');
  assert.equal(logLine({ code: 403, message: 'm' }, 0x41).toString(), '\nkport: m\n');
});

test('/k/NAME routes: the name ends at a slash or at the query; an Upgrade header names exactly one protocol', () => {
  const none = new Map<string, string>();
  assert.deepEqual(clusterRoute('/k/lab?x=1', undefined, none), { name: 'lab', path: '/?x=1' });
  assert.deepEqual(clusterRoute('/k/lab/api?watch=1&x=/y', undefined, none), { name: 'lab', path: '/api?watch=1&x=/y' });
  assert.deepEqual(clusterRoute('/k/lab', undefined, none), { name: 'lab', path: '/' });
  assert.deepEqual(clusterRoute('/k/a%20b/api', undefined, none), { name: 'a b', path: '/api' });
  assert.deepEqual(clusterRoute('/k/%zz?q', undefined, none), { name: '%zz', path: '/?q' });
  assert.equal(clusterRoute('/api', undefined, none), undefined);
  for (const ok of ['websocket', 'WebSocket', 'SPDY/3.1', ' spdy/3.1 ']) assert.equal(upgradeProblem(ok), undefined, ok);
  for (const bad of ['websocket, SPDY/3.1', 'SPDY/3.1,websocket', 'h2c', '', undefined, ['websocket', 'websocket']])
    assert.match(upgradeProblem(bad) ?? '', /must name one protocol, websocket or SPDY\/3\.1/, String(bad));
});
