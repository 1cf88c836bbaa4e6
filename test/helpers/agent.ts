import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ResultPromise } from 'execa';
import { stringify } from 'yaml';
import type { Moto } from '../peers/moto.ts';
import { NODE_CLI, runCli, type Cli } from './cli.ts';

export { KPORT_BIN } from './cli.ts';

export interface AgentSetup {
  dir: string;
  config: string;
  env: Record<string, string>;
  kport(args: string[], opts?: { env?: Record<string, string> }): ResultPromise;
}

/** A kport home whose config points at `dir`'s data dir and joins with a fresh token. */
export async function setupAgent(
  moto: Moto,
  dir: string,
  opts: {
    group: string;
    matchers: unknown[];
    name?: string;
    pollInterval?: string;
    leaseTtl?: string;
    kubernetes?: boolean;
    storage?: unknown;
    credentials?: { accessKeyId: string; secretAccessKey: string };
    cli?: Cli;
  },
): Promise<AgentSetup> {
  const config = join(dir, `${opts.name ?? opts.group}.yaml`);
  const env = {
    ...moto.env,
    ...(opts.credentials && { AWS_ACCESS_KEY_ID: opts.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: opts.credentials.secretAccessKey }),
    HOME: dir,
    PATH: process.env.PATH ?? '',
    KPORT_CONFIG: config,
  };
  const kport = (args: string[], o: { env?: Record<string, string> } = {}) =>
    runCli(opts.cli ?? NODE_CLI, args, { cwd: dir, env: { ...env, ...o.env }, extendEnv: false, reject: false });
  writeFileSync(
    config,
    stringify({
      version: 'v3',
      teleport: {
        data_dir: join(dir, 'data'),
        join_params: { token_name: join(dir, 'token'), method: 'token' },
        ...(opts.storage ? { storage: opts.storage } : {}),
      },
      discovery_service: {
        enabled: 'yes',
        discovery_group: opts.group,
        poll_interval: opts.pollInterval ?? '2s',
        leader_lease_ttl: opts.leaseTtl ?? '2s',
        aws: opts.matchers,
      },
      kubernetes_service: { enabled: opts.kubernetes ? 'yes' : 'no' },
    }),
  );
  const token = await kport(['tokens', 'add', '--type=discovery,kube', '--format=text']);
  if (token.exitCode !== 0) throw new Error(`tokens add failed: ${token.stderr}`);
  writeFileSync(join(dir, 'token'), String(token.stdout), { mode: 0o600 });
  return { dir, config, env, kport };
}

export async function kubeClusters(
  agent: AgentSetup,
): Promise<Array<{ metadata: { name: string; labels: Record<string, string> }; spec: { aws: { name: string; region: string; account_id: string } } }>> {
  const res = await agent.kport(['get', 'kube_cluster', '--format=json']);
  if (res.exitCode !== 0) throw new Error(`get kube_cluster failed: ${res.stderr}`);
  return JSON.parse(String(res.stdout));
}
