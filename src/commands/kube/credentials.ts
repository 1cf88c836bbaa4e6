import { UsageError, UserError } from '../../core/errors.ts';
import type { CommandDef } from '../command.ts';
import { USER_OPTION, personAccess } from './access.ts';

export const kubeCredentials: CommandDef = {
  path: ['kube', 'credentials'],
  summary:
    'Print an ExecCredential for a cluster: logged in to a server, your client certificate (kport kube config uses it); locally an EKS token, as `aws eks get-token` does',
  examples: ['kport kube credentials prod', 'kport kube credentials prod --proxy kport.example.com:3080'],
  args: ['<cluster>'],
  options: [
    USER_OPTION,
    { flags: '--proxy <host:port>', description: 'the kport server whose login to use (kport kube config writes it; default: the current login)' },
  ],
  async run({ args, opts, ctx, session }) {
    // client-go says which ExecCredential version it wants; v1beta1 when it does not.
    let apiVersion = 'client.authentication.k8s.io/v1beta1';
    try {
      apiVersion = JSON.parse(ctx.env.KUBERNETES_EXEC_INFO ?? '{}').apiVersion ?? apiVersion;
    } catch {}
    const login = await personLogin(session, opts.proxy, ctx.now()).catch(async (err: unknown) => {
      // Run by kubectl (client-go sets KUBERNETES_EXEC_INFO), a failure is said once to its process: kubectl calls this for each request of one command and shows every stderr.
      if (!(err instanceof UserError) || ctx.env.KUBERNETES_EXEC_INFO === undefined) throw err;
      const [{ kportHome }, { firstTimeSaid }] = await Promise.all([import('../../client/profile.ts'), import('../../client/said-once.ts')]);
      if (firstTimeSaid(kportHome(ctx.env), process.ppid, err.message, ctx.now().getTime())) throw err;
      return err.exitCode;
    });
    if (typeof login === 'number') return login;
    if (login) {
      // No call to the server: kubectl runs this for every command, and the server decides per request (a cluster the roles do not allow is not found there).
      const { certificateExecCredential } = await import('../../kube/server-kubeconfig.ts');
      return void ctx.stdout.write(certificateExecCredential(apiVersion, login.cert, login.key, login.expires));
    }
    const { config, backend, clusters, explain } = await personAccess(session, opts.user);
    const { resolveAllowedCluster } = await import('../../kube/clusters.ts');
    const { cluster } = await resolveAllowedCluster(backend, clusters, args[0]!, explain);
    const aws = cluster.spec.aws;
    if (!aws) throw new UsageError(`kube_cluster ${cluster.metadata.name} is not an EKS cluster: its kubeconfig holds its credentials.`);
    // Like `aws eks get-token`: a token needs only credentials, not DescribeCluster.
    const [{ proxyIdentity }, { credentialsToReach }, { createEksToken }] = await Promise.all([
      import('../../kube/targets.ts'),
      import('../../aws/credentials.ts'),
      import('../../aws/eks-token.ts'),
    ]);
    const credentials = await credentialsToReach(aws, proxyIdentity(config.kubernetes_service, cluster));
    const { token, expiresAt } = await createEksToken({
      clusterName: aws.name,
      region: aws.region,
      credentials,
      stsEndpoint: ctx.env.AWS_ENDPOINT_URL_STS || ctx.env.AWS_ENDPOINT_URL || undefined,
    });
    ctx.stdout.write(
      `${JSON.stringify({ kind: 'ExecCredential', apiVersion, spec: {}, status: { expirationTimestamp: expiresAt.toISOString().replace(/\.\d{3}Z$/, 'Z'), token } })}\n`,
    );
  },
};

/**
 * The login to hand kubectl: the profile of `--proxy`, or the current one when commands run through
 * a server; undefined for local mode. An expired or missing login is exit 4 with what to run.
 */
async function personLogin(
  session: Parameters<CommandDef['run']>[0]['session'],
  proxy: unknown,
  now: Date,
): Promise<{ cert: string; key: string; expires: Date } | undefined> {
  const [{ kportHome, readProfile, profileName, checkCredential, checkProfilePermissions }, { parseServerAddress }, { EXPIRED }] = await Promise.all([
    import('../../client/profile.ts'),
    import('../../client/server-client.ts'),
    import('../../client/person.ts'),
  ]);
  let credential: { cert: string; key: string };
  let server: string;
  if (typeof proxy === 'string') {
    const home = kportHome(session.ctx.env);
    const profile = readProfile(home, profileName(parseServerAddress(proxy)));
    if (!profile?.credential) throw new UserError(`You are not logged in to ${proxy}: run kport login --proxy ${proxy}.`, 4);
    checkProfilePermissions(home, profile);
    credential = profile.credential;
    server = proxy;
  } else {
    const where = await session.where();
    if (where.via !== 'server') return undefined;
    credential = where.profile.credential;
    server = where.profile.proxy;
  }
  const { expires, matches } = checkCredential(credential);
  if (!matches)
    throw new UserError(`The key of your login to ${server} is not the one its certificate was issued for: run kport login --proxy ${server} again.`, 4);
  if (expires.getTime() <= now.getTime()) throw new UserError(`${EXPIRED} --proxy ${server} (it expired at ${expires.toISOString()}).`, 4);
  return { ...credential, expires };
}
