import { z } from 'zod';
import type { StorageConfig as BackendStorage } from '../backend/storage-config.ts';
import { parseBytes } from '../core/bytes.ts';
import { parseDuration } from '../core/duration.ts';
import { KNOWN_REGIONS, partitionOf } from '../aws/regions.ts';
import { validateSelector } from '../resources/labels.ts';
import { reservedLabel } from '../resources/kube-cluster.ts';
import { labelsProblems } from '../resources/resource.ts';
import { closest } from '../core/suggest.ts';
import { reservedRoleNameProblem, reservedUserNameProblem } from '../resources/builtin-roles.ts';
import { parseSessionsUri } from './sessions-uri.ts';

const TRUE_WORDS = new Set(['true', 'yes', 'y', 'on']);
const FALSE_WORDS = new Set(['false', 'no', 'n', 'off']);

/** YAML 1.1 booleans as Teleport configs use them ("yes", off, on, no) mean what they say. */
const boolish = z.union([z.boolean(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'boolean') return value;
  const word = value.trim().toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  ctx.addIssue({ code: 'custom', message: `expected a boolean (yes/no, on/off, true/false), got "${value}"` });
  return z.NEVER;
});

/**
 * A Go-style duration with a unit ("30s", "5m", "1h30m"), at least `floor`. A bare number is refused:
 * Teleport (Go) reads `5` as 5 nanoseconds, kport used to read it as 5 seconds; neither is what
 * anyone means, so the unit is written out.
 */
const duration = (floor: { ms: number; text: string; why: string }) =>
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    if (typeof value === 'number') {
      ctx.addIssue({ code: 'custom', message: `${value} has no unit: write it with one, such as ${value}s or ${value}m` });
      return z.NEVER;
    }
    let ms: number;
    try {
      ms = parseDuration(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: `invalid duration "${value}" (use 30s, 5m, 1h)` });
      return z.NEVER;
    }
    if (ms < floor.ms) {
      ctx.addIssue({ code: 'custom', message: `${value} is below the minimum of ${floor.text}: ${floor.why}` });
      return z.NEVER;
    }
    return ms;
  });

// The floors and their reasons (README "Configuration"): each one stops a value that would hurt.
const POLL_INTERVAL_FLOOR = {
  ms: 2_000,
  text: '2s',
  why: 'each poll makes AWS calls in every region it watches (about 26 with regions: ["*"], plus one per cluster), so shorter intervals poll back to back and can throttle the account; the default is 5m',
};
const LEASE_TTL_FLOOR = {
  ms: 2_000,
  text: '2s',
  why: 'the leader renews its lease every third of it, and a shorter lease lapses on a busy machine, so leadership changes hands between healthy agents',
};
const HOST_CERT_TTL_FLOOR = {
  ms: 5_000,
  text: '5s',
  why: "agents renew at two thirds of the certificate's life, and a shorter one can expire while its renewal is in flight",
};
const AUDIT_RETENTION_FLOOR = { ms: 3_600_000, text: '1h', why: 'audit events that expire sooner are gone before anyone can read them' };

/** A size in bytes, or with a unit (512MiB, 4GiB, 100MB), at least `floor`. */
const byteSize = (floor: { bytes: number; text: string; why: string }) =>
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    const bytes = parseBytes(value);
    if (bytes === undefined) {
      ctx.addIssue({ code: 'custom', message: `invalid size "${value}" (use a number of bytes, or one with a unit: 512MiB, 4GiB, 100MB)` });
      return z.NEVER;
    }
    if (bytes < floor.bytes) {
      ctx.addIssue({ code: 'custom', message: `${value} is below the minimum of ${floor.text}: ${floor.why}` });
      return z.NEVER;
    }
    return bytes;
  });
const RECORDING_BUDGET_FLOOR = { bytes: 16 * 1024, text: '16KiB', why: "a recording's header and first screen take a few KiB" };

const stringList = z.union([z.string(), z.array(z.string())]);
/** Teleport's CA pin: the SHA-256 of the CA's SubjectPublicKeyInfo, as `kport tokens add` prints it. */
const caPin = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256: and 64 hex digits, as `kport tokens add` prints it');
/** Tag/label selectors: every key must match; a value may be one string or a list (any of). */
export const labelSelector = z.record(z.string(), stringList).superRefine((selector, ctx) => {
  for (const message of validateSelector(selector)) ctx.addIssue({ code: 'custom', message });
});

const iamRoleArn = z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/.+$/, 'expected an IAM role ARN such as arn:aws:iam::123456789012:role/name');

/** Teleport services kport does not run: accepted (with any of their keys) only when disabled. */
const disabledService = z
  .looseObject({ enabled: boolish.default(true) })
  .refine((service) => !service.enabled, { message: 'kport does not run this Teleport service; set enabled: off', path: ['enabled'] });

/** Teleport's matcher types; kport runs only the EKS fetcher. */
const TELEPORT_AWS_TYPES = ['ec2', 'eks', 'rds', 'rdsproxy', 'redshift', 'redshift-serverless', 'elasticache', 'memorydb', 'opensearch', 'docdb'];
const SUPPORTED_AWS_TYPES = ['eks'];

const awsMatcher = z
  .strictObject({
    types: z.array(z.string()).min(1, 'discovery service requires at least one type; kport discovers eks'),
    regions: z.array(z.string()).min(1, 'at least one region is required, or "*" for every enabled region').default(['*']),
    tags: labelSelector.default({ '*': '*' }),
    assume_role_arn: iamRoleArn.optional(),
    external_id: z.string().optional(),
  })
  .superRefine((matcher, ctx) => {
    matcher.types.forEach((type, i) => {
      if (SUPPORTED_AWS_TYPES.includes(type)) return;
      const hint = closest(type, SUPPORTED_AWS_TYPES);
      const why = TELEPORT_AWS_TYPES.includes(type)
        ? 'kport discovers only eks'
        : `supported: ${SUPPORTED_AWS_TYPES.join(', ')}${hint ? `; did you mean "${hint}"?` : ''}`;
      ctx.addIssue({ code: 'custom', path: ['types', i], message: `discovery service type does not support "${type}" (${why})` });
    });
    if (matcher.regions.includes('*') && matcher.regions.length > 1) {
      ctx.addIssue({ code: 'custom', path: ['regions'], message: 'when using "*" as region, no other regions can be specified' });
      return;
    }
    const partitions = new Set<string>();
    matcher.regions.forEach((region, i) => {
      if (region === '*') return;
      if (!KNOWN_REGIONS.includes(region)) {
        const hint = region.trim() ? closest(region, KNOWN_REGIONS) : undefined;
        ctx.addIssue({
          code: 'custom',
          path: ['regions', i],
          message: region.trim() ? `unknown AWS region "${region}"${hint ? `; did you mean "${hint}"?` : ''}` : 'a region cannot be empty',
        });
        return;
      }
      partitions.add(partitionOf(region));
    });
    if (partitions.size > 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['regions'],
        message: `regions of different AWS partitions (${[...partitions].join(', ')}) cannot share one matcher: one set of credentials reaches one partition`,
      });
    }
  });

const tlsFiles = z.strictObject({ ca_file: z.string().optional(), cert_file: z.string().optional(), key_file: z.string().optional() });

/** Teleport's claims_to_roles: `value` matches as label values do (glob, or ^regex$ on RE2). */
const claimMapping = z
  .strictObject({ claim: z.string().min(1), value: z.string().min(1), roles: z.array(z.string().min(1)).min(1) })
  .superRefine((mapping, ctx) => {
    for (const message of validateSelector({ [mapping.claim]: mapping.value })) ctx.addIssue({ code: 'custom', path: ['value'], message });
  });

/** SSO through an OpenID provider (docs/architecture.md §9): Teleport's OIDC connector fields, in the server's config. */
const oidcAuthentication = z
  .strictObject({
    type: z.literal('oidc'),
    issuer_url: z.url({ protocol: /^https$/, error: 'issuer_url must be an https:// URL (OpenID Connect needs TLS to the provider)' }),
    client_id: z.string().min(1),
    client_secret: z.string().min(1).optional(),
    /**
     * How the server authenticates at the token endpoint: with its secret in HTTP Basic or in the
     * form body, or with a JWT signed by client_key_file. Absent, the provider's discovery document
     * decides (token_endpoint_auth_methods_supported).
     */
    client_auth_method: z.enum(['basic', 'post', 'private_key_jwt']).optional(),
    /** kport: for private_key_jwt, the PEM private key (RSA, EC or Ed25519) whose public key is registered at the provider. */
    client_key_file: z.string().optional(),
    /** The callback registered at the provider: https://<kport server>/v1/login/oidc/callback; derived from the server's address when absent. */
    redirect_url: z.url({ protocol: /^https$/, error: 'redirect_url must be an https:// URL ending in /v1/login/oidc/callback' }).optional(),
    /** kport: a PEM bundle trusted for the provider besides the system CAs (a provider behind a private CA). */
    ca_file: z.string().optional(),
    /** The ID token claim that names the person; it must be a valid kport user name. */
    username_claim: z.string().min(1).default('preferred_username'),
    scope: z.array(z.string().min(1)).default([]),
    claims_to_roles: z.array(claimMapping).min(1, 'claims_to_roles needs at least one {claim, value, roles} entry, or no one could log in'),
  })
  .superRefine((oidc, ctx) => {
    if (oidc.client_auth_method === 'private_key_jwt' && !oidc.client_key_file) {
      ctx.addIssue({
        code: 'custom',
        path: ['client_key_file'],
        message: 'client_auth_method private_key_jwt needs client_key_file: the PEM private key whose public key is registered at the provider',
      });
    }
    if (!oidc.client_secret && !(oidc.client_key_file && (oidc.client_auth_method ?? 'private_key_jwt') === 'private_key_jwt')) {
      ctx.addIssue({
        code: 'custom',
        path: ['client_secret'],
        message: 'client_secret is needed, unless the server authenticates with client_key_file (client_auth_method private_key_jwt)',
      });
    }
  });

/** `local` (password + TOTP, the default) keeps whatever else Teleport allows beside it (second_factor, ...). */
const authentication = z.discriminatedUnion('type', [z.looseObject({ type: z.literal('local') }), oidcAuthentication]);

const storage = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('sqlite'), path: z.string().optional() }),
  z.strictObject({
    type: z.literal('etcd'),
    peers: z.array(z.string()).min(1),
    prefix: z.string().default('/kport'),
    tls: tlsFiles.optional(),
    username: z.string().optional(),
    password: z.string().optional(),
  }),
]);

const role = z.strictObject({
  name: z.string().min(1),
  kubernetes_labels: labelSelector.default({}),
  kubernetes_groups: z.array(z.string()).default([]),
  kubernetes_users: z.array(z.string()).default([]),
});

const user = z.strictObject({
  name: z
    .string()
    .min(1)
    .superRefine((name, ctx) => {
      const reserved = reservedUserNameProblem(name);
      if (reserved) ctx.addIssue({ code: 'custom', message: reserved });
    }),
  roles: z.array(z.string()).default([]),
});

export const configSchema = z.strictObject({
  version: z.enum(['v1', 'v2', 'v3']).default('v3'),
  teleport: z
    .strictObject({
      nodename: z.string().optional(),
      data_dir: z.string().optional(),
      join_params: z.strictObject({ token_name: z.string(), method: z.literal('token').default('token') }).optional(),
      auth_token: z.string().optional(),
      proxy_server: z.string().optional(),
      /** The server CA's SPKI hash (`sha256:...`), checked on an agent's first contact. */
      ca_pin: z.union([caPin, z.array(caPin)]).optional(),
      auth_server: z.string().optional(),
      auth_servers: z.array(z.string()).optional(),
      log: z.record(z.string(), z.unknown()).optional(),
      storage: storage.default({ type: 'sqlite' }),
      // kport server start's diagnostics and stop (README "Diagnostics and draining"): diag_addr, as
      // Teleport's, serves /healthz, /readyz and /metrics (off when absent); shutdown_grace is how long
      // SIGTERM leaves open requests to finish before the server ends them.
      diag_addr: z.string().optional(),
      shutdown_grace: duration({ ms: 0, text: '0s', why: '' }).default(30_000),
    })
    .default({ storage: { type: 'sqlite' }, shutdown_grace: 30_000 }),
  auth_service: z
    .strictObject({
      enabled: boolish.default(true),
      cluster_name: z.string().optional(),
      listen_addr: z.string().optional(),
      proxy_listener_mode: z.string().optional(),
      authentication: authentication.default({ type: 'local' }),
      /** kport: how long a host certificate lives before the agent renews it (at two thirds). */
      host_cert_ttl: duration(HOST_CERT_TTL_FLOOR).default(24 * 3_600_000),
      /** kport: how long audit events are kept in the backend. */
      audit_retention: duration(AUDIT_RETENTION_FLOOR).default(30 * 86_400_000),
      /** kport: join attempts per source address, a token bucket in Teleport's rate terms. */
      join_rate_limit: z
        .strictObject({
          period: duration({ ms: 1000, text: '1s', why: 'the bucket refills once a period' }).default(60_000),
          average: z.number().int().positive().default(60),
          burst: z.number().int().positive().default(30),
        })
        .optional(),
      /** kport: the disk session recordings may take, in all (default 4GiB) and per person (default a quarter of the total). */
      recording_budget: z
        .strictObject({ total: byteSize(RECORDING_BUDGET_FLOOR).optional(), per_user: byteSize(RECORDING_BUDGET_FLOOR).optional() })
        .superRefine((budget, ctx) => {
          if (budget.total !== undefined && budget.per_user !== undefined && budget.per_user > budget.total)
            ctx.addIssue({ code: 'custom', path: ['per_user'], message: "per_user is more than total: a person's share is part of the total" });
        })
        .optional(),
      /**
       * kport (Teleport's name): where session recordings go when not the server's own directory:
       * `s3://bucket/prefix?region=..&endpoint=http://..`, which every server of the cluster shares (config/sessions-uri.ts).
       */
      audit_sessions_uri: z
        .string()
        .superRefine((uri, ctx) => {
          try {
            parseSessionsUri(uri);
          } catch (err) {
            ctx.addIssue({ code: 'custom', message: (err as Error).message });
          }
        })
        .optional(),
    })
    .optional(),
  proxy_service: z
    .strictObject({
      enabled: boolish.default(true),
      /** The one TLS port (docs/architecture.md §9); Teleport calls it web_listen_addr. */
      listen_addr: z.string().optional(),
      web_listen_addr: z.string().optional(),
      public_addr: stringList.optional(),
      // Proxy peering (README "Several servers"): the mutual-TLS port other servers forward a
      // person's request on to the agent whose tunnel ends here. Used only on etcd storage;
      // defaults to the listen host, port 0 (any free port), advertised in this server's record.
      peer_listen_addr: z.string().optional(),
      peer_public_addr: z.string().optional(),
      // PROXY protocol (README "Several servers"): `on` when an L4 load balancer sends HAProxy's
      // send-proxy-v2 header, which then names every connection's client; off (the default) refuses it.
      proxy_protocol: boolish.default(false),
    })
    .optional(),
  ssh_service: disabledService.optional(),
  discovery_service: z
    .strictObject({
      enabled: boolish.default(false),
      // Teleport reads `discovery_group: 42` as the string "42"; so does kport.
      discovery_group: z.union([z.string(), z.number()]).transform(String).default(''),
      poll_interval: duration(POLL_INTERVAL_FLOOR).default(5 * 60_000),
      /** How long a silent group leader keeps the leadership (etcd or sqlite lease). */
      leader_lease_ttl: duration(LEASE_TTL_FLOOR).default(15_000),
      aws: z.array(awsMatcher).default([]),
    })
    .superRefine((service, ctx) => {
      // With no matcher a poll would find nothing and delete every cluster of the group.
      if (service.enabled && service.aws.length === 0) {
        ctx.addIssue({ code: 'custom', path: ['aws'], message: 'discovery service requires at least one aws matcher (types: [eks], regions, tags)' });
      }
    })
    .optional(),
  kubernetes_service: z
    .strictObject({
      enabled: boolish.default(false),
      listen_addr: z.string().optional(),
      /** Teleport's key: each context of this kubeconfig is a kube_cluster this agent registers and serves (src/kube/kubeconfig-clusters.ts). */
      kubeconfig_file: z.string().min(1).optional(),
      /** Labels of the kubeconfig_file clusters (Teleport's static labels of the service). */
      labels: z
        .record(z.string(), z.string())
        .superRefine((labels, ctx) => {
          for (const message of [
            ...labelsProblems(labels),
            ...Object.keys(labels)
              .filter(reservedLabel)
              .map((k) => `label "${k}" is kport's own: kport sets it`),
          ])
            ctx.addIssue({ code: 'custom', message });
        })
        .default({}),
      resources: z
        .array(
          z.strictObject({
            labels: labelSelector.default({ '*': '*' }),
            assume_role_arn: iamRoleArn.optional(),
            external_id: z.string().optional(),
          }),
        )
        .default([]),
    })
    .optional(),
  roles: z
    .array(role)
    .superRefine((roles, ctx) => {
      for (const [i, r] of roles.entries()) {
        const reserved = reservedRoleNameProblem(r.name);
        if (reserved) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: reserved });
      }
    })
    .default([]),
  users: z.array(user).default([]),
});

export type RawConfig = z.output<typeof configSchema>;
export type AwsMatcher = z.output<typeof awsMatcher>;
export type OidcAuthentication = z.output<typeof oidcAuthentication>;
export type StorageConfig = z.output<typeof storage>;
/** The backends declare what they read (src/backend/open.ts); this fails to compile when the schema and they part. */
const _storageFits: (parsed: StorageConfig) => BackendStorage = (parsed) => parsed;
void _storageFits;
export type RoleConfig = z.output<typeof role>;
export type UserConfig = z.output<typeof user>;
export type KubernetesServiceConfig = NonNullable<RawConfig['kubernetes_service']>;

/** Every key name the schema knows, for "did you mean" hints. */
export const KNOWN_KEYS = [
  ...new Set(
    'version teleport nodename data_dir join_params token_name method auth_token proxy_server auth_server auth_servers log storage type path peers prefix tls ca_file cert_file key_file username password leader_lease_ttl ca_pin cluster_name proxy_listener_mode authentication issuer_url client_id client_secret client_auth_method client_key_file redirect_url username_claim scope claims_to_roles claim value host_cert_ttl audit_retention join_rate_limit period average burst recording_budget total per_user audit_sessions_uri web_listen_addr public_addr auth_service proxy_service ssh_service enabled discovery_service discovery_group poll_interval aws types regions tags assume_role_arn external_id kubernetes_service listen_addr kubeconfig_file resources labels roles name kubernetes_labels kubernetes_groups kubernetes_users users peer_listen_addr peer_public_addr proxy_protocol'.split(
      ' ',
    ),
  ),
  // teleport's diagnostics and stop (kport server start).
  'diag_addr',
  'shutdown_grace',
];
