// kport's own hop headers (kport-identity, kport-peer-host, any kport-*) are set by kport alone: with
// real processes (`kport server start` serving a static cluster in-process, a real Kubernetes agent
// `kport discover run` serving another over its tunnel), a person's request and upgrade carrying
// kport-* headers reach the cluster without any of them, on both paths.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server } from 'node:https';
import { connect as http2Connect } from 'node:http2';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { stringify } from 'yaml';
import { createCA } from '../../src/kube/pki.ts';
import { invitedPerson, type Person } from '../helpers/login.ts';
import { kubeAgent, startServer, type KubeAgent, type TestServer } from '../helpers/network.ts';
import { kubeconfigYaml } from '../peers/kube.ts';
import { waitFor } from '../peers/process.ts';

/** What a client sends to steer or impersonate a hop: none of it may reach the cluster. */
const CLIENT_SENT = { 'kport-peer-host': 'someone-elses-agent', 'kport-identity': 'forged', 'kport-anything': 'x' };

describe("a client's kport-* headers never reach the cluster (local and tunnel paths, requests and upgrades)", { concurrency: false, timeout: 300_000 }, () => {
  let upstream: Server;
  let server: TestServer;
  let agent: KubeAgent;
  let alice: Person;
  /** Each request and upgrade the cluster saw: its path and header names as sent. */
  const seen: Array<{ url: string; names: string[] }> = [];

  before(async () => {
    const ca = await createCA('echo-cluster');
    const serving = await ca.issue({ commonName: 'echo', ips: ['127.0.0.1'], usage: 'server' });
    const record = (req: { url?: string; rawHeaders: string[] }) =>
      seen.push({ url: req.url ?? '', names: req.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase()) });
    upstream = createHttpsServer({ cert: serving.cert, key: serving.key }, (req, res) => {
      record(req);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', major: '1', minor: '31', gitVersion: 'v1.31.0' }));
    });
    upstream.on('upgrade', (req, socket) => {
      record(req);
      socket.end('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n');
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const url = `https://127.0.0.1:${(upstream.address() as { port: number }).port}`;

    server = await startServer({ kubernetes: { enabled: 'yes', resources: [{ labels: { env: 'dev' } }] } });
    const setup = join(server.dir, 'headers-setup.yaml');
    writeFileSync(
      setup,
      [
        stringify({
          kind: 'role',
          version: 'v7',
          metadata: { name: 'dev-access' },
          spec: { allow: { kubernetes_labels: { env: 'dev' }, kubernetes_groups: ['developers'] } },
        }),
        stringify({
          kind: 'kube_cluster',
          version: 'v3',
          metadata: { name: 'static', labels: { env: 'dev' } },
          spec: { kubeconfig: kubeconfigYaml(url, ca.cert, { user: 'proxy', token: 'upstream-token', groups: [] }) },
        }),
      ].join('---\n'),
    );
    const created = await server.kport(['create', '-f', setup]);
    assert.equal(created.exitCode, 0, String(created.stderr));
    agent = await kubeAgent(server, {
      name: 'kube-agent-headers',
      kubeconfig: kubeconfigYaml(url, ca.cert, { user: 'proxy', token: 'upstream-token', groups: [] }, 'tunnelled'),
      kubernetes: { labels: { env: 'dev' } },
    });
    agent.start();
    alice = await invitedPerson(server, 'alice', ['dev-access']);
    await waitFor(
      'static and tunnelled served',
      async () => {
        const listed = (
          JSON.parse(String((await server.kport(['get', 'kube_server', '-o', 'json'])).stdout)) as Array<{ spec: { clusters: string[] } }>
        ).flatMap((s) => s.spec.clusters);
        return ['static', 'tunnelled'].every((c) => listed.includes(c));
      },
      { timeoutMs: 90_000 },
    );
  });
  after(async () => {
    if (process.env.KPORT_TEST_DEBUG) process.stderr.write(`--- server\n${server?.log.slice(-4000)}\n--- agent\n${agent?.log}\n`);
    await agent?.kill();
    await server?.stop();
    upstream?.close();
  });

  const credentials = () => {
    const dir = join(alice.home, '.kport', 'profiles', `127.0.0.1_${server.port}`);
    return {
      cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
      key: readFileSync(join(dir, 'key.pem'), 'utf8'),
      ca: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    };
  };

  for (const cluster of ['static', 'tunnelled']) {
    test(`${cluster}: a request and an upgrade sent with kport-* headers reach the cluster without them`, async () => {
      const from = seen.length;
      const session = http2Connect(`https://127.0.0.1:${server.port}`, { ...credentials(), servername: 'localhost' });
      session.on('error', () => {});
      const status = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ':path': `/k/${cluster}/api/v1/namespaces/apps/pods`, ...CLIENT_SENT });
        let got = 0;
        req.on('response', (h) => (got = Number(h[':status'])));
        req.resume();
        req.on('end', () => resolve(got));
        req.on('error', reject);
      });
      session.close();
      assert.equal(status, 200);

      const upgraded = await new Promise<string>((resolve, reject) => {
        const socket = tlsConnect({ host: '127.0.0.1', port: server.port, ...credentials(), servername: 'localhost', ALPNProtocols: ['http/1.1'] }, () => {
          const extra = Object.entries(CLIENT_SENT)
            .map(([n, v]) => `${n}: ${v}\r\n`)
            .join('');
          socket.write(
            `POST /k/${cluster}/api/v1/namespaces/apps/pods/web/portforward HTTP/1.1\r\nHost: x\r\n${extra}Kport-Peer-Host: mixed-case\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n`,
          );
        });
        let got = '';
        socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
        socket.on('close', () => resolve(got));
        socket.on('error', reject);
      });
      assert.match(upgraded, /^HTTP\/1\.1 101/);

      const mine = seen.slice(from).filter((s) => s.url.includes('/namespaces/apps/pods'));
      assert.equal(mine.length, 2, JSON.stringify(seen.slice(from)));
      for (const s of mine)
        assert.deepEqual(
          s.names.filter((n) => n.startsWith('kport-')),
          [],
          `${s.url}: ${s.names.join(', ')}`,
        );
    });
  }
});
