import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeSecretFile } from '../core/secret-file.ts';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '../backend/backend.ts';
import { UserError } from '../core/errors.ts';
import { checkTrusted, readTrusted } from '../core/file-trust.ts';
import { AGENT, type Agent } from '../resources/agent.ts';
import { resourceKey } from '../resources/resource.ts';
import { decodeResource, encodeResource } from '../resources/store.ts';
import { hashSecret, tokenUseOp, validateJoinToken } from '../tokens/tokens.ts';

/**
 * What an agent keeps after joining, in `<data_dir>/identity/identity.json` (0600), so a restart
 * needs no token (the token is for joining once, as in Teleport). In local mode the credential is
 * a random secret whose hash the store keeps; network mode replaces it with a host certificate
 * (`credential.type: x509`), with the same host id and roles around it.
 */
export interface AgentIdentity {
  version: 1;
  host_id: string;
  roles: string[];
  joined: string;
  credential: { type: 'secret'; secret: string } | X509Credential;
}

/** Network mode: a host certificate from the server (its key in `key.pem` beside it), and the server's CA. */
export interface X509Credential {
  type: 'x509';
  server: string;
  discovery_group: string;
  cert: string;
  ca: string;
  expires: string;
  /**
   * The public half of the server's kube_identity key (a certificate, PEM): it checks the identities
   * on tunnel streams. Absent in identities from before tunnels, until their next renewal.
   */
  kube_identity?: string;
}

export function identityDir(dataDir: string): string {
  return join(dataDir, 'identity');
}

/**
 * A file of the agent's identity (identity.json, key.pem): refused, as ssh refuses a key, when it or
 * the identity directory belongs to another user (not root) or others can write them, or others can
 * read the file; another user who planted a key there would hold this agent's identity. Undefined
 * when it is not there.
 */
export function readIdentityFile(dataDir: string, name: 'identity.json' | 'key.pem'): string | undefined {
  const dir = identityDir(dataDir);
  checkTrusted(dir, { what: "the agent's identity directory", harm: "replace this agent's key or certificate in it" });
  const what = name === 'key.pem' ? "the agent's key" : 'the agent identity';
  return readTrusted(join(dir, name), {
    what,
    harm: 'replace it with one of theirs',
    secret: { afterRead: ` (and if anyone may have read it, remove ${dir} and join again with a new token)` },
  });
}

export function loadIdentity(dataDir: string): AgentIdentity | undefined {
  const path = join(identityDir(dataDir), 'identity.json');
  const text = readIdentityFile(dataDir, 'identity.json');
  if (text === undefined) return undefined;
  try {
    const identity = JSON.parse(text) as AgentIdentity;
    if (identity.version !== 1 || typeof identity.host_id !== 'string' || !['secret', 'x509'].includes(identity.credential?.type))
      throw new Error('unknown shape');
    return identity;
  } catch {
    throw new UserError(`The agent identity ${path} is damaged: remove ${identityDir(dataDir)} and join again with a new token.`);
  }
}

export function saveIdentity(dataDir: string, identity: AgentIdentity): void {
  writeIdentityFile(dataDir, 'identity.json', `${JSON.stringify(identity, null, 2)}\n`);
}

export function writeIdentityFile(dataDir: string, name: string, text: string): void {
  writeSecretFile(join(identityDir(dataDir), name), text);
}

/**
 * The agent's identity for this start: the kept one when the store still knows it and it carries
 * the roles needed; otherwise a join with the token, which then is not needed again.
 */
export async function joinOrResume(opts: {
  backend: Backend;
  dataDir: string;
  roles: string[];
  /** Reads the join token; called only when the agent must join. */
  token: () => string;
  now: Date;
}): Promise<{ identity: AgentIdentity; joined: boolean }> {
  const found = loadIdentity(opts.dataDir);
  // An identity from a server is of no use to a local store: join the store instead.
  const kept = found?.credential.type === 'secret' ? found : undefined;
  if (kept && kept.credential.type === 'secret') {
    const item = await opts.backend.get(resourceKey(AGENT, kept.host_id));
    const record = item && decodeResource<Agent>(item);
    const known =
      record?.spec.credential_hash !== undefined &&
      timingSafeEqual(Buffer.from(record.spec.credential_hash, 'hex'), Buffer.from(hashSecret(kept.credential.secret), 'hex'));
    if (!known) {
      throw new UserError(
        `This agent's identity (host ${kept.host_id}, in ${identityDir(opts.dataDir)}) is not known to the store: it was removed, or the store is another one. Remove ${identityDir(opts.dataDir)} and join again with a new token.`,
        4,
      );
    }
    const missing = opts.roles.filter((r) => !kept.roles.some((k) => k.toLowerCase() === r.toLowerCase()));
    if (missing.length === 0) return { identity: kept, joined: false };
    // The config now runs another service: joining again, with a token that allows it, widens the identity.
  }
  const check = await validateJoinToken(opts.backend, opts.token(), opts.roles, opts.now);
  const token = check.token;
  const secret = randomBytes(32).toString('base64url');
  const identity: AgentIdentity = {
    version: 1,
    host_id: kept?.host_id ?? legacyHostId(opts.dataDir) ?? randomUUID(),
    roles: token.spec.roles.filter((r) => opts.roles.some((want) => want.toLowerCase() === r.toLowerCase())).map((r) => r.toLowerCase()),
    joined: opts.now.toISOString(),
    credential: { type: 'secret', secret },
  };
  const record: Agent = {
    kind: AGENT,
    version: 'v1',
    metadata: { name: identity.host_id, description: `kport agent on ${hostname()}` },
    spec: {
      host_id: identity.host_id,
      hostname: hostname(),
      roles: identity.roles,
      joined: identity.joined,
      token_name: token.metadata.name,
      credential_hash: hashSecret(secret),
      credential_type: 'secret',
    },
  };
  const agentKey = resourceKey(AGENT, identity.host_id);
  const previous = await opts.backend.get(agentKey);
  // The use is counted in the same transaction that records the agent.
  if (!(await opts.backend.transact([tokenUseOp(check, opts.now), { key: agentKey, revision: previous?.revision ?? 0, value: encodeResource(record) }]))) {
    throw new UserError('The join token changed while this agent joined (another agent used it): start the agent again.', 4);
  }
  saveIdentity(opts.dataDir, identity);
  return { identity, joined: true };
}

/** Agents from before identities kept their host id in `<data_dir>/host_uuid`: keep it, so their heartbeats stay theirs. */
function legacyHostId(dataDir: string): string | undefined {
  try {
    return readFileSync(join(dataDir, 'host_uuid'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
