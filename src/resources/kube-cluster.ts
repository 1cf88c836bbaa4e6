import { z } from 'zod';
import { metadataSchema, type Resource } from './resource.ts';

export const KUBE_CLUSTER = 'kube_cluster';

/** Labels kport sets on what it discovers; `kport.internal/*` are hidden from people. */
export const LABEL = {
  region: 'region',
  accountId: 'account-id',
  cloud: 'kport.dev/cloud',
  origin: 'kport.dev/origin',
  discoveryType: 'kport.dev/discovery-type',
  discoveredName: 'kport.internal/discovered-name',
  discoveryGroup: 'kport.internal/discovery-group-name',
} as const;

export const kubeClusterSpecSchema = z.strictObject({
  aws: z
    .strictObject({
      name: z.string().min(1),
      region: z.string().min(1),
      account_id: z.string().regex(/^\d{12}$/, 'expected a 12-digit AWS account ID'),
      arn: z.string().optional(),
    })
    .optional(),
  /** A kubeconfig (YAML text) for a static, non-EKS cluster; its current context is used. */
  kubeconfig: z.string().optional(),
});

export const kubeClusterSchema = z
  .strictObject({
    kind: z.literal(KUBE_CLUSTER),
    version: z.literal('v3').default('v3'),
    metadata: metadataSchema,
    spec: kubeClusterSpecSchema,
  })
  .refine((r) => Boolean(r.spec.aws) !== Boolean(r.spec.kubeconfig), {
    message: 'a kube_cluster needs exactly one of spec.aws or spec.kubeconfig',
    path: ['spec'],
  });

export type KubeClusterSpec = z.output<typeof kubeClusterSpecSchema>;
export type KubeCluster = Resource<KubeClusterSpec>;

/** The short name people know a discovered cluster by (the EKS name). */
export function discoveredName(cluster: KubeCluster): string | undefined {
  return cluster.metadata.labels?.[LABEL.discoveredName];
}
