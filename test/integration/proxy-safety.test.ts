// What a first real user broke on the proxy side (issue 10): a path with dot segments served as
// another request than the one audited, clusters served outside kubernetes_service.resources,
// kubeconfigs (with a client key) left behind, a busy --port reported as a bug.
// Real `kport kube login` processes; the cluster is an HTTPS server (HTTP/2 and HTTP/1.1) that
// records exactly what reached it.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { connect as h2connect, createSecureServer, type Http2SecureServer } from 'node:http2';
import { createServer as createNetServer, type Server } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { parse, stringify } from 'yaml';
import { createCA } from '../../src/kube/pki.ts';
import { KPORT_BIN } from '../helpers/agent.ts';
import { kubeconfigYaml } from '../peers/kube.ts';
import { tempDir, waitFor } from '../peers/process.ts';

describe('kube login: requests, served clusters and leftovers', { concurrency: false, timeout: 300_000 }, () => {
  let upstream: Http2SecureServer;
  const seen: string[] = [];
  const received: Array<{ method: string; url: string; version: string; body: string }> = [];
  let http1Connections = 0;
  let home: string;
  let env: Record<string, string>;
  const kport = (args: string[], extra: Record<string, string> = {}) =>
    execa(process.execPath, [KPORT_BIN, ...args], { cwd: home, env: { ...env, ...extra }, extendEnv: false, reject: false });

  before(async () => {
    const ca = await createCA('upstream CA');
    const serving = await ca.issue({ commonName: 'upstream server', ips: ['127.0.0.1'], usage: 'server' });
    // Records the path as it arrived, then answers the way a normalising server would.
    upstream = createSecureServer({ cert: serving.cert, key: serving.key, allowHTTP1: true }, (req, res) => {
      seen.push(req.url);
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        received.push({ method: req.method, url: req.url, version: req.httpVersion, body });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'Status', path: req.url, length: body.length }));
      });
    });
    upstream.on('secureConnection', (socket: { alpnProtocol?: string | false }) => {
      if (socket.alpnProtocol === 'http/1.1') http1Connections++;
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const server = `https://127.0.0.1:${(upstream.address() as { port: number }).port}`;
    home = tempDir('proxy-safety');
    env = { HOME: home, PATH: process.env.PATH ?? '', KPORT_CONFIG: join(home, 'kport.yaml'), KUBECONFIG: join(home, 'none') };
    const config = {
      version: 'v3',
      teleport: { data_dir: join(home, 'data') },
      kubernetes_service: { enabled: 'yes', resources: [{ labels: { env: 'test' } }] },
      roles: [{ name: 'all', kubernetes_labels: { '*': '*' }, kubernetes_groups: ['developers'] }],
      users: [{ name: 'alice', roles: ['all'] }],
    };
    writeFileSync(env.KPORT_CONFIG!, stringify(config));
    const kubeconfig = kubeconfigYaml(server, ca.cert, { user: 'proxy', token: 'upstream-token', groups: [] });
    const clusters = ['served:test', 'outside:prod'].map((nl) => {
      const [name, label] = nl.split(':');
      return stringify({ kind: 'kube_cluster', version: 'v3', metadata: { name, labels: { env: label } }, spec: { kubeconfig } });
    });
    writeFileSync(join(home, 'clusters.yaml'), clusters.join('---\n'));
    const created = await kport(['create', '-f', join(home, 'clusters.yaml')]);
    assert.equal(created.exitCode, 0, String(created.stderr));
  });
  after(() => upstream?.close());

  async function login(...args: string[]): Promise<{ proc: ResultPromise; kubeconfig: string; out: () => string }> {
    const proc = kport(['kube', 'login', 'served', '--user', 'alice', ...args]);
    let out = '';
    proc.stdout!.on('data', (c: Buffer) => (out += c));
    proc.stderr!.on('data', (c: Buffer) => (out += c));
    const kubeconfig = await waitFor(
      'the export line',
      async () => out.match(/^export KUBECONFIG=(.+)$/m)?.[1] ?? (proc.exitCode !== null ? Promise.reject(new Error(out)) : undefined),
    );
    return { proc, kubeconfig, out: () => out };
  }

  /** A client of a login's proxy (its address and client certificate from the kubeconfig), over HTTP/2 and raw HTTP/1.1. */
  function proxyClient(kubeconfig: string) {
    const kc = parse(readFileSync(kubeconfig, 'utf8'));
    const tls = {
      ca: Buffer.from(kc.clusters[0].cluster['certificate-authority-data'], 'base64'),
      cert: Buffer.from(kc.users[0].user['client-certificate-data'], 'base64'),
      key: Buffer.from(kc.users[0].user['client-key-data'], 'base64'),
    };
    const base = new URL(kc.clusters[0].cluster.server);
    const h2 = h2connect(base.origin, { ...tls, servername: 'localhost' });
    return {
      viaH2: (method: string, path: string, body?: string, headers: Record<string, string> = {}) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = h2.request({
            ':method': method,
            ':path': `${base.pathname}${path}`,
            ...headers,
            ...(body && { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }),
          });
          let text = '';
          let status = 0;
          req.on('response', (h) => (status = Number(h[':status'])));
          req.on('data', (c: Buffer) => (text += c));
          req.on('end', () => resolve({ status, body: text }));
          req.on('error', reject);
          req.end(body);
        }),
      /** One request on its own connection (`headers`: lines ending in CRLF), read until the proxy closes it. */
      viaH1: (method: string, path: string, headers: string, body = '') =>
        new Promise<string>((resolve, reject) => {
          const socket = tlsConnect({ host: '127.0.0.1', port: Number(base.port), ...tls, servername: 'localhost', ALPNProtocols: ['http/1.1'] }, () => {
            socket.write(`${method} ${base.pathname}${path} HTTP/1.1\r\nHost: x\r\n${headers}\r\n`);
            if (body) socket.write(body);
          });
          let text = '';
          socket.on('data', (c: Buffer) => (text += c));
          socket.on('end', () => resolve(text));
          socket.on('close', () => resolve(text));
          socket.on('error', reject);
        }),
      close: () => h2.close(),
    };
  }

  test('a path with dot segments or encoded slashes is refused (400 Status) and never forwarded; the audit names the path as it came', async () => {
    const { proc, kubeconfig } = await login();
    try {
      const { viaH2, viaH1, close } = proxyClient(kubeconfig);
      const bad = [
        '/api/v1/namespaces/default/pods/x/../../../secrets',
        '/api/v1/namespaces/default/pods/x/%2e%2e/%2E%2e/secrets',
        '/api/v1/namespaces/default/pods/x/%2E%2E/..%2f..%2fsecrets',
        '/api/v1/./namespaces/default/secrets',
        '/api/v1/namespaces/default/pods/x%2f..%2f..%2fsecrets',
        '/api/v1/namespaces/default/pods/%2e',
      ];
      const upgrade = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
      for (const path of bad) {
        const r = await viaH2('GET', path);
        assert.equal(r.status, 400, `${path} over HTTP/2`);
        const status = JSON.parse(r.body);
        assert.equal(status.kind, 'Status');
        assert.equal(status.reason, 'BadRequest');
        assert.match(status.message, /dot segment|encodes a slash/);
        assert.match(await viaH1('GET', path, 'Connection: close\r\n'), /^HTTP\/1\.1 400 /, `${path} over HTTP/1.1`);
        assert.match(await viaH1('GET', path, upgrade), /^HTTP\/1\.1 400 /, `${path} as an upgrade`);
      }
      assert.deepEqual(seen, [], 'nothing reached the cluster');
      const fine = await viaH2('GET', '/api/v1/namespaces/default/pods/x%2Dy');
      assert.equal(fine.status, 200, fine.body);
      assert.deepEqual(seen, ['/api/v1/namespaces/default/pods/x%2Dy']);
      close();
    } finally {
      proc.kill('SIGINT');
      await proc;
    }
    const audit = readFileSync(join(home, 'data', 'audit', 'kube.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const refused = audit.filter((e) => e.status === 400);
    assert.equal(refused.length, 18, 'every refusal is audited');
    assert.ok(refused.every((e) => /dot segment|encodes a slash/.test(e.error)));
    assert.ok(
      refused.some((e) => e.path === '/api/v1/namespaces/default/pods/x/%2e%2e/%2E%2e/secrets'),
      'the audit records the path exactly as sent',
    );
    const served = audit.find((e) => e.status === 200);
    assert.equal(served.path, seen[0], 'the audited path is the forwarded one');
    assert.equal(served.name, 'x-y', 'the audited name is what the API server reads');
  });

  test('an Impersonate-Group with spaces around it (" system:masters ") is refused and audited over HTTP/2 as over HTTP/1.1', async () => {
    const { proc, kubeconfig } = await login();
    const padded = [' system:masters ', '\tsystem:masters', 'system:masters  '];
    try {
      const { viaH2, viaH1, close } = proxyClient(kubeconfig);
      seen.length = 0;
      for (const value of padded) {
        // HTTP/2 keeps the spaces (nghttp2 used to drop such a header unseen); HTTP/1.1's parser trims them.
        const h2 = await viaH2('GET', '/api/v1/namespaces', undefined, { 'impersonate-group': value });
        assert.equal(h2.status, 403, `${JSON.stringify(value)} over HTTP/2: ${h2.body}`);
        assert.match(h2.body, /impersonating group "system:masters" is not allowed/);
        const h1 = await viaH1('GET', '/api/v1/namespaces', `Impersonate-Group: ${value}\r\nConnection: close\r\n`);
        assert.match(h1, /^HTTP\/1\.1 403 /, `${JSON.stringify(value)} over HTTP/1.1`);
        assert.match(h1, /impersonating group "system:masters" is not allowed/);
      }
      assert.deepEqual(seen, [], 'nothing reached the cluster');
      // An allowed group with the same padding passes on both.
      assert.equal((await viaH2('GET', '/api/v1/namespaces', undefined, { 'impersonate-group': ' developers ' })).status, 200);
      assert.match(await viaH1('GET', '/api/v1/namespaces', 'Impersonate-Group:  developers \r\nConnection: close\r\n'), /^HTTP\/1\.1 200 /);
      close();
    } finally {
      proc.kill('SIGINT');
      await proc;
    }
    const audit = readFileSync(join(home, 'data', 'audit', 'kube.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const refused = audit.filter((e) => e.status === 403 && /impersonating group "system:masters" is not allowed/.test(e.error));
    assert.equal(refused.length, padded.length * 2, 'every attempt, over either protocol, is a refusal on the record');
    assert.ok(refused.every((e) => e.user === 'alice' && e.path === '/api/v1/namespaces'));
  });

  test('a header that a front proxy folding "_" to "-" would read as impersonation (Impersonate_Group) is refused and audited, never forwarded', async () => {
    const { proc, kubeconfig } = await login();
    try {
      const { viaH2, viaH1, close } = proxyClient(kubeconfig);
      seen.length = 0;
      for (const name of ['impersonate_group', 'impersonate_user', 'Impersonate_Extra-scopes']) {
        const h2 = await viaH2('GET', '/api/v1/namespaces', undefined, { [name.toLowerCase()]: 'system:masters' });
        assert.equal(h2.status, 403, `${name} over HTTP/2: ${h2.body}`);
        assert.match(h2.body, /impersonation header .* is not allowed through kport/);
        const h1 = await viaH1('GET', '/api/v1/namespaces', `${name}: system:masters\r\nConnection: close\r\n`);
        assert.match(h1, /^HTTP\/1\.1 403 /, `${name} over HTTP/1.1`);
      }
      assert.deepEqual(seen, [], 'nothing reached the cluster');
      close();
    } finally {
      proc.kill('SIGINT');
      await proc;
    }
    const audit = readFileSync(join(home, 'data', 'audit', 'kube.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(audit.filter((e) => e.status === 403 && /impersonation header impersonate_/.test(e.error)).length, 6, 'each refusal is on the record');
  });

  test('request bodies reach the cluster whole from HTTP/2 and HTTP/1.1 clients; watches share HTTP/2 upstream, short requests take HTTP/1.1, a burst does not open a connection each', async () => {
    const { proc, kubeconfig } = await login();
    try {
      const { viaH2, viaH1, close } = proxyClient(kubeconfig);
      // Larger than one HTTP/2 DATA frame and one TLS record, so it arrives in pieces.
      const big = JSON.stringify({ kind: 'ConfigMap', data: { blob: 'x'.repeat(200_000) } });
      received.length = 0;
      const posted = await viaH2('POST', '/api/v1/namespaces/default/configmaps', big);
      assert.equal(posted.status, 200, posted.body);
      assert.equal(JSON.parse(posted.body).length, big.length);
      // As curl sends a large body over HTTP/1.1: Expect: 100-continue.
      const put = await viaH1(
        'PUT',
        '/api/v1/namespaces/default/configmaps/c',
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(big)}\r\nExpect: 100-continue\r\nConnection: close\r\n`,
        big,
      );
      assert.match(put, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
      assert.match(put, new RegExp(`"length":${big.length}[,}]`), 'the cluster read the whole body');
      const watch = await viaH2('GET', '/api/v1/namespaces/default/configmaps?watch=1');
      assert.equal(watch.status, 200);
      const get = await viaH2('GET', '/api/v1/namespaces/default/configmaps/c');
      assert.equal(get.status, 200);
      // A burst (kubectl's discovery) shares HTTP/2 rather than opening a connection per request.
      const before = http1Connections;
      const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => viaH2('GET', `/apis/group-${i}.example.com/v1`)));
      assert.deepEqual(
        burst.map((r) => r.status),
        Array(20).fill(200),
      );
      assert.ok(http1Connections - before <= 2, `${http1Connections - before} HTTP/1.1 connections opened for a burst of 20`);
      close();
      assert.deepEqual(
        received.slice(0, 4).map((r) => [r.method, r.url, r.version, r.body.length]),
        [
          ['POST', '/api/v1/namespaces/default/configmaps', '1.1', big.length],
          ['PUT', '/api/v1/namespaces/default/configmaps/c', '1.1', big.length],
          ['GET', '/api/v1/namespaces/default/configmaps?watch=1', '2.0', 0],
          ['GET', '/api/v1/namespaces/default/configmaps/c', '1.1', 0],
        ],
      );
      assert.equal(received.length, 24);
      assert.equal(received[0]!.body, big, 'the body arrived byte for byte');
    } finally {
      proc.kill('SIGINT');
      await proc;
    }
  });

  test('kubernetes_service.resources selects the clusters served: kube ls leaves another out and kube login says it is not served', async () => {
    const ls = await kport(['kube', 'ls', '--user', 'alice', '--format=json']);
    assert.equal(ls.exitCode, 0, String(ls.stderr));
    assert.deepEqual(
      JSON.parse(String(ls.stdout)).map((c: { kube_cluster_name: string }) => c.kube_cluster_name),
      ['served'],
    );
    const outside = await kport(['kube', 'login', 'outside', '--user', 'alice', '--', 'true']);
    assert.equal(outside.exitCode, 1);
    assert.match(
      String(outside.stderr),
      /kube_cluster "outside" exists but this kport does not serve it: kubernetes_service\.resources in .* matches none of its labels/,
    );
    const all = await kport(['get', 'kube_cluster', '--format=json']);
    assert.equal(JSON.parse(String(all.stdout)).length, 2, 'both exist');
  });

  test('a busy --port is one sentence naming the port', async () => {
    const blocker: Server = createNetServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    try {
      const busy = await kport(['kube', 'login', 'served', '--user', 'alice', '--port', String(port)]);
      assert.equal(busy.exitCode, 1);
      assert.equal(String(busy.stderr).trim().split('\n').length, 1, String(busy.stderr));
      assert.match(String(busy.stderr), new RegExp(`Cannot listen on 127\\.0\\.0\\.1:${port}: the port is already in use; pick another with --port`));
      assert.doesNotMatch(String(busy.stderr), /bug/);
    } finally {
      blocker.close();
    }
  });

  test('a SIGKILLed login leaves its kubeconfig; the next login removes it', async () => {
    const { proc, kubeconfig } = await login();
    proc.kill('SIGKILL');
    await proc;
    assert.ok(existsSync(kubeconfig), 'left behind by SIGKILL');
    const next = await login();
    try {
      assert.equal(existsSync(kubeconfig), false, 'removed by the next kube login');
      assert.ok(existsSync(next.kubeconfig));
    } finally {
      next.proc.kill('SIGINT');
      await next.proc;
    }
    assert.deepEqual(readdirSync(join(home, 'data', 'proxy')), []);
  });

  test('a second SIGTERM right after the first (as `timeout` sends) still removes the kubeconfig', async () => {
    for (let i = 0; i < 6; i++) {
      // Half the tries run a command through the proxy: the first signal then waits for it to end,
      // and the second one (1-4 ms later) exits at once, before any cleanup code runs.
      const { proc, kubeconfig } = i % 2 ? await login('--', 'sh', '-c', 'echo "export KUBECONFIG=$KUBECONFIG"; exec sleep 30') : await login();
      proc.kill('SIGTERM');
      // Back to back (a different signal, so the kernel cannot merge the two) or 1-4 ms apart.
      if (i < 3) proc.kill('SIGINT');
      else {
        await sleep(1 + (i % 4));
        proc.kill('SIGTERM');
      }
      await proc;
      assert.equal(existsSync(kubeconfig), false, `try ${i}: the kubeconfig is gone`);
    }
  });
});
