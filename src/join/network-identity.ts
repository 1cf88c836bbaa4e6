import { X509Certificate, type KeyObject } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ApiError } from '../api/errors.ts';
import { routes } from '../api/routes.ts';
import type { HostIdentity } from '../api/wire.ts';
import { UserError } from '../core/errors.ts';
import { safeHostname } from '../resources/heartbeat-limits.ts';
import { joinHint } from '../tokens/tokens.ts';
import { CLOCK_SKEW_MS, createCsr, generateKeys, importKeyPem, keyPem } from '../pki/certs.ts';
import { identityDir, loadIdentity, readIdentityFile, saveIdentity, writeIdentityFile, type AgentIdentity, type X509Credential } from './identity.ts';
import { fetchPinnedCA, OutageLog, retrying, ServerClient, type ServerAddress } from '../client/server-client.ts';

export interface NetworkJoinOptions {
  dataDir: string;
  server: ServerAddress;
  pins: string[];
  roles: string[];
  discoveryGroup: string;
  /** Reads the join token; called only when the agent must join. */
  token: () => string;
  signal: AbortSignal;
  warn: (message: string) => void;
  /** Shared with the agent's later calls, so one outage is one story (and a one-shot run's bound holds). */
  outage?: OutageLog;
}

export interface NetworkAgent {
  identity: AgentIdentity & { credential: X509Credential };
  client: ServerClient;
  joined: boolean;
  /** Renews the host certificate at two thirds of its life until stopped; `onFatal` when the server refuses. */
  keepRenewed(onFatal: (err: Error) => void): () => void;
}

const serverName = (a: ServerAddress) => `${a.host}:${a.port}`;

/**
 * The agent's network identity: the kept one (no token needed), or a join (docs/architecture.md §9): the
 * server's CA checked against the pin before anything is sent, a key made here that never leaves
 * `<data_dir>/identity/key.pem`, a CSR signed with it, and the token. The server assigns the host id.
 */
export async function joinServer(opts: NetworkJoinOptions): Promise<NetworkAgent> {
  const dir = identityDir(opts.dataDir);
  const kept = loadIdentity(opts.dataDir);
  if (kept?.credential.type === 'x509') {
    const credential = kept.credential;
    const rejoin = `remove ${dir} and join again with a new token`;
    if (credential.server !== serverName(opts.server))
      throw new UserError(`This agent joined the server at ${credential.server}, but teleport.proxy_server is ${serverName(opts.server)}: ${rejoin}.`, 4);
    if (credential.discovery_group !== opts.discoveryGroup)
      throw new UserError(`This agent joined for discovery group "${credential.discovery_group}", but its config says "${opts.discoveryGroup}": ${rejoin}.`, 4);
    const missing = opts.roles.filter((r) => !kept.roles.includes(r));
    if (missing.length > 0)
      throw new UserError(
        `This agent joined with roles ${kept.roles.join(', ')}; its config now also runs ${missing.join(', ')}: ${rejoin} that allows them.`,
        4,
      );
    if (Date.parse(credential.expires) <= Date.now())
      throw new UserError(`This agent's certificate expired at ${credential.expires} (it was not running to renew it): ${rejoin}.`, 4);
    const key = readIdentityFile(opts.dataDir, 'key.pem');
    if (key === undefined) throw new UserError(`This agent's key ${join(dir, 'key.pem')} is missing beside its certificate: ${rejoin}.`, 4);
    const identity = kept as NetworkAgent['identity'];
    const client = new ServerClient(opts.server, { ca: credential.ca, cert: credential.cert, key });
    return { identity, client, joined: false, keepRenewed: (onFatal) => renewLoop(opts, identity, key, client, onFatal) };
  }

  // A token file that cannot be the token (empty, or tokens add's other formats) is said before the server is contacted.
  opts.token();
  const outage = opts.outage ?? new OutageLog(opts.warn);
  const ca = await retrying(() => fetchPinnedCA(opts.server, opts.pins, opts.warn), opts.signal, outage, opts.server);
  // The key is kept before the join is sent: an agent that dies before the answer arrives asks
  // again with the same key, and the server hands it the certificate of the join it counted.
  let { keys, key } = await pendingKey(opts.dataDir, false);
  const anonymous = new ServerClient(opts.server, { ca });
  let issued: HostIdentity;
  try {
    const send = () =>
      retrying(
        // The answer is decoded by the route's schema: another service's JSON is said to be one and not kept as an identity.
        async () =>
          anonymous.call(routes.join, {
            token: opts.token(),
            roles: opts.roles,
            hostname: safeHostname(hostname()),
            csr: await createCsr(keys, safeHostname(hostname())),
            discovery_group: opts.discoveryGroup,
          }),
        opts.signal,
        outage,
        opts.server,
      );
    issued = await send().catch(async (err: unknown) => {
      // The kept key joined with another token (a new one after a lost answer): a new key joins anew.
      if (!(err instanceof ApiError && err.code === 'key_in_use')) throw err;
      ({ keys, key } = await pendingKey(opts.dataDir, true));
      return send();
    });
  } catch (err) {
    if (err instanceof ApiError) {
      // The roles this agent asked for, not a fixed pair: a discovery-only agent needs no kube.
      const hint = err.code === 'token_invalid' || err.code === 'role_not_allowed' ? `${joinHint(opts.roles)} on the server` : 'see the server log';
      throw new UserError(`The server refused to let this agent join: ${err.message}; ${hint}.`, 4);
    }
    throw err;
  } finally {
    anonymous.close();
  }
  // key.pem was written first: an identity.json that names a certificate always has its key beside it.
  const identity: NetworkAgent['identity'] = {
    version: 1,
    host_id: issued.host_id,
    roles: issued.roles,
    joined: new Date().toISOString(),
    credential: {
      type: 'x509',
      server: serverName(opts.server),
      discovery_group: issued.discovery_group,
      cert: issued.cert,
      ca: issued.ca,
      expires: issued.expires,
      ...(issued.kube_identity && { kube_identity: issued.kube_identity }),
    },
  };
  saveIdentity(opts.dataDir, identity);
  const client = new ServerClient(opts.server, { ca: issued.ca, cert: issued.cert, key });
  return { identity, client, joined: true, keepRenewed: (onFatal) => renewLoop(opts, identity, key, client, onFatal) };
}

/** The key of a join that was sent but never answered, or a new one, written (0600) before it is used. */
async function pendingKey(dataDir: string, fresh: boolean): Promise<{ keys: CryptoKeyPair; key: string }> {
  const kept = fresh ? undefined : readIdentityFile(dataDir, 'key.pem');
  if (kept !== undefined) {
    const keys = await importKeyPem(kept).catch(() => undefined);
    if (keys) return { keys, key: kept };
  }
  const keys = await generateKeys();
  const key = await keyPem(keys.privateKey);
  writeIdentityFile(dataDir, 'key.pem', key);
  return { keys, key };
}

/** Renewal at two thirds of the certificate's life, with the same key and roles; retried until it lapses. */
function renewLoop(opts: NetworkJoinOptions, identity: NetworkAgent['identity'], key: string, client: ServerClient, onFatal: (err: Error) => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let early = identity.roles.includes('kube') && identity.credential.kube_identity === undefined;
  const schedule = () => {
    const cert = new X509Certificate(identity.credential.cert);
    // The server backdates notBefore by a minute for clock skew: the life starts a minute later.
    const from = Date.parse(cert.validFrom) + CLOCK_SKEW_MS;
    const to = Date.parse(cert.validTo);
    // An identity from before tunnels lacks the key that checks tunnel streams: a Kubernetes agent renews at once for it.
    const at = early ? Date.now() : from + ((to - from) * 2) / 3;
    timer = setTimeout(() => void renewOnce(), Math.max(1000, Math.min(at - Date.now(), 2 ** 31 - 1)));
    timer.unref();
  };
  const renewOnce = async () => {
    const wasEarly = early;
    early = false;
    try {
      const keys = await importKeyPem(key);
      const issued = await client.call(routes.renew, { csr: await createCsr(keys, identity.host_id), roles: identity.roles });
      identity.credential = {
        ...identity.credential,
        cert: issued.cert,
        ca: issued.ca,
        expires: issued.expires,
        ...(issued.kube_identity && { kube_identity: issued.kube_identity }),
      };
      identity.roles = issued.roles;
      saveIdentity(opts.dataDir, identity);
      client.setCredentials({ ca: issued.ca, cert: issued.cert, key });
    } catch (err) {
      if (stopped) return;
      // The server paces renewals (this host renewed recently, before a restart): the key comes with the regular one.
      if (err instanceof ApiError && err.code === 'renew_too_soon' && wasEarly) return schedule();
      if (err instanceof ApiError) {
        onFatal(
          new UserError(
            `The server refused to renew this agent's certificate: ${err.message}; remove ${identityDir(opts.dataDir)} and join again with a new token.`,
            4,
          ),
        );
        return;
      }
      // Unreachable for now: try again soon, well before the certificate lapses.
      timer = setTimeout(() => void renewOnce(), 5000);
      timer.unref();
      return;
    }
    if (!stopped) schedule();
  };
  schedule();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/**
 * The key that checks identities on tunnel streams, from the agent's credential as it is now
 * (renewals replace it); undefined until the server has sent one.
 */
export function kubeIdentityKey(identity: NetworkAgent['identity']): () => KeyObject | undefined {
  let pem: string | undefined;
  let key: KeyObject | undefined;
  return () => {
    const now = identity.credential.kube_identity;
    if (now !== pem) {
      pem = now;
      key = now === undefined ? undefined : new X509Certificate(now).publicKey;
    }
    return key;
  };
}
