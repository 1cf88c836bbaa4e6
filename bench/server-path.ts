// The "through the server" path of bench/proxy.ts (issue 21): a real `kport server start`, a
// Kubernetes agent (`kport discover run`, no discovery_service) whose kubernetes_service.kubeconfig_file
// is the test apiserver's proxy kubeconfig (its context "test" becomes the kube_cluster it serves over
// its reverse tunnel), and a person logged in for real (`kport login --invite`, TOTP) whose role
// allows every cluster as system:masters. The person's client certificate is the profile's.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { request, Agent } from 'undici';
import { stringify } from 'yaml';
import { KPORT_BIN } from '../test/helpers/agent.ts';
import { invitedPerson } from '../test/helpers/login.ts';
import { startServer, type TestServer } from '../test/helpers/network.ts';
import type { KubeApiserver } from '../test/peers/kube.ts';
import { tempDir, waitFor } from '../test/peers/process.ts';

export interface ServerPath {
  server: TestServer;
  agent: ResultPromise;
  /** https://127.0.0.1:<port>/k/test */
  url: string;
  /** The person's profile: client certificate, key and the server's CA, as files and contents. */
  files: { ca: string; cert: string; key: string };
  tls: { ca: Buffer; cert: Buffer; key: Buffer };
  agentLog(): string;
  stop(): Promise<void>;
}

export async function startServerPath(
  api: KubeApiserver,
  opts: { serverEnv?: Record<string, string>; agentNodeOptions?: string; storage?: unknown } = {},
): Promise<ServerPath> {
  const server = await startServer({ env: opts.serverEnv ?? {}, ...(opts.storage !== undefined && { storage: opts.storage }) });
  const setup = join(server.dir, 'bench-role.yaml');
  writeFileSync(
    setup,
    stringify({
      kind: 'role',
      version: 'v7',
      metadata: { name: 'bench-admin' },
      spec: { allow: { kubernetes_labels: { '*': '*' }, kubernetes_groups: ['system:masters'] } },
    }),
  );
  const created = await server.kport(['create', '-f', setup]);
  if (created.exitCode !== 0) throw new Error(`create role: ${created.stderr}`);

  const dir = tempDir('bench-kube-agent');
  const config = join(dir, 'kport.yaml');
  writeFileSync(join(dir, 'token'), await server.token('kube'), { mode: 0o600 });
  writeFileSync(
    config,
    stringify({
      version: 'v3',
      teleport: {
        data_dir: join(dir, 'data'),
        proxy_server: server.address,
        ca_pin: server.pin,
        join_params: { token_name: join(dir, 'token'), method: 'token' },
      },
      auth_service: { enabled: 'off' },
      proxy_service: { enabled: 'off' },
      kubernetes_service: { enabled: 'yes', kubeconfig_file: api.kubeconfig(api.proxy) },
    }),
  );
  let agentLog = '';
  const agent = execa(process.execPath, [KPORT_BIN, 'discover', 'run'], {
    cwd: dir,
    env: { HOME: dir, PATH: process.env.PATH ?? '', KPORT_CONFIG: config, ...(opts.agentNodeOptions && { NODE_OPTIONS: opts.agentNodeOptions }) },
    extendEnv: false,
    reject: false,
  });
  agent.stderr!.on('data', (c: Buffer) => (agentLog += c));

  const person = await invitedPerson(server, 'bench', ['bench-admin']);
  const profile = join(person.home, '.kport', 'profiles', server.address.replace(':', '_'));
  const files = { ca: join(profile, 'ca.pem'), cert: join(profile, 'cert.pem'), key: join(profile, 'key.pem') };
  const tls = { ca: readFileSync(files.ca), cert: readFileSync(files.cert), key: readFileSync(files.key) };
  const url = `https://${server.address}/k/test`;
  // Ready when a request goes through: the agent joined, registered "test", its tunnel is open.
  const probe = new Agent({ connect: tls });
  await waitFor(
    'the cluster to be served through the server',
    async () => {
      const res = await request(`${url}/api/v1/namespaces/default`, { dispatcher: probe }).catch(() => undefined);
      await res?.body.text();
      return res?.statusCode === 200 ? true : undefined;
    },
    { timeoutMs: 60_000 },
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n--- agent\n${agentLog}\n--- server\n${server.log}`);
  });
  await probe.close();
  return {
    server,
    agent,
    url,
    files,
    tls,
    agentLog: () => agentLog,
    async stop() {
      agent.kill('SIGTERM');
      await agent.catch(() => undefined);
      await server.stop();
    },
  };
}
