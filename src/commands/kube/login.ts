import { join } from 'node:path';
import { UsageError, UserError } from '../../core/errors.ts';
import { printable } from '../../core/output.ts';
import type { CommandDef } from '../command.ts';
import { USER_OPTION, personAccess } from './access.ts';

export const kubeLogin: CommandDef = {
  path: ['kube', 'login'],
  summary: 'Start a local proxy to clusters and write a kubeconfig for it (foreground; -- COMMAND runs a command through it)',
  examples: [
    'kport kube login prod-eks-us-east-1-222222222222',
    'kport kube login prod -- kubectl get pods -n team-a',
    'kport kube login prod --as dave --port 8443',
  ],
  args: ['<clusters...>'],
  options: [
    { flags: '--port <port>', description: 'listen on this port of 127.0.0.1 (default: a free one)' },
    { flags: '--as <user>', description: 'Kubernetes user to act as when kubectl does not say (must be allowed)' },
    { flags: '--as-groups <groups>', description: 'comma-separated Kubernetes groups to act as (must be allowed)' },
    USER_OPTION,
  ],
  async run({ args, rest, opts, ctx, session }) {
    const port = opts.port === undefined ? undefined : Number(opts.port);
    // 0, as everywhere else, means any free port.
    if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port < 65536))
      throw new UsageError(`--port ${String(opts.port)} is not a port number (0-65535; 0 or no --port: any free port).`);
    const { config, backend, access, clusters, explain } = await personAccess(session, opts.user);
    const [
      { resolveAllowedCluster },
      { resolveImpersonation },
      { upstreamFor },
      { Forwarder },
      { AuditLog },
      { startLocalProxy, SNI_DOMAIN },
      { createCA },
      kubeconfig,
    ] = await Promise.all([
      import('../../kube/clusters.ts'),
      import('../../kube/access.ts'),
      import('../../kube/targets.ts'),
      import('../../kube/forwarder.ts'),
      import('../../kube/audit.ts'),
      import('../../kube/local-proxy.ts'),
      import('../../kube/pki.ts'),
      import('../../kube/proxy-kubeconfig.ts'),
    ]);
    const where = await session.where();
    const { serverUpstream } = await import('../../kube/server-kubeconfig.ts');
    const login = where.via === 'server' ? await serverLogin(where.profile) : undefined;
    const defaults = {
      ...(typeof opts.as === 'string' && { user: opts.as }),
      ...(typeof opts.asGroups === 'string' && {
        groups: opts.asGroups
          .split(',')
          .map((g) => g.trim())
          .filter(Boolean),
      }),
    };
    const clusterNames = args.length > 0 ? args : [];
    const targets = new Map<string, import('../../kube/forwarder.ts').ForwardTarget>();
    for (const name of clusterNames) {
      const { cluster, access: kubeAccess } = await resolveAllowedCluster(backend, clusters, name, explain);
      if (defaults.user || defaults.groups) {
        const check = resolveImpersonation(kubeAccess, { user: [], groups: [], other: [] }, defaults);
        if (!check.ok) throw new UsageError(`${cluster.metadata.name}: ${check.message}.`);
      } else if (kubeAccess.users.length > 1) {
        // helm and k9s hide the proxy's 403 behind "Kubernetes cluster unreachable": say it now.
        const [first] = kubeAccess.users;
        ctx.logger.warn(
          `${cluster.metadata.name}: your roles allow several Kubernetes users (${kubeAccess.users.join(', ')}), so requests that name none are refused. Pick one here with \`kport kube login ${name} --as ${first}\`, or per command: kubectl --as ${first}, helm --kube-as-user ${first}, k9s --as ${first}.`,
        );
      }
      // Through a server: its /k/<cluster> with the person's certificate; the server decides, an agent reaches the cluster.
      const upstream = login
        ? serverUpstream(login, cluster.metadata.name)
        : await upstreamFor(cluster, {
            service: config.kubernetes_service,
            stsEndpoint: ctx.env.AWS_ENDPOINT_URL_STS || ctx.env.AWS_ENDPOINT_URL || undefined,
            // This person's own proxy on their own machine: a static kubeconfig stored before
            // kport refused file paths may still name their files. A server or an agent never reads one.
            localFiles: true,
          });
      targets.set(cluster.metadata.name, { name: cluster.metadata.name, upstream, access: kubeAccess, defaults });
    }

    const ca = await createCA('kport local proxy CA');
    const [serving, client] = await Promise.all([
      ca.issue({ commonName: 'kport local proxy', dnsNames: ['localhost', `*.${SNI_DOMAIN}`], ips: ['127.0.0.1'], usage: 'server' }),
      ca.issue({ commonName: access.user, usage: 'client' }),
    ]);
    let served = 0;
    let failed = 0;
    let onChange = () => {};
    const audit = new AuditLog(join(config.dataDir, 'audit', 'kube.log'));
    const forwarder = new Forwarder({
      kportUser: access.user,
      audit,
      onRequest: (status) => {
        served++;
        if (status >= 500 || status === 403) failed++;
        onChange();
      },
    });
    const proxy = await startLocalProxy({ port, tls: { cert: serving.cert, key: serving.key, ca: ca.cert }, targets, forwarder });
    const proxyDir = join(config.dataDir, 'proxy');
    for (const name of kubeconfig.removeStaleKubeconfigs(proxyDir)) ctx.logger.debug(`removed ${name}, left behind by a kube login that was killed`);
    const { randomBytes } = await import('node:crypto');
    const path = join(proxyDir, kubeconfig.proxyKubeconfigName(process.pid, randomBytes(4).toString('hex')));
    // On every way out, including a second signal that exits at once: the file holds a client key.
    const removeOnExit = () => kubeconfig.removeKubeconfig(path);
    process.once('exit', removeOnExit);
    const names = [...targets.keys()];
    const cleanup = async () => {
      kubeconfig.removeKubeconfig(path);
      process.off('exit', removeOnExit);
      await proxy.close();
      await audit.close();
    };
    try {
      kubeconfig.writeProxyKubeconfig(path, {
        clusters: names.map((name) => ({ name, server: proxy.serverUrl(name), serverName: proxy.serverName(name) })),
        ca: ca.cert,
        clientCert: client.cert,
        clientKey: client.key,
        current: names[0]!,
      });
      if (rest.length > 0) {
        const { execa } = await import('execa');
        const child = execa(rest[0]!, rest.slice(1), {
          env: { ...ctx.env, KUBECONFIG: path },
          extendEnv: false,
          stdin: 'inherit',
          reject: false,
          cancelSignal: ctx.signal,
          buffer: false,
        });
        child.stdout?.pipe(ctx.stdout, { end: false });
        child.stderr?.pipe(ctx.stderr, { end: false });
        const result = await child;
        if (result.failed && result.exitCode === undefined && !result.isCanceled) {
          // As a shell says it: 127 for a command that is not there, 126 for one that cannot run.
          const code = (result as { code?: string }).code ?? (result.cause as NodeJS.ErrnoException | undefined)?.code;
          const why = code === 'ENOENT' ? 'command not found' : code === 'EACCES' ? 'permission denied' : result.shortMessage;
          throw new UserError(`Cannot run ${rest[0]}: ${why}.`, code === 'ENOENT' ? 127 : 126);
        }
        return result.exitCode ?? (result.isCanceled ? 130 : 1);
      }
      ctx.stderr.write(`Started local proxy for Kubernetes on https://127.0.0.1:${proxy.port} for ${printable(names.join(', '))}; audit log: ${audit.path}\n`);
      ctx.stdout.write(`export KUBECONFIG=${path}\n`);
      ctx.stderr.write(`Run the export line above, then kubectl as usual (try 'kubectl version'). Ctrl-C stops the proxy and removes the kubeconfig.\n`);
      const status = ctx.stderrIsTTY ? await statusLine(ctx, () => ({ served, failed })) : undefined;
      if (status) onChange = status.update;
      await new Promise<void>((resolve) => (ctx.signal.aborted ? resolve() : ctx.signal.addEventListener('abort', () => resolve(), { once: true })));
      status?.close();
      // A foreground proxy with no end of its own: Ctrl-C is 130 as shells report it, SIGTERM a clean stop (0).
      const { stoppedExitCode } = await import('../../core/stop.ts');
      return stoppedExitCode(ctx.signal, { service: true });
    } finally {
      await cleanup();
    }
  },
};

async function serverLogin(profile: { proxy: string; ca: string; credential: { cert: string; key: string } }) {
  const { parseServerAddress } = await import('../../client/server-client.ts');
  const { host, port } = parseServerAddress(profile.proxy);
  return { proxy: profile.proxy, host, port, ca: profile.ca, ...profile.credential };
}

async function statusLine(ctx: Parameters<CommandDef['run']>[0]['ctx'], counts: () => { served: number; failed: number }) {
  const [{ render, Text }, { createElement: h }] = await Promise.all([import('ink'), import('react')]);
  const view = () => {
    const { served, failed } = counts();
    return h(Text, { dimColor: failed === 0 }, `kport proxy: ${served} requests served, ${failed} refused or failed · Ctrl-C to stop`);
  };
  const app = render(view(), { stdout: ctx.stderr as NodeJS.WriteStream, exitOnCtrlC: false, patchConsole: false });
  let pending = false;
  return {
    update: () => {
      if (pending) return;
      pending = true;
      setTimeout(() => {
        pending = false;
        app.rerender(view());
      }, 200).unref();
    },
    close: () => app.unmount(),
  };
}
