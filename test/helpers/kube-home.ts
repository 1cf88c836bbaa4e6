// A person's kport home for tests of the local kube proxy against the real API server: a config with
// the given roles and users, and the proxy's identity bootstrapped with kport's own ClusterRole
// (docs/architecture.md §7), applied by kport itself.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { KubeApiserver } from '../peers/kube.ts';
import { NODE_CLI, runCli, type Cli } from './cli.ts';

export async function kubeHome(
  api: KubeApiserver,
  home: string,
  access: { roles: object[]; users: object[] },
  cli: Cli = NODE_CLI,
): Promise<Record<string, string>> {
  const env = { HOME: home, PATH: process.env.PATH ?? '', KPORT_CONFIG: join(home, 'kport.yaml'), KUBECONFIG: join(home, 'no-such-kubeconfig') };
  writeFileSync(env.KPORT_CONFIG, stringify({ version: 'v3', teleport: { data_dir: join(home, 'data') }, ...access }));
  const boot = await runCli(cli, ['rbac', 'bootstrap', '--context', 'test', '--role-arn', 'arn:aws:iam::222222222222:role/kport-proxy'], {
    env: { ...env, KUBECONFIG: api.kubeconfig(api.admin) },
    extendEnv: false,
    reject: false,
  });
  assert.equal(boot.exitCode, 0, String(boot.stderr));
  return env;
}
