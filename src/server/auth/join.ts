import { hostnameProblem } from '../../resources/heartbeat-limits.ts';
import type { z } from 'zod';
import { ApiError } from '../../api/errors.ts';
import type { joinRequest, renewRequest } from '../../api/wire.ts';
import { randomUUID } from 'node:crypto';
import type { Backend } from '../../backend/backend.ts';
import { certPem, hostClaims, issueLeaf, keyHash, verifiedCsrKey } from '../../pki/certs.ts';
import { AGENT, type Agent } from '../../resources/agent.ts';
import { nameProblem, resourceKey } from '../../resources/resource.ts';
import { freeTextProblem } from '../../resources/text.ts';
import { currentAgent } from '../../resources/agent-record.ts';
import { encodeResource } from '../../resources/store.ts';
import { checkJoinToken, secretMatches, tokenUseOp, type SecretCheck } from '../../tokens/tokens.ts';
import type { Authorities } from './authorities.ts';

export const DEFAULT_HOST_CERT_TTL_MS = 24 * 3_600_000;
const MAX_HOSTNAME = 253;
/** Where the server remembers which key joined with which token, for a retried join: `/joins/<key hash>`. */
const JOIN_TICKETS = '/joins/';

export interface JoinRequest {
  token: string;
  roles: string[];
  hostname: string;
  csr: string;
  discovery_group?: string;
}

export interface IssuedIdentity {
  host_id: string;
  roles: string[];
  discovery_group: string;
  cert: string;
  /** The server TLS CA the agent trusts from now on. */
  ca: string;
  expires: string;
  /** The public half of the key that signs the identities on tunnel streams (a certificate, PEM). */
  kube_identity: string;
}

export interface JoinDeps {
  backend: Backend;
  authorities: Authorities;
  hostCertTtlMs: number;
  now: () => Date;
  /** Whether renewals are paced (renewalPaceKey); a server's always are. */
  paceRenewals?: boolean;
}

/**
 * `/renewals/<host id>` -> when the host last renewed (epoch ms), living one pace gap: in the store,
 * so an agent spreading renewals over N servers is paced once, not N times; created only when
 * absent, so two renewals racing on two servers cannot both pass.
 */
const renewalPaceKey = (hostId: string) => `/renewals/${hostId}`;

/**
 * An agent renews at two thirds of its certificate's life (and again after a lost answer), so a
 * host renewing more often than once a quarter of that life is a loop, not an agent: each renewal
 * costs a signature and an audit event. Refused with 429, which agents wait out.
 */
async function checkRenewalPace(deps: JoinDeps, hostId: string, last?: number): Promise<void> {
  if (!deps.paceRenewals) return;
  last ??= Number((await deps.backend.get(renewalPaceKey(hostId)))?.value ?? Number.NaN);
  if (Number.isNaN(last)) return;
  const since = Math.max(0, deps.now().getTime() - last);
  throw new ApiError(
    'renew_too_soon',
    `agent ${hostId} renewed its certificate ${Math.round(since / 1000)} s ago: a certificate is renewed at two thirds of its life, at most once every ${Math.ceil(renewalGapMs(deps) / 1000)} s`,
  );
}

function renewalGapMs(deps: JoinDeps): number {
  return Math.max(1000, deps.hostCertTtlMs / 4);
}

/** Takes this host's pace slot, after every other check passed; the renewal is refused when another took it first. */
async function claimRenewal(deps: JoinDeps, hostId: string): Promise<void> {
  if (!deps.paceRenewals) return;
  const now = deps.now().getTime();
  if (await deps.backend.create(renewalPaceKey(hostId), String(now), { ttlMs: renewalGapMs(deps) })) return;
  await checkRenewalPace(deps, hostId);
  // Gone again between the two reads (it lapsed): a renewal won it a moment ago all the same.
  await checkRenewalPace(deps, hostId, now);
}

/**
 * A join request as the route's schema parsed it (src/api/wire.ts: its fields and their types),
 * checked for what the schema does not know: a hostname an admin's terminal can show, a group
 * that is a valid name. Roles are lowercased and each asked once.
 */
export function parseJoinRequest(b: z.output<typeof joinRequest>): JoinRequest {
  // `kport agents ls` shows it on an admin's terminal.
  const unprintable = freeTextProblem('the hostname', b.hostname, MAX_HOSTNAME);
  if (unprintable) throw new ApiError('bad_request', `${unprintable}: send the machine's hostname`);
  const notHostname = hostnameProblem('the hostname', b.hostname);
  if (notHostname) throw new ApiError('bad_request', `${notHostname}: send the machine's hostname`);
  const group = b.discovery_group ?? '';
  if (group !== '' && nameProblem(group)) throw new ApiError('bad_request', `discovery group "${group}" is not a valid name`);
  return { token: b.token, roles: [...new Set(b.roles.map((r) => r.toLowerCase()))], hostname: b.hostname, csr: b.csr, discovery_group: group };
}

/**
 * A join (docs/architecture.md §9): the token checked, the CSR's proof of possession verified, one use counted
 * in the same transaction that records the agent, a host id assigned, a host cert signed.
 */
export async function join(deps: JoinDeps, req: JoinRequest, address: string): Promise<{ identity: IssuedIdentity; tokenName: string }> {
  const publicKey = await verifiedCsrKey(req.csr);
  for (let attempt = 0; ; attempt++) {
    const now = deps.now();
    // A join whose answer was lost (the connection, or this server, died after its transaction)
    // comes again with the same key: it gets its certificate and spends no second use.
    if (publicKey) {
      const again = await retriedJoin(deps, req, publicKey);
      if (again) return again;
    }
    const check = await checkJoinToken(deps.backend, req.token, req.roles, now);
    if (!check.ok) throw new ApiError(check.code, check.reason, check.tokenName === undefined ? {} : { tokenName: check.tokenName });
    const tokenName = check.token.metadata.name;
    if (!publicKey)
      throw new ApiError(
        'bad_csr',
        'the certificate request is not signed by the ECDSA P-256 key it names: the agent must make its own key and sign the request with it',
        { tokenName },
      );
    const hostId = randomUUID();
    const group = req.discovery_group ?? '';
    const record: Agent = {
      kind: AGENT,
      version: 'v1',
      metadata: { name: hostId, description: `kport agent on ${req.hostname}` },
      spec: {
        host_id: hostId,
        hostname: req.hostname,
        roles: req.roles,
        joined: now.toISOString(),
        token_name: tokenName,
        credential_hash: keyHash(publicKey),
        credential_type: 'x509',
        discovery_group: group,
        address,
        last_seen: now.toISOString(),
      },
    };
    // The use is counted in the same transaction that records the agent; the cert is signed only after.
    // The ticket lives as long as the certificate would have: a retry after that needs a new token.
    // It keeps the token's own salted verifier (the token itself may be gone once used up), so a
    // retry proves it holds the same secret without the store gaining anything checkable offline.
    const ticket: JoinTicket = { host_id: hostId, token_name: tokenName, secret: { verifier: check.token.spec.verifier, hash: check.token.spec.hash } };
    const ticketOp = { key: `${JOIN_TICKETS}${record.spec.credential_hash}`, revision: 0, value: JSON.stringify(ticket), ttlMs: deps.hostCertTtlMs };
    if (!(await deps.backend.transact([tokenUseOp(check, now), { key: resourceKey(AGENT, hostId), revision: 0, value: encodeResource(record) }, ticketOp]))) {
      // Another join used the token between our read and our write, or the same key joined at
      // the same moment (then the next turn finds its ticket): read again.
      if (attempt >= 20) throw new ApiError('busy', 'the token is being used by many agents at once: try again');
      continue;
    }
    return { identity: await hostIdentity(deps, publicKey, hostId, req.roles, group), tokenName };
  }
}

interface JoinTicket {
  host_id: string;
  token_name: string;
  secret: SecretCheck;
}

/**
 * The identity of an earlier join by this same key, when this request repeats it: the same token
 * (the secret presented again matches the one the ticket kept), the same roles and group, and the agent
 * record still holding this key's hash. The CSR's signature proves the caller holds the key, so
 * someone who learnt a used-up token cannot take the identity. A key that joined otherwise is
 * refused: an agent makes a new key for each join.
 */
async function retriedJoin(
  deps: JoinDeps,
  req: JoinRequest,
  publicKey: Parameters<typeof keyHash>[0],
): Promise<{ identity: IssuedIdentity; tokenName: string } | undefined> {
  const hash = keyHash(publicKey);
  const item = await deps.backend.get(`${JOIN_TICKETS}${hash}`);
  if (!item) return undefined;
  const ticket = JSON.parse(item.value) as JoinTicket;
  const tokenName = ticket.token_name;
  const known = await currentAgent(deps.backend, ticket.host_id, hash);
  const group = req.discovery_group ?? '';
  const same =
    known &&
    (await secretMatches(ticket.secret ?? {}, req.token.trim())) &&
    known.agent.spec.token_name === tokenName &&
    (known.agent.spec.discovery_group ?? '') === group &&
    sameRoles(known.agent.spec.roles, req.roles);
  if (!same)
    throw new ApiError('key_in_use', `this key already joined as agent ${ticket.host_id}${known ? '' : ', which was removed'}: make a new key for a new join`, {
      tokenName: ticket.token_name,
    });
  return { identity: await hostIdentity(deps, publicKey, ticket.host_id, known.agent.spec.roles, group), tokenName };
}

function sameRoles(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((r) => b.includes(r));
}

async function hostIdentity(deps: JoinDeps, publicKey: Parameters<typeof keyHash>[0], hostId: string, roles: string[], group: string): Promise<IssuedIdentity> {
  const cert = await issueLeaf(deps.authorities.host, publicKey, {
    commonName: hostId,
    organizations: ['kport-agents'],
    usage: 'client',
    validForMs: deps.hostCertTtlMs,
    host: { roles, discovery_group: group },
  });
  return {
    host_id: hostId,
    roles,
    discovery_group: group,
    cert: certPem(cert),
    ca: deps.authorities.server_tls.certPem,
    expires: cert.notAfter.toISOString(),
    kube_identity: deps.authorities.kube_identity.certPem,
  };
}

/**
 * A renewal over mTLS: the same key (the CSR must name the key the current cert names), the same or
 * fewer roles, never more; the same host id and group.
 */
export async function renew(
  deps: JoinDeps,
  caller: { hostId: string; roles: string[]; group: string; keyHash: string; notAfter: number },
  b: z.output<typeof renewRequest>,
): Promise<IssuedIdentity> {
  // An expired certificate proves nothing any more: it cannot be renewed, only replaced by a new join.
  if (deps.now().getTime() >= caller.notAfter)
    throw new ApiError('cert_expired', `the host certificate of agent ${caller.hostId} has expired: join again with a new token`);
  // A cheap refusal first (a read), before the CSR's signature is checked.
  await checkRenewalPace(deps, caller.hostId);
  // The route's schema (src/api/wire.ts) checked the fields' types; absent roles are the certificate's.
  const asked = b.roles ?? caller.roles;
  const wider = asked.map((r) => r.toLowerCase()).filter((r) => !caller.roles.includes(r));
  if (wider.length > 0) throw new ApiError('roles_widened', `a renewal may not add roles (${wider.join(', ')}): join again with a token that allows them`);
  const publicKey = await verifiedCsrKey(b.csr);
  if (!publicKey) throw new ApiError('bad_csr', 'the certificate request is not signed by the key it names');
  if (keyHash(publicKey) !== caller.keyHash) throw new ApiError('key_changed', 'a renewal keeps the key the agent joined with');
  await claimRenewal(deps, caller.hostId);
  const cert = await issueLeaf(deps.authorities.host, publicKey, {
    commonName: caller.hostId,
    organizations: ['kport-agents'],
    usage: 'client',
    validForMs: deps.hostCertTtlMs,
    host: { roles: [...new Set(asked.map((r) => r.toLowerCase()))], discovery_group: caller.group },
  });
  const pemText = certPem(cert);
  return {
    host_id: caller.hostId,
    roles: hostClaims(Buffer.from(cert.rawData))!.claims.roles,
    discovery_group: caller.group,
    cert: pemText,
    ca: deps.authorities.server_tls.certPem,
    expires: cert.notAfter.toISOString(),
    kube_identity: deps.authorities.kube_identity.certPem,
  };
}
