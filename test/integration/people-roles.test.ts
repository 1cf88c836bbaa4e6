// What a person sees of clusters through the server follows their roles as they are now, and a
// role's kube_cluster rule is bounded by its kubernetes_labels (found by the outside attack, issue 28).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import type { SqliteBackend } from '../../src/backend/sqlite.ts';
import { updateUser } from '../../src/people/users.ts';
import { createResource } from '../../src/resources/store.ts';
import type { TestServer } from '../helpers/network.ts';
import { type PeopleServer, type Person, peopleServer, seedClusters } from '../helpers/people-server.ts';
import { post, Session } from '../helpers/person.ts';
import { waitFor } from '../peers/process.ts';

let people: PeopleServer;
let server: TestServer;
let store: SqliteBackend;
const enroll = (name: string, roles: string[]) => people.enroll(name, roles);
const storeKeys = () => people.storeKeys();
const as = (p: { cert: string; key: string }) => ({ cert: p.cert, key: p.key });
const backendCall = (p: { cert: string; key: string }, call: unknown) => post(server.port, '/v1/backend', call, as(p));

describe('people: clusters as the roles allow them now', { timeout: 240_000 }, () => {
  before(async () => {
    people = await peopleServer();
    ({ server, store } = people);
    await seedClusters(store);
  });
  after(async () => {
    await people?.close();
  });

  test('an open watch follows the roles as they are now: after users update it shows only what the new roles allow', async () => {
    await createResource(store, { kind: 'role', version: 'v7', metadata: { name: 'lab-access' }, spec: { allow: { kubernetes_labels: { env: 'lab' } } } });
    const rita = await enroll('rita', ['dev-access', 'lab-access']);
    const session = await Session.open(server.port, as(rita));
    try {
      const lines: string[] = [];
      const req = session.h2.request({ ':method': 'POST', ':path': '/v1/watch', 'content-type': 'application/json' });
      req.setEncoding('utf8');
      let buffered = '';
      // The server's first byte (an empty line) is written once the watch is subscribed.
      const open = new Promise<void>((resolve) => req.once('data', () => resolve()));
      req.on('data', (chunk: string) => {
        buffered += chunk;
        const parts = buffered.split('\n');
        buffered = parts.pop()!;
        lines.push(...parts.filter(Boolean));
      });
      req.end(JSON.stringify({ op: 'watch', prefix: '/resources/kube_cluster/' }));
      await open;
      const cluster = (name: string, env: string) =>
        createResource(store, { kind: 'kube_cluster', version: 'v3', metadata: { name, labels: { env } }, spec: { kubeconfig: 'apiVersion: v1\n' } });
      const names = () => lines.map((l) => JSON.parse(JSON.parse(l).item.value).metadata.name as string);
      await cluster('r-lab-1', 'lab');
      await waitFor('the lab cluster in the watch', async () => names().includes('r-lab-1'), { timeoutMs: 30_000 });

      await updateUser(store, { name: 'rita', change: { set: ['dev-access'] } }, new Date());
      await cluster('r-lab-2', 'lab');
      await cluster('r-dev-1', 'dev');
      await waitFor('the dev cluster in the watch', async () => names().includes('r-dev-1'), { timeoutMs: 30_000 });
      assert.deepEqual(names(), ['r-lab-1', 'r-dev-1'], 'a cluster the new roles do not allow is not shown');
    } finally {
      session.close();
    }
  });

  test("a role's kube_cluster rule reaches only the clusters its kubernetes_labels match, and a deny label hides and protects a cluster whatever the rules say", async () => {
    await createResource(store, {
      kind: 'role',
      version: 'v7',
      metadata: { name: 'prod-write' },
      spec: { allow: { kubernetes_labels: { env: 'prod' }, rules: [{ resources: ['kube_cluster'], verbs: ['*'] }] } },
    });
    await createResource(store, {
      kind: 'role',
      version: 'v7',
      metadata: { name: 'no-dev' },
      spec: {
        allow: { kubernetes_labels: { '*': '*' }, rules: [{ resources: ['kube_cluster'], verbs: ['list', 'read'] }] },
        deny: { kubernetes_labels: { env: 'dev' } },
      },
    });
    const pat = await enroll('pat', ['prod-write']);
    const dana = await enroll('dana', ['no-dev']);
    const names = async (who: Person) =>
      ((await backendCall(who, { op: 'list', prefix: '/resources/kube_cluster/' })).body.items as Array<{ key: string }>)
        .map((i) => i.key.split('/').pop())
        .sort();
    assert.deepEqual(
      (await names(dana)).filter((n) => n?.startsWith('c-')),
      ['c-prod'],
      'the deny label hides the dev clusters from a role whose rules read every cluster',
    );
    assert.deepEqual(await names(pat), ['c-prod']);
    assert.equal((await backendCall(pat, { op: 'get', key: '/resources/kube_cluster/c-dev' })).body.item, null);

    const before = await storeKeys();
    const kubeconfig = stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:6443' } }],
      users: [{ name: 'u', user: { token: 't' } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    });
    const cluster = (name: string, env: string) =>
      JSON.stringify({ kind: 'kube_cluster', version: 'v3', metadata: { name, labels: { env } }, spec: { kubeconfig } });
    for (const call of [
      { op: 'put', key: '/resources/kube_cluster/c-dev', value: cluster('c-dev', 'prod') },
      { op: 'delete', key: '/resources/kube_cluster/c-dev' },
      { op: 'create', key: '/resources/kube_cluster/p-new-dev', value: cluster('p-new-dev', 'dev') },
      { op: 'put', key: '/resources/kube_cluster/c-prod', value: cluster('c-prod', 'dev') },
    ]) {
      const res = await backendCall(pat, call);
      assert.equal(res.status, 403, `${call.op} ${call.key}: ${JSON.stringify(res.body)}`);
      assert.match(res.body.error.message, /no role's kube_cluster rule reaches its labels/);
    }
    assert.deepEqual(await storeKeys(), before, 'nothing was written');
    const created = await backendCall(pat, { op: 'create', key: '/resources/kube_cluster/p-new-prod', value: cluster('p-new-prod', 'prod') });
    assert.equal(created.status, 200, JSON.stringify(created.body));
  });

  test("a watch never names a cluster the person could not see: a hidden one's delete is not sent, one that leaves their view is sent as a delete, one they saw as the watch opened is", async () => {
    const vic = await enroll('vic', ['dev-access']);
    const session = await Session.open(server.port, as(vic));
    try {
      const lines: string[] = [];
      const req = session.h2.request({ ':method': 'POST', ':path': '/v1/watch', 'content-type': 'application/json' });
      req.setEncoding('utf8');
      let buffered = '';
      const open = new Promise<void>((resolve) => req.once('data', () => resolve()));
      req.on('data', (chunk: string) => {
        buffered += chunk;
        const parts = buffered.split('\n');
        buffered = parts.pop()!;
        lines.push(...parts.filter(Boolean));
      });
      req.end(JSON.stringify({ op: 'watch', prefix: '/resources/kube_cluster/' }));
      await open;
      const events = () =>
        lines
          .map((l) => JSON.parse(l) as { type: string; key?: string; item?: { key: string } })
          .map((e) => `${e.type} ${(e.key ?? e.item?.key)?.split('/').pop()}`);
      const put = (name: string, env: string) =>
        store.put(
          `/resources/kube_cluster/${name}`,
          JSON.stringify({ kind: 'kube_cluster', version: 'v3', metadata: { name, labels: { env } }, spec: { kubeconfig: 'apiVersion: v1\n' } }),
        );
      await put('v-secret-project', 'lab');
      await store.delete('/resources/kube_cluster/v-secret-project');
      await put('v-moving', 'dev');
      await put('v-moving', 'lab');
      await store.delete('/resources/kube_cluster/v-moving');
      await store.delete('/resources/kube_cluster/c-dev2');
      await put('v-sentinel', 'dev');
      await waitFor('the sentinel in the watch', async () => events().includes('put v-sentinel'), { timeoutMs: 30_000 });
      assert.deepEqual(events(), ['put v-moving', 'delete v-moving', 'delete c-dev2', 'put v-sentinel']);
    } finally {
      session.close();
    }
  });
});
