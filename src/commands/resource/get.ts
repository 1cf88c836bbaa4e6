import { UsageError, UserError } from '../../core/errors.ts';
import { renderTable, serialize } from '../../core/output.ts';
import { KIND_NAMES } from '../../resources/kinds.ts';
import { BUILTIN_ORIGIN, CONFIG_ORIGIN, parseRef } from './registry.ts';
import type { Resource } from '../../resources/resource.ts';
import type { Session } from '../session.ts';
import type { CommandDef, CommandInput } from '../command.ts';

/**
 * The roles built into kport and the roles and users written in the config, shown beside the stored
 * ones so `get` tells the whole story, each marked by where it comes from (`kport.dev/origin`:
 * `builtin`, `config-file`), as Teleport marks its presets and config-file resources.
 */
async function configDefined(kind: string, session: Session): Promise<Resource[]> {
  if (kind !== 'role' && kind !== 'user') return [];
  const config = await session.config();
  if (kind === 'role') {
    const [{ fromConfig }, { BUILTIN_ROLES }] = await Promise.all([import('../../roles/load.ts'), import('../../resources/builtin-roles.ts')]);
    const marked = (role: Resource, labels: Record<string, string>) => ({
      ...role,
      metadata: { ...role.metadata, labels: { ...role.metadata.labels, ...labels } },
    });
    return [...BUILTIN_ROLES.map((r) => marked(r, BUILTIN_ORIGIN)), ...config.roles.map((r) => marked(fromConfig(r), CONFIG_ORIGIN))];
  }
  return config.users.map((u) => ({ kind, version: 'v2', metadata: { name: u.name, labels: CONFIG_ORIGIN }, spec: { roles: u.roles } }));
}

/** The audit trail, filtered where it is kept: at the server for a person (/v1/audit), else on the local store. */
async function auditEvents(opts: Record<string, unknown>, ctx: CommandInput['ctx'], session: Session): Promise<Resource[]> {
  const { parseDuration } = await import('../../core/duration.ts');
  const since = opts.since === undefined ? undefined : ctx.now().getTime() - parseDuration(String(opts.since), '--since');
  const query = {
    ...(since !== undefined && { since: new Date(since).toISOString() }),
    ...(opts.user !== undefined && { user: String(opts.user) }),
    ...(opts.cluster !== undefined && { cluster: String(opts.cluster) }),
  };
  const person = await session.person();
  let answer: { events: Resource[]; omitted: number };
  if (person) answer = await person.call((await import('../../api/routes.ts')).routes.audit, query);
  else {
    const { queryAudit, parseAuditQuery } = await import('../../server/events/audit-query.ts');
    answer = await queryAudit(await session.backend(), parseAuditQuery(query), ctx.now().getTime());
  }
  if (answer.omitted > 0)
    ctx.logger.warn(`${answer.omitted} older matching events are not shown (at most the newest 10000 are): narrow --since, --user or --cluster.`);
  return answer.events;
}

export const get: CommandDef = {
  path: ['get'],
  summary: `Show resources: ${KIND_NAMES.join(', ')}`,
  examples: [
    'kport get kube_cluster',
    'kport get kube_cluster/prod -o yaml',
    'kport get discovery_service',
    'kport get audit --since 1h -o json',
    'kport get audit --since 1h --user alice --cluster prod',
  ],
  args: ['<kind[/name]>'],
  options: [
    { flags: '-v, --verbose', description: 'do not truncate columns' },
    { flags: '--since <duration>', description: 'audit only: events of the last DURATION, such as 1h' },
    { flags: '--user <name>', description: 'audit only: events of this person' },
    { flags: '--cluster <name>', description: 'audit only: events on this Kubernetes cluster' },
  ],
  async run({ args, opts, ctx, session }) {
    const { kind, name } = parseRef(args[0]!);
    const audit = kind.kind === 'audit_event';
    for (const flag of ['since', 'user', 'cluster'] as const) {
      if (opts[flag] !== undefined && (!audit || name))
        throw new UsageError(`--${flag} filters the audit trail: kport get audit --${flag} ${String(opts[flag])}.`);
    }
    const backend = await session.backend();
    let resources;
    const fromConfig = await configDefined(kind.kind, session);
    if (name) {
      const one = fromConfig.find((r) => r.metadata.name === name) ?? (await kind.find(backend, name));
      if (!one) throw new UserError(`${kind.kind} "${name}" not found: see \`kport get ${kind.kind}\` for what exists.`);
      resources = [one];
    } else if (audit) {
      resources = await auditEvents(opts, ctx, session);
    } else {
      const { listResources } = await import('../../resources/store.ts');
      const stored = await listResources(backend, kind.kind);
      // Config-defined roles and users win over resources of the same name, as kport reads them.
      resources = [...fromConfig, ...stored.filter((r) => !fromConfig.some((c) => c.metadata.name === r.metadata.name))].sort((a, b) =>
        a.metadata.name.localeCompare(b.metadata.name),
      );
    }
    // Through a server, the server answers as of now itself (it alone reads what that takes, such as leader keys).
    if (kind.asOfNow && backend.kind !== 'remote') resources = await kind.asOfNow(backend, resources, ctx.now().getTime());
    const format = session.format;
    if (format !== 'text') {
      const dtos = resources.map(kind.dto);
      return void ctx.stdout.write(serialize(name ? dtos[0] : dtos, format));
    }
    const verbose = Boolean(opts.verbose);
    ctx.stdout.write(
      renderTable(
        kind.headers,
        resources.map((r) => kind.row(r, ctx.stdoutIsTTY, verbose, ctx.now().getTime())),
        { tty: ctx.stdoutIsTTY, verbose },
      ),
    );
  },
};
