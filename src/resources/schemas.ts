// Validation of resources people write (`kport create -f`) and agents write (heartbeats, through the
// server); loaded only by the commands and the server that need it.
import { z } from 'zod';
import { DISCOVERY_SERVICE } from './discovery-service.ts';
import { KUBE_CLUSTER, registeringAgent } from './kube-cluster.ts';
import { KUBE_SERVER } from './kube-server.ts';
import { labelsProblems, nameProblem } from './resource.ts';
import { staticKubeconfigProblem } from './static-kubeconfig.ts';
import { USER } from './role.ts';
import { reservedRoleNameProblem, reservedUserNameProblem } from './builtin-roles.ts';
import { checkRole } from './role-check.ts';
import { HEARTBEAT_LIMITS, hostnameProblem } from './heartbeat-limits.ts';
import { freeTextProblem } from './text.ts';

export const metadataSchema = z.strictObject({
  name: z.string().superRefine((name, ctx) => {
    const problem = nameProblem(name);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  }),
  description: z.string().max(1024).optional(),
  labels: z
    .record(z.string(), z.string())
    .superRefine((labels, ctx) => {
      for (const message of labelsProblems(labels)) ctx.addIssue({ code: 'custom', message });
    })
    .optional(),
  expires: z.string().datetime({ offset: true }).optional(),
  revision: z.number().optional(),
});

export const kubeClusterSchema = z
  .strictObject({
    kind: z.literal(KUBE_CLUSTER),
    version: z.literal('v3').default('v3'),
    metadata: metadataSchema,
    spec: z.strictObject({
      aws: z
        .strictObject({
          name: z.string().min(1),
          region: z.string().min(1),
          account_id: z.string().regex(/^\d{12}$/, 'expected a 12-digit AWS account ID'),
          arn: z.string().optional(),
        })
        .optional(),
      kubeconfig: z
        .string()
        .superRefine((text, ctx) => {
          const problem = staticKubeconfigProblem(text);
          if (problem) ctx.addIssue({ code: 'custom', message: problem });
        })
        .optional(),
    }),
  })
  // A Kubernetes agent's kubeconfig_file cluster has neither: its kubeconfig stays at the agent.
  .refine((r) => (registeringAgent(r) ? !r.spec.aws && !r.spec.kubeconfig : Boolean(r.spec.aws) !== Boolean(r.spec.kubeconfig)), {
    message: 'a kube_cluster needs exactly one of spec.aws or spec.kubeconfig (none when a Kubernetes agent registered it from its kubeconfig_file)',
    path: ['spec'],
  });

/** Either shape of role (src/resources/role-check.ts), stored as Teleport's v7; built-in names are kport's own. */
export const roleSchema = z.unknown().transform((doc, ctx) => {
  const { role, problems } = checkRole(doc);
  for (const p of problems) ctx.addIssue({ code: 'custom', path: p.path ? [p.path] : [], message: p.message });
  const reserved = role && reservedRoleNameProblem(role.metadata.name);
  if (reserved) ctx.addIssue({ code: 'custom', path: ['metadata.name'], message: reserved });
  return role ?? z.NEVER;
});

export const userSchema = z
  .strictObject({
    kind: z.literal(USER),
    version: z.literal('v2').default('v2'),
    metadata: metadataSchema,
    spec: z.strictObject({ roles: z.array(z.string()).default([]) }),
  })
  .superRefine((u, ctx) => {
    const reserved = reservedUserNameProblem(u.metadata.name);
    if (reserved) ctx.addIssue({ code: 'custom', path: ['metadata', 'name'], message: reserved });
  });

// Heartbeats agents write through the server (docs/architecture.md §9): every field bounded, free text
// printable, so an agent can neither fill the store nor drive an admin's terminal.

const freeText = (what: string, max: number) =>
  z.string().superRefine((text, ctx) => {
    const problem = freeTextProblem(what, text, max);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });
const resourceName = z.string().superRefine((name, ctx) => {
  const problem = nameProblem(name);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});
const time = z.string().datetime({ offset: true });
const hostname = freeText('spec.hostname', HEARTBEAT_LIMITS.hostname).superRefine((name, ctx) => {
  const problem = hostnameProblem('spec.hostname', name);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});
const count = z.number().int().nonnegative();
const heartbeatMetadata = metadataSchema.extend({ description: freeText('metadata.description', 1024).optional() });

export const discoveryServiceSchema = z.strictObject({
  kind: z.literal(DISCOVERY_SERVICE),
  version: z.literal('v1'),
  metadata: heartbeatMetadata,
  spec: z.strictObject({
    host_id: resourceName,
    hostname: hostname,
    discovery_group: z.string(),
    state: z.enum(['leader', 'standby', 'starting', 'stopped']),
    started: time,
    last_poll: time.optional(),
    last_poll_duration_ms: z.number().nonnegative().finite().optional(),
    next_poll: time.optional(),
    last_heartbeat: time.optional(),
    heartbeat_interval_ms: z.number().int().positive().max(86_400_000).optional(),
    clusters: z.strictObject({ seen: count, created: count, updated: count, deleted: count }),
    errors: z
      .array(z.strictObject({ scope: freeText('an error scope', HEARTBEAT_LIMITS.scope), error: freeText('an error', HEARTBEAT_LIMITS.error), at: time }))
      .max(HEARTBEAT_LIMITS.errors),
  }),
});

export const kubeServerSchema = z.strictObject({
  kind: z.literal(KUBE_SERVER),
  version: z.literal('v1'),
  metadata: heartbeatMetadata,
  spec: z.strictObject({
    host_id: resourceName,
    hostname: hostname,
    clusters: z.array(resourceName).max(HEARTBEAT_LIMITS.clusters),
    started: time,
    last_heartbeat: time.optional(),
  }),
});
