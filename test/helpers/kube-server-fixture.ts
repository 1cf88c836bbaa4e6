// kubectl through the server (issue 21), with real processes only: a real kube-apiserver keeping its
// own audit log, kwok pods behind it, a `kport server start`, and Kubernetes agents (`kport discover
// run`, the built CLI, each on its own data dir) that serve the apiserver as one kubeconfig_file
// context labelled env=prod, with the proxy identity `rbac bootstrap` granted.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { kubeconfigYaml, startKubeApiserver, type KubeApiserver } from '../peers/kube.ts';
import { clusterExec, clusterLogs, clusterPortForward, criLogLine, startKwok, type Kwok } from '../peers/kwok.ts';
import { tempDir, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';
import { kubeHome } from './kube-home.ts';
import { kubeAgent, startServer, type KubeAgent, type TestServer } from './network.ts';

const run = promisify(execFile);
export const CLUSTER = 'prod-kwok';
export const PEERS = () => [BINARIES.kubeApiserver(), BINARIES.kubectl(), BINARIES.etcd(), BINARIES.kwok(), ...BINARIES.kwokStages()];

export type { KubeAgent } from './network.ts';

export interface Fixture {
  api: KubeApiserver;
  kwok: Kwok;
  server: TestServer;
  agents: KubeAgent[];
  /** The pods' log file (CRI lines), and the local TCP echo every pod port forwards to. */
  logsFile: string;
  echo: Server;
  dir: string;
  /** kubectl as the cluster's admin, straight at the apiserver. */
  admin(...args: string[]): Promise<{ stdout: string; stderr: string }>;
  /** Another agent for the same cluster, joined and serving it. */
  addAgent(): Promise<KubeAgent>;
  /** Waits until the server routes CLUSTER to each of these agents (their heartbeats name it, their tunnels are up). */
  waitServed(agents: KubeAgent[]): Promise<void>;
  stop(): Promise<void>;
}

/** Every piece up; `roles` are created on the server (role resources, v7); `server` configures `kport server start` (`env`: KPORT_IDLE_TIMEOUT). */
export async function startFixture(opts: {
  agents?: number;
  roles: object[];
  server?: Parameters<typeof startServer>[0];
  serverEnv?: Record<string, string>;
  /** A server (or several behind a load balancer: its front) already running: used, not started or stopped. */
  on?: TestServer;
}): Promise<Fixture> {
  const dir = tempDir('kube-server');
  const echo = createServer((socket) => socket.pipe(socket));
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  const logsFile = join(dir, 'container.log');
  writeFileSync(logsFile, criLogLine('first line') + criLogLine('second line'));
  // The cluster and the kport server come up side by side: neither needs the other until the agents join.
  const clusterUp = async () => {
    const api = await startKubeApiserver({ auditLog: true, kubeletClient: true });
    const kwok = await startKwok(api, [clusterExec(), clusterLogs(logsFile), clusterPortForward((echo.address() as { port: number }).port)]);
    // The agents' identity (kport-proxy), bootstrapped by kport itself: impersonation, user extras included.
    await kubeHome(api, dir, { roles: [], users: [] });
    const admin = (...args: string[]) => run(BINARIES.kubectl(), ['--kubeconfig', api.kubeconfig(api.admin), ...args]);
    await admin('create', 'namespace', 'apps');
    await admin(
      'create',
      'clusterrole',
      'developer',
      '--verb=get,list,watch,create,update,patch,delete',
      '--resource=pods,pods/log,pods/exec,pods/attach,pods/portforward,configmaps',
    );
    await admin('create', 'rolebinding', 'developers', '--clusterrole=developer', '--group=developers', '-n', 'apps');
    await kwok.createPod('apps', 'web', { ports: [8080] });
    return { api, kwok, admin };
  };
  const serverUp = async () => {
    const server = opts.on ?? (await startServer({ ...opts.server, ...(opts.serverEnv && { env: { ...opts.server?.env, ...opts.serverEnv } }) }));
    const rolesFile = join(dir, 'roles.yaml');
    writeFileSync(rolesFile, opts.roles.map((r) => stringify(r)).join('---\n'));
    const created = await server.kport(['create', '-f', rolesFile]);
    assert.equal(created.exitCode, 0, String(created.stderr));
    // The fixture's agents serve one cluster together (high availability): one join token.
    return { server, token: await server.token('kube') };
  };
  const [cluster, control] = await Promise.allSettled([clusterUp(), serverUp()]);
  if (cluster.status === 'rejected' || control.status === 'rejected') {
    // A setup that failed leaves no process behind (the test file's after() has no fixture to stop).
    if (cluster.status === 'fulfilled') await Promise.all([cluster.value.kwok.stop(), cluster.value.api.stop()]);
    if (control.status === 'fulfilled' && !opts.on) await control.value.server.stop('SIGKILL');
    echo.close();
    throw cluster.status === 'rejected' ? cluster.reason : (control as PromiseRejectedResult).reason;
  }
  const { api, kwok, admin } = cluster.value;
  const { server, token } = control.value;

  const kubeconfig = kubeconfigYaml(api.server, api.caPem, api.proxy, CLUSTER);
  const agents: KubeAgent[] = [];
  const fixture: Fixture = {
    api,
    kwok,
    server,
    agents,
    logsFile,
    echo,
    dir,
    admin,
    async addAgent() {
      // A pure Kubernetes agent serving the apiserver as one kubeconfig_file context labelled env=prod.
      const agent = await kubeAgent(server, { kubeconfig, token, kubernetes: { labels: { env: 'prod' } } });
      agent.start();
      agents.push(agent);
      return agent;
    },
    async waitServed(which) {
      await waitFor(
        `${which.length} agent(s) serving ${CLUSTER} through tunnels`,
        async () => {
          const res = await server.kport(['get', 'kube_server', '--format=json']);
          if (res.exitCode !== 0) return undefined;
          const beats = JSON.parse(String(res.stdout)) as Array<{ spec: { host_id: string; clusters: string[] } }>;
          const audit = await server.kport(['get', 'audit', '--format=json']);
          const tunnels = (JSON.parse(String(audit.stdout)) as Array<{ spec: { type: string; outcome: string; host_id?: string } }>).filter(
            (e) => e.spec.type === 'agent.tunnel' && e.spec.outcome === 'allowed',
          );
          return (
            which.every((a) => {
              try {
                const id = a.hostId();
                return beats.some((b) => b.spec.host_id === id && b.spec.clusters.includes(CLUSTER)) && tunnels.some((e) => e.spec.host_id === id);
              } catch {
                return false;
              }
            }) || undefined
          );
        },
        { timeoutMs: 90_000 },
      );
    },
    async stop() {
      if (process.env.KPORT_TEST_DEBUG) for (const a of agents) process.stderr.write(`--- agent ${a.dir}\n${a.log}\n`);
      if (process.env.KPORT_TEST_DEBUG) process.stderr.write(`--- server\n${server.log.slice(-5000)}\n`);
      await Promise.all(agents.map((a) => a.kill()));
      if (!opts.on) await server.stop('SIGKILL');
      await kwok.stop();
      await api.stop();
      echo.close();
    },
  };
  try {
    for (let i = 0; i < (opts.agents ?? 1); i++) await fixture.addAgent();
    await fixture.waitServed(agents);
  } catch (err) {
    // A setup that failed leaves no process behind (the test file's after() has no fixture to stop).
    process.stderr.write(agents.map((a) => `--- agent ${a.dir}\n${a.log}\n`).join(''));
    await fixture.stop();
    throw err;
  }
  return fixture;
}

/** Roles: alice's for env=prod, bob's for env=staging, both as the developers group. */
export const ROLES = [
  { kind: 'role', version: 'v7', metadata: { name: 'prod-dev' }, spec: { allow: { kubernetes_labels: { env: 'prod' }, kubernetes_groups: ['developers'] } } },
  {
    kind: 'role',
    version: 'v7',
    metadata: { name: 'staging-dev' },
    spec: { allow: { kubernetes_labels: { env: 'staging' }, kubernetes_groups: ['developers'] } },
  },
];

/** A command's result, never thrown. */
export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** kubectl as a person at their machine (their HOME: their ~/.kube/config and kport profile). */
export function personKubectl(home: string) {
  const env = { HOME: home, PATH: process.env.PATH ?? '' };
  return {
    env,
    run: async (args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<Ran> => {
      const res = await execa(BINARIES.kubectl(), args, {
        env,
        extendEnv: false,
        reject: false,
        stripFinalNewline: false,
        timeout: opts.timeoutMs ?? 60_000,
        ...(opts.input !== undefined ? { input: opts.input } : { stdin: 'ignore' }),
      });
      return { code: res.exitCode ?? -1, stdout: String(res.stdout), stderr: String(res.stderr) };
    },
    spawn: (args: string[]) => execa(BINARIES.kubectl(), args, { env, extendEnv: false, reject: false, stdin: 'ignore' }),
  };
}
