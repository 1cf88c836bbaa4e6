import { existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { isIP } from 'node:net';
import { parse, stringify } from 'yaml';
import { writeFileAtomic } from '../core/atomic-write.ts';
import { UserError } from '../core/errors.ts';
import { trustedPath } from '../core/trusted-path.ts';
import type { KubeconfigFile } from '../resources/static-kubeconfig.ts';
import { clusterServerName } from './sni.ts';
import { tlsUpstream, type Upstream } from './upstream.ts';

/** What a person's login gives a Kubernetes client: the server, the CA it trusts, the person's key and certificate. */
export interface PersonLogin {
  /** host:port of the kport server. */
  proxy: string;
  host: string;
  port: number;
  ca: string;
  cert: string;
  key: string;
}

/** `https://<proxy>/k/<cluster>`: the Kubernetes API of one cluster at the kport server (docs/architecture.md §9). */
export function serverClusterUrl(login: Pick<PersonLogin, 'host' | 'port'>, cluster: string): URL {
  const host = isIP(login.host) === 6 ? `[${login.host}]` : login.host;
  return new URL(`https://${host}:${login.port}/k/${encodeURIComponent(cluster)}`);
}

/**
 * How `kube login` reaches a cluster through the server: its /k/<cluster>, with the person's
 * certificate and the server CA of the profile; the server decides roles, the agent holds the
 * credentials. The TLS name is the server's own (as every call of the profile checks it), the
 * cluster is in the path.
 */
export function serverUpstream(login: PersonLogin, cluster: string): Upstream {
  return tlsUpstream(serverClusterUrl(login, cluster), {
    ca: Buffer.from(login.ca),
    cert: Buffer.from(login.cert),
    key: Buffer.from(login.key),
    ...(isIP(login.host) ? {} : { servername: login.host }),
  });
}

/** The kubeconfig names `kport kube config` gives a cluster of this server: `<server host>-<cluster>`, as tsh names `<cluster>-<kube cluster>`. */
export function serverContextName(login: Pick<PersonLogin, 'host'>, cluster: string): string {
  return `${login.host}-${cluster}`;
}

/**
 * Adds (or replaces) a context, cluster and user per cluster in the kubeconfig at `path`, as
 * `tsh kube login` does: the server's /k/<cluster> URL, its CA, the cluster's TLS name at the server
 * (SNI routing, for clients that drop the path), and an exec plugin that returns the person's
 * certificate (`exec`: command and leading args, completed with `kube credentials CLUSTER --proxy P`).
 * Every other entry is kept as it was; the file is written atomically, 0600. Returns the contexts.
 */
export function writeServerKubeconfig(
  path: string,
  login: Omit<PersonLogin, 'cert' | 'key'>,
  clusters: string[],
  exec: { command: string; args: string[] },
  setCurrent: boolean,
): string[] {
  let file: KubeconfigFile = {};
  if (existsSync(path)) {
    try {
      file = (parse(readFileSync(path, 'utf8')) ?? {}) as KubeconfigFile;
    } catch (err) {
      throw new UserError(
        `Cannot read kubeconfig ${path}: ${(err as Error).message.split('\n')[0]}; correct it or point KUBECONFIG at another file. Nothing was written.`,
      );
    }
    if (typeof file !== 'object' || Array.isArray(file))
      throw new UserError(`Kubeconfig ${path} is not a YAML mapping: correct it or point KUBECONFIG at another file. Nothing was written.`);
  }
  const upsert = (list: unknown, entry: { name: string; [k: string]: unknown }) => [
    ...(Array.isArray(list) ? list : []).filter((e: { name?: unknown }) => e?.name !== entry.name),
    entry,
  ];
  const names: string[] = [];
  for (const cluster of clusters) {
    const name = serverContextName(login, cluster);
    names.push(name);
    file.clusters = upsert(file.clusters, {
      name,
      cluster: {
        server: serverClusterUrl(login, cluster).href,
        'certificate-authority-data': Buffer.from(login.ca).toString('base64'),
        'tls-server-name': clusterServerName(cluster),
      },
    });
    file.users = upsert(file.users, {
      name,
      user: {
        exec: {
          apiVersion: 'client.authentication.k8s.io/v1beta1',
          command: exec.command,
          args: [...exec.args, 'kube', 'credentials', cluster, '--proxy', login.proxy],
          interactiveMode: 'Never',
          provideClusterInfo: false,
        },
      },
    });
    file.contexts = upsert(file.contexts, { name, context: { cluster: name, user: name } }) as KubeconfigFile['contexts'];
  }
  file.apiVersion ??= 'v1';
  file.kind ??= 'Config';
  if (setCurrent && names[0]) file['current-context'] = names[0];
  writeAtomically(path, stringify(file));
  return names;
}

/** The ExecCredential client-go reads from `kport kube credentials`: the person's certificate and key, valid until the certificate ends. */
export function certificateExecCredential(apiVersion: string, cert: string, key: string, expires: Date): string {
  return `${JSON.stringify({ kind: 'ExecCredential', apiVersion, spec: {}, status: { expirationTimestamp: expires.toISOString().replace(/\.\d{3}Z$/, 'Z'), clientCertificateData: cert, clientKeyData: key } })}\n`;
}

/**
 * 0600, through the one atomic write (a random O_EXCL name beside the target, then a rename); the
 * directory is made 0700 when it is new, and left as it is otherwise (KUBECONFIG may name a file
 * anywhere). A linked kubeconfig is written through, as kubectl does, when the link is the user's.
 */
function writeAtomically(path: string, text: string): void {
  trustedPath(dirname(path), { what: 'the directory' }, { create: true });
  writeFileAtomic(path, text, { mode: 0o600, symlink: 'follow-own' });
}
