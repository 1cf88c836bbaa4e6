import { readdirSync, rmSync } from 'node:fs';
import { writeSecretFile } from '../core/secret-file.ts';
import { join } from 'node:path';
import { kportProcessAlive } from '../core/process-alive.ts';
import { stringify } from 'yaml';

/** Context names kport writes, so `kube ls` can tell which cluster is selected. */
export const CONTEXT_PREFIX = 'kport-';

export function contextName(cluster: string): string {
  return `${CONTEXT_PREFIX}${cluster}`;
}

/** Writes, atomically and owner-only, a kubeconfig with one context per cluster behind the proxy. */
export function writeProxyKubeconfig(
  path: string,
  input: {
    clusters: Array<{ name: string; server: string; serverName?: string; namespace?: string }>;
    ca: string;
    clientCert: string;
    clientKey: string;
    current: string;
  },
): void {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: input.clusters.map((c) => ({
      name: contextName(c.name),
      cluster: { server: c.server, 'certificate-authority-data': b64(input.ca), ...(c.serverName && { 'tls-server-name': c.serverName }) },
    })),
    users: [{ name: 'kport', user: { 'client-certificate-data': b64(input.clientCert), 'client-key-data': b64(input.clientKey) } }],
    contexts: input.clusters.map((c) => ({
      name: contextName(c.name),
      context: { cluster: contextName(c.name), user: 'kport', ...(c.namespace && { namespace: c.namespace }) },
    })),
    'current-context': contextName(input.current),
  };
  writeSecretFile(path, stringify(config));
}

export function removeKubeconfig(path: string): void {
  rmSync(path, { force: true });
}

/** `kubeconfig-<pid>-<random>.yaml`: the pid says whose it is, so leftovers can be told from live ones. */
export function proxyKubeconfigName(pid: number, random: string): string {
  return `kubeconfig-${pid}-${random}.yaml`;
}

/**
 * Removes the kubeconfigs (each with a client key) of `kube login` processes that were killed
 * before they could clean up (SIGKILL, a crash, a reboot). Returns what was removed.
 */
export function removeStaleKubeconfigs(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const match = /^kubeconfig-(\d+)-[0-9a-f]+\.yaml(\.\d+\.[0-9a-f]+\.tmp)?$/.exec(name);
    if (!match || kportProcessAlive(Number(match[1]))) continue;
    rmSync(join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}
