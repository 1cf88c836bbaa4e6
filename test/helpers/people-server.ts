// A real `kport server start` with its store opened beside it, as the admin on its host would
// (the people service's functions, as `kport users ...` calls them locally), and people enrolled
// through the invite routes with raw node:http2 (test/helpers/person.ts).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { SqliteBackend } from '../../src/backend/sqlite.ts';
import { addUser } from '../../src/people/users.ts';
import { createResource, listResources } from '../../src/resources/store.ts';
import { startServer, type TestServer } from './network.ts';
import { keyAndCsr, post, totpAt } from './person.ts';

export const PASSWORD = 'correct horse battery staple';

export interface Person {
  name: string;
  cert: string;
  key: string;
  secret: string;
  /** When the code used at enrollment was made: its step is the last one used. */
  at: number;
}

export interface PeopleServer {
  server: TestServer;
  store: SqliteBackend;
  /** A user added on the server's host and enrolled through the invite routes. */
  enroll(name: string, roles: string[]): Promise<Person>;
  auditEvents(): Promise<Array<{ type: string; outcome: string; user?: string; reason?: string; action?: string; remote_addr?: string }>>;
  /** Every key of the store but the audit trail: what "nothing written" compares. */
  storeKeys(): Promise<string[]>;
  close(): Promise<void>;
}

export async function peopleServer(): Promise<PeopleServer> {
  const server = await startServer();
  const store = await SqliteBackend.open(join(server.dir, 'data', 'kport.db'));
  return {
    server,
    store,
    async enroll(name, roles) {
      const { invite } = await addUser(store, { name, roles }, new Date());
      const begun = await post(server.port, '/v1/login/invite/begin', { invite });
      assert.equal(begun.status, 200, JSON.stringify(begun.body));
      const { key, csr } = await keyAndCsr(name);
      const at = Date.now();
      const done = await post(server.port, '/v1/login/invite/finish', { invite, password: PASSWORD, totp_code: totpAt(begun.body.totp_secret, at), csr });
      assert.equal(done.status, 200, JSON.stringify(done.body));
      return { name, cert: done.body.cert, key, secret: begun.body.totp_secret, at };
    },
    async auditEvents() {
      return (await listResources<any>(store, 'audit_event')).map((e) => e.spec);
    },
    async storeKeys() {
      return (await store.list('/'))
        .filter((i) => !i.key.startsWith('/resources/audit_event/'))
        .map((i) => `${i.key}@${i.revision}`)
        .sort();
    },
    async close() {
      await store.close();
      await server.stop();
    },
  };
}

/** Role dev-access (env: dev) and three static clusters, c-dev and c-dev2 (env: dev) and c-prod, whose kubeconfigs carry a marker no person may see. */
export async function seedClusters(store: SqliteBackend): Promise<void> {
  await createResource(store, { kind: 'role', version: 'v7', metadata: { name: 'dev-access' }, spec: { allow: { kubernetes_labels: { env: 'dev' } } } });
  for (const [name, env] of [
    ['c-dev', 'dev'],
    ['c-dev2', 'dev'],
    ['c-prod', 'prod'],
  ] as const) {
    await createResource(store, {
      kind: 'kube_cluster',
      version: 'v3',
      metadata: { name, labels: { env } },
      spec: { kubeconfig: `apiVersion: v1\nkind: Config\n# KUBECONFIG-SECRET-${name}\n` },
    });
  }
}
