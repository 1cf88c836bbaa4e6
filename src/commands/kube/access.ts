import { userInfo } from 'node:os';
import { UsageError } from '../../core/errors.ts';
import { printable } from '../../core/output.ts';
import type { Session } from '../session.ts';

/**
 * The person asking and the clusters their roles allow. Through a server (a login profile), the
 * person is the certificate's and their roles are the server's answer to /v1/whoami; locally, the
 * OS login name or --user, and the roles of the config and the store.
 */
export async function personAccess(session: Session, userOption: unknown) {
  const [config, backend, person, { accessFor }, { allowedClusters }, { isServed }] = await Promise.all([
    session.config(),
    session.backend(),
    session.person(),
    import('../../kube/access-checker.ts'),
    import('../../kube/clusters.ts'),
    import('../../kube/targets.ts'),
  ]);
  if (person) {
    const { personKubeAccess } = await import('../../client/person.ts');
    const access = await personKubeAccess(person);
    if (typeof userOption === 'string' && userOption && userOption !== access.user) {
      throw new UsageError(
        `You are logged in to ${person.where.profile.proxy} as ${printable(access.user)}: --user ${printable(userOption)} names someone else; log in as them (kport login --user ${printable(userOption)}), or drop --user.`,
      );
    }
    // The server lists only the clusters these roles allow; this kport serves none of them itself.
    const clusters = await allowedClusters(backend, access);
    return { config, backend, access, clusters, allowed: clusters.allowed, explain: undefined, server: person.where.profile.proxy };
  }
  const user = typeof userOption === 'string' && userOption ? userOption : userInfo().username;
  const access = await accessFor(user, config, backend);
  const served = (cluster: Parameters<typeof isServed>[1]) => isServed(config.kubernetes_service, cluster);
  const clusters = await allowedClusters(backend, access, served);
  return { config, backend, access, clusters, allowed: clusters.allowed, explain: { access, configSource: config.source }, server: undefined };
}

export const USER_OPTION = { flags: '--user <name>', description: "your kport user (default: your OS login name; with a login, the login's)" };
