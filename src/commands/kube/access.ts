import { userInfo } from 'node:os';
import type { Session } from '../../core/session.ts';

/** The person asking (OS login name or --user) and the clusters their roles allow. */
export async function personAccess(session: Session, userOption: unknown) {
  const [config, backend, { accessFor }, { allowedClusters }, { isServed }] = await Promise.all([
    session.config(),
    session.backend(),
    import('../../kube/access.ts'),
    import('../../kube/clusters.ts'),
    import('../../kube/targets.ts'),
  ]);
  const user = typeof userOption === 'string' && userOption ? userOption : userInfo().username;
  const access = await accessFor(user, config, backend);
  const served = (cluster: Parameters<typeof isServed>[1]) => isServed(config.kubernetes_service, cluster);
  const clusters = await allowedClusters(backend, access, served);
  return { config, backend, access, clusters, allowed: clusters.allowed, explain: { access, configSource: config.source } };
}

export const USER_OPTION = { flags: '--user <name>', description: 'your kport user (default: your OS login name)' };
