import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { stringify } from 'yaml';
import { createCA } from '../../src/kube/pki.ts';
import { startEtcd, type EtcdCluster } from './etcd.ts';
import { freePort, spawnPeer, tempDir, waitFor } from './process.ts';
import { BINARIES } from './versions.ts';

export interface Identity {
  user: string;
  token: string;
  groups: string[];
}

export interface KubeApiserver {
  server: string;
  caFile: string;
  caPem: string;
  dir: string;
  /** system:masters */
  admin: Identity;
  /** The proxy's own identity: user kport-proxy in group kport, granted nothing until a test binds it. */
  proxy: Identity;
  /** Another identity with no grants. */
  nobody: Identity;
  /** Writes a kubeconfig with one context "test" for an identity; returns its path. */
  kubeconfig(identity: Identity, name?: string): string;
  /** Calls the API as an identity. */
  request(identity: Identity, path: string, init?: { method?: string; body?: unknown }): Promise<{ status: number; body: any }>;
  etcd: EtcdCluster;
  /** With `auditLog`: the API server's own audit events so far (Metadata level, one per stage but RequestReceived). */
  auditEvents(): KubeAuditEvent[];
  stop(): Promise<void>;
}

/** The fields of an audit.k8s.io/v1 Event the tests read. */
export interface KubeAuditEvent {
  auditID: string;
  stage: string;
  verb: string;
  requestURI: string;
  user: { username: string; groups?: string[]; extra?: Record<string, string[]> };
  impersonatedUser?: { username: string; groups?: string[]; extra?: Record<string, string[]> };
  responseStatus?: { code: number };
}

export interface KubeApiserverOptions {
  /**
   * The flags a real cluster gives its apiserver to reach kubelets (a client cert, InternalIP first),
   * for kwok on 127.0.0.1. kwok v0.8.0 as test/peers/kwok.ts runs it also answers without them.
   */
  kubeletClient?: boolean;
  /** The API server's own audit log (`--audit-log-path`, a Metadata-level policy), read with auditEvents(). */
  auditLog?: boolean;
}

/** A real kube-apiserver (RBAC, static tokens) on a real etcd, on free loopback ports. */
export async function startKubeApiserver(opts: KubeApiserverOptions = {}): Promise<KubeApiserver> {
  const dir = tempDir('apiserver');
  const etcd = await startEtcd({ members: 1 });
  const ca = await createCA('kport-test-apiserver-ca');
  const serving = await ca.issue({ commonName: 'kube-apiserver', dnsNames: ['localhost', 'kubernetes.default.svc'], ips: ['127.0.0.1'], usage: 'server' });
  const sa = await ca.issue({ commonName: 'service-accounts', usage: 'client' });
  const files = {
    ca: join(dir, 'ca.crt'),
    cert: join(dir, 'apiserver.crt'),
    key: join(dir, 'apiserver.key'),
    saKey: join(dir, 'sa.key'),
    saPub: join(dir, 'sa.crt'),
    tokens: join(dir, 'tokens.csv'),
    kubeletCert: join(dir, 'kubelet-client.crt'),
    kubeletKey: join(dir, 'kubelet-client.key'),
  };
  const kubeletFlags: string[] = [];
  if (opts.kubeletClient) {
    const kubeletClient = await ca.issue({ commonName: 'kube-apiserver-kubelet-client', usage: 'client' });
    writeFileSync(files.kubeletCert, kubeletClient.cert);
    writeFileSync(files.kubeletKey, kubeletClient.key, { mode: 0o600 });
    kubeletFlags.push(
      `--kubelet-client-certificate=${files.kubeletCert}`,
      `--kubelet-client-key=${files.kubeletKey}`,
      '--kubelet-preferred-address-types=InternalIP',
    );
  }
  const auditPath = join(dir, 'audit.log');
  const auditFlags: string[] = [];
  if (opts.auditLog) {
    const policy = join(dir, 'audit-policy.yaml');
    writeFileSync(policy, stringify({ apiVersion: 'audit.k8s.io/v1', kind: 'Policy', omitStages: ['RequestReceived'], rules: [{ level: 'Metadata' }] }));
    // Blocking mode: an event is written before the response goes out, so a test reads it right after.
    auditFlags.push(`--audit-policy-file=${policy}`, `--audit-log-path=${auditPath}`, '--audit-log-mode=blocking', '--audit-log-format=json');
  }
  const admin: Identity = { user: 'admin', token: 'admin-token-0123456789', groups: ['system:masters'] };
  const proxy: Identity = { user: 'kport-proxy', token: 'proxy-token-0123456789', groups: ['kport'] };
  const nobody: Identity = { user: 'nobody', token: 'nobody-token-0123456789', groups: [] };
  writeFileSync(files.ca, ca.cert);
  writeFileSync(files.cert, serving.cert);
  writeFileSync(files.key, serving.key, { mode: 0o600 });
  writeFileSync(files.saKey, sa.key, { mode: 0o600 });
  writeFileSync(files.saPub, sa.cert);
  writeFileSync(
    files.tokens,
    `${[admin, proxy, nobody].map((i) => `${i.token},${i.user},${i.user}-uid${i.groups.length ? `,"${i.groups.join(',')}"` : ''}`).join('\n')}\n`,
  );
  const port = await freePort();
  const peer = spawnPeer(
    'kube-apiserver',
    BINARIES.kubeApiserver(),
    [
      `--etcd-servers=${etcd.endpoints[0]}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${port}`,
      `--tls-cert-file=${files.cert}`,
      `--tls-private-key-file=${files.key}`,
      `--client-ca-file=${files.ca}`,
      `--token-auth-file=${files.tokens}`,
      '--authorization-mode=RBAC',
      `--service-account-key-file=${files.saPub}`,
      `--service-account-signing-key-file=${files.saKey}`,
      '--service-account-issuer=https://kubernetes.default.svc',
      '--service-cluster-ip-range=10.96.0.0/24',
      `--cert-dir=${join(dir, 'certs')}`,
      '--disable-admission-plugins=ServiceAccount',
      '--enable-priority-and-fairness=false',
      '--v=0',
      ...kubeletFlags,
      ...auditFlags,
    ],
    { dir },
  );
  const server = `https://127.0.0.1:${port}`;
  const dispatcher = new Agent({ connect: { ca: ca.cert }, allowH2: false });
  const request: KubeApiserver['request'] = async (identity, path, init = {}) => {
    const res = await undiciFetch(`${server}${path}`, {
      method: init.method ?? 'GET',
      headers: { authorization: `Bearer ${identity.token}`, 'content-type': 'application/json' },
      ...(init.body !== undefined && { body: JSON.stringify(init.body) }),
      dispatcher,
    });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {}
    return { status: res.status, body };
  };
  await waitFor('kube-apiserver /readyz', async () => (await request(admin, '/readyz')).status === 200, { peer, timeoutMs: 120_000 });
  // The default namespace and kube-system are created by the apiserver itself; wait for both.
  await waitFor('kube-system namespace', async () => (await request(admin, '/api/v1/namespaces/kube-system')).status === 200, { peer });
  return {
    server,
    caFile: files.ca,
    caPem: ca.cert,
    dir,
    admin,
    proxy,
    nobody,
    kubeconfig(identity, name = identity.user) {
      const path = join(dir, `kubeconfig-${name}`);
      writeFileSync(path, kubeconfigYaml(server, ca.cert, identity), { mode: 0o600 });
      return path;
    },
    request,
    etcd,
    auditEvents() {
      if (!opts.auditLog) throw new Error('startKubeApiserver({ auditLog: true }) keeps an audit log');
      let text = '';
      try {
        text = readFileSync(auditPath, 'utf8');
      } catch {}
      // A line being written as this reads is left for the next read.
      return text
        .slice(0, text.lastIndexOf('\n') + 1)
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as KubeAuditEvent);
    },
    async stop() {
      await dispatcher.close();
      await peer.stop();
      await etcd.stop();
    },
  };
}

export function kubeconfigYaml(server: string, caPem: string, identity: Identity, context = 'test'): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: context, cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
    users: [{ name: identity.user, user: { token: identity.token } }],
    contexts: [{ name: context, context: { cluster: context, user: identity.user } }],
    'current-context': context,
  });
}
