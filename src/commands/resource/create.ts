import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Backend } from '../../backend/backend.ts';
import { UserError, UsageError } from '../../core/errors.ts';
import { keyPath, yamlErrorText } from '../../config/errors.ts';
import { BUILTIN_ORIGIN, lookupKind } from './registry.ts';
import type { Resource } from '../../resources/resource.ts';
import { ROLE, USER } from '../../resources/role.ts';
import { createResource, encodeResource, upsertResource } from '../../resources/store.ts';
import { createClaimed, foldName, nameHolder, sameNameProblem, type NameHolder } from '../../people/names.ts';
import { BUILTIN_ROLES } from '../../resources/builtin-roles.ts';
import { checkRole } from '../../resources/role-check.ts';
import type { RoleV7 } from '../../resources/role.ts';
import type { CommandDef, CommandInput } from '../command.ts';

const MASTERS = 'system:masters';

export const create: CommandDef = {
  path: ['create'],
  summary: 'Create resources (role, user, static kube_cluster) from a YAML file',
  examples: ['kport create -f roles.yaml', 'kport create -f static-cluster.yaml --force'],
  options: [
    { flags: '-f, --file <file>', description: 'YAML or JSON file with one or more documents ("-" for stdin)' },
    { flags: '--force', description: 'overwrite resources that already exist' },
    {
      flags: '--replace-discovered',
      description: 'with --force, also overwrite a discovered kube_cluster (it becomes static: discovery leaves it alone from then on)',
    },
  ],
  async run({ opts, ctx, session }) {
    if (typeof opts.file !== 'string') throw new UsageError('-f FILE is required: kport create -f role.yaml.');
    const text = opts.file === '-' ? await readStream(process.stdin) : await readText(resolve(ctx.cwd, opts.file));
    const resources = await parseResources(text, opts.file, (note) => ctx.logger.warn(note));
    const backend = await session.backend();
    const { getResource } = await import('../../resources/store.ts');
    const remote = backend.kind === 'remote';
    const exists = new Set<Resource>();
    const newUsers = new Map<Resource, NameHolder>();
    for (const r of resources) {
      const existing = await getResource(backend, r.kind, r.metadata.name);
      if (!existing) {
        if (r.kind === USER) newUsers.set(r, await checkNewUser(r, remote || !!(await session.config()).auth_service?.enabled, backend, newUsers));
        continue;
      }
      if (!opts.force) throw new UserError(`${r.kind} "${r.metadata.name}" already exists: pass --force to overwrite it. Nothing was written.`);
      exists.add(r);
      const origin = existing.metadata.labels?.['kport.dev/origin'];
      if (r.kind === 'kube_cluster' && origin === 'cloud' && !opts.replaceDiscovered) {
        throw new UserError(
          `kube_cluster "${r.metadata.name}" was discovered from AWS: overwriting it would make it static and discovery would no longer keep it true. Pass --replace-discovered as well if that is what you want. Nothing was written.`,
        );
      }
    }
    for (const r of resources) {
      if (r.kind === ROLE) warnIfMasters(r, ctx);
      if (r.kind === USER && exists.has(r)) {
        // A person's record is more than its roles (their login, certificates' uid, how they log in): only the roles change.
        const { usersService } = await import('../../client/users.ts');
        await (await usersService(session)).update(r.metadata.name, { set: (r.spec as { roles: string[] }).roles });
      } else if (r.kind === USER) {
        if (!(await createClaimed(backend, newUsers.get(r)!, r.metadata.name, encodeResource(r))))
          throw new UserError(`user "${r.metadata.name}" was created by someone else meanwhile: run again with --force to change its roles.`);
      } else if (opts.force) await upsertResource(backend, r, ctx.now().getTime());
      else if (!(await createResource(backend, r, ctx.now().getTime()))) {
        throw new UserError(`${r.kind} "${r.metadata.name}" was created by someone else meanwhile: run again with --force to overwrite it.`);
      }
      ctx.stdout.write(`${r.kind} "${r.metadata.name}" has been ${opts.force ? 'written' : 'created'}.\n`);
    }
  },
};

/**
 * Where a new user may come from: on the server (through it, or its host's store) people join with
 * an invite, which only `kport users add` makes (with the claim on the name in any case), so a
 * record without one is refused. In local mode (no server: the record only gives a local user, the
 * OS login or --user, their roles) it is written with the claim on its name, as users add does, so
 * no two users differ only in case there either.
 */
async function checkNewUser(user: Resource, server: boolean, backend: Backend, others: Map<Resource, NameHolder>): Promise<NameHolder> {
  const name = user.metadata.name;
  if (server)
    throw new UserError(
      `user "${name}" does not exist: add people with kport users add ${name} --roles ${(user.spec as { roles: string[] }).roles.join(',') || 'ROLES'}, which makes their one-time invite. Nothing was written.`,
    );
  const holder = await nameHolder(backend, name);
  const held = holder.user?.metadata.name ?? [...others.keys()].find((u) => foldName(u.metadata.name) === foldName(name))?.metadata.name;
  if (held)
    throw new UserError(
      `user "${name}" is refused: ${sameNameProblem(held)}: pick another name, or remove ${held} first (kport rm user/${held}). Nothing was written.`,
    );
  return holder;
}

/**
 * Kubernetes grants system:masters every permission and no RBAC rule can take any away, so a role
 * that maps people into it makes them cluster-admin wherever its labels reach. Teleport allows it
 * too; kport says so when the role is written.
 */
function warnIfMasters(role: Resource, ctx: CommandInput['ctx']): void {
  const groups = (role.spec as RoleV7['spec']).allow?.kubernetes_groups ?? [];
  if (!groups.includes(MASTERS)) return;
  ctx.logger.warn(
    `role "${role.metadata.name}" maps people into the Kubernetes group ${MASTERS}: they are cluster-admin on every cluster its kubernetes_labels match, and no Kubernetes RBAC rule can limit them. Map a group bound to narrower ClusterRoles unless that is what you mean.`,
  );
}

/** Validates every document before anything is written, so bad input changes nothing. */
export async function parseResources(text: string, source: string, note: (message: string) => void = () => {}): Promise<Resource[]> {
  const problems: string[] = [];
  const resources: Resource[] = [];
  let builtins = 0;
  const { parseAllDocuments } = await import('yaml');
  for (const [i, doc] of parseAllDocuments(text).entries()) {
    const where = `${source} document ${i + 1}`;
    if (doc.errors.length > 0) {
      problems.push(`${where}: invalid YAML at line ${doc.errors[0]!.linePos?.[0]?.line ?? '?'}: ${yamlErrorText(doc.errors[0]!.message)}`);
      continue;
    }
    let raw: { kind?: unknown } | null;
    try {
      raw = doc.toJS() as { kind?: unknown } | null;
    } catch (err) {
      problems.push(`${where}: cannot be read (${(err as Error).message}): write the values out instead of aliasing aliases`);
      continue;
    }
    if (raw === null) continue;
    if (typeof raw !== 'object' || typeof raw.kind !== 'string') {
      problems.push(`${where}: every document needs a kind, such as role or kube_cluster`);
      continue;
    }
    const kind = lookupKind(raw.kind);
    // `kport get role -o yaml` lists the built-in roles too: read back unchanged, they are left as they are.
    if (kind.kind === ROLE && isBuiltinAsListed(raw)) {
      note(`${where}: role ${(raw as RoleV7).metadata.name} is built into kport and is left as it is.`);
      builtins++;
      continue;
    }
    if (!kind.schema) {
      problems.push(`${where}: ${kind.kind} resources are created by kport itself, not with create -f`);
      continue;
    }
    const parsed = (await kind.schema()).safeParse(raw);
    if (parsed.success) resources.push(parsed.data);
    else for (const issue of parsed.error.issues) problems.push(`${where}: ${keyPath(issue.path)}: ${issue.message}`);
  }
  if (problems.length > 0) throw new UsageError(`Cannot create resources; nothing was written:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  if (resources.length === 0 && builtins === 0) throw new UsageError(`${source} holds no resources.`);
  return resources;
}

/** A built-in role as `get role` lists it (marked builtin, not changed). */
function isBuiltinAsListed(raw: object): boolean {
  const doc = raw as { metadata?: { name?: unknown; labels?: Record<string, unknown> } };
  if (doc.metadata?.labels?.['kport.dev/origin'] !== BUILTIN_ORIGIN['kport.dev/origin'] || typeof doc.metadata.name !== 'string') return false;
  const builtin = BUILTIN_ROLES.find((r) => r.metadata.name === doc.metadata!.name);
  const read = checkRole(raw).role;
  return !!builtin && !!read && JSON.stringify(read.spec) === JSON.stringify(builtin.spec);
}

/** Resource files are kilobytes; a bigger input is a wrong file, refused before it is parsed. */
const MAX_INPUT_BYTES = 4 * 1024 * 1024;

async function readText(path: string): Promise<string> {
  let bytes: Buffer;
  try {
    if ((await stat(path)).size > MAX_INPUT_BYTES) throw new UsageError(`${path} is larger than 4 MiB: resource files are YAML of a few kilobytes.`);
    bytes = await readFile(path);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`Cannot read ${path}: ${(err as Error).message}.`);
  }
  return asText(bytes, path);
}

async function readStream(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > MAX_INPUT_BYTES) throw new UsageError('standard input is larger than 4 MiB: resource files are YAML of a few kilobytes.');
    chunks.push(Buffer.from(chunk as Buffer));
  }
  return asText(Buffer.concat(chunks), 'standard input');
}

function asText(bytes: Buffer, source: string): string {
  if (bytes.includes(0)) throw new UsageError(`${source} is not a text file: pass a YAML or JSON file of resources.`);
  return bytes.toString('utf8');
}
