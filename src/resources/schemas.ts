// Validation of resources people write (`kport create -f`); loaded only by the commands that need it.
import { z } from 'zod';
import { labelSelector } from '../config/schema.ts';
import { KUBE_CLUSTER } from './kube-cluster.ts';
import { labelsProblems, nameProblem } from './resource.ts';
import { staticKubeconfigProblem } from '../kube/static-kubeconfig.ts';
import { ROLE, USER } from './role.ts';

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
  .refine((r) => Boolean(r.spec.aws) !== Boolean(r.spec.kubeconfig), {
    message: 'a kube_cluster needs exactly one of spec.aws or spec.kubeconfig',
    path: ['spec'],
  });

export const roleSchema = z.strictObject({
  kind: z.literal(ROLE),
  version: z.enum(['v1', 'v7']).default('v1'),
  metadata: metadataSchema,
  spec: z.strictObject({
    kubernetes_labels: labelSelector.default({}),
    kubernetes_groups: z.array(z.string()).default([]),
    kubernetes_users: z.array(z.string()).default([]),
  }),
});

export const userSchema = z.strictObject({
  kind: z.literal(USER),
  version: z.literal('v2').default('v2'),
  metadata: metadataSchema,
  spec: z.strictObject({ roles: z.array(z.string()).default([]) }),
});
