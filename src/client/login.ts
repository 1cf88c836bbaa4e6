import { createPrivateKey, X509Certificate } from 'node:crypto';
import { UsageError, UserError } from '../core/errors.ts';
import { splitHostPort } from '../core/host-port.ts';
import { createCsr, generateKeys, keyPem } from '../pki/certs.ts';
import { spkiPin } from '../pki/pin.ts';
import { checkProfilePermissions, profileName, readProfile, saveProfile, type Profile } from './profile.ts';
import { ApiError } from '../api/errors.ts';
import type { RequestOf, ResponseOf, Route } from '../api/routes.ts';
import type { Identity, InviteBegun } from '../api/wire.ts';
import { fetchPinnedCA, neverSent, notKportServer, PIN_NAMES, ServerClient, type ServerAddress } from './server-client.ts';
import { RetryBudget } from './retry-budget.ts';

export type { Identity, InviteBegun };

/** --proxy HOST:PORT (Teleport's default port 3080 when only a host is given). */
export function parseProxy(value: string): ServerAddress {
  const parts = splitHostPort(value);
  if (!parts?.host || parts.port === 0) throw new UsageError(`--proxy "${value}" is not host:port, such as kport.example.com:3080.`);
  return { host: parts.host, port: parts.port ?? 3080 };
}

export function checkPin(value: string): string {
  if (!/^sha256:[0-9a-f]{64}$/.test(value)) throw new UsageError(`--ca-pin "${value}" is not sha256: and 64 hex digits, as \`kport server start\` prints it.`);
  return value;
}

/**
 * A client that talks to the server before the person has a certificate. The CA is the one the
 * profile for this server already trusts, or (first login, or a --ca-pin that differs: the server
 * was rebuilt) the one fetched and checked against --ca-pin, or trusted on first use with a warning.
 */
export async function anonymousClient(
  home: string,
  address: ServerAddress,
  pin: string | undefined,
  warn: (message: string) => void,
  signal: AbortSignal = new AbortController().signal,
): Promise<{ client: ServerClient; ca: string; pin: string }> {
  const kept = readProfile(home, profileName(address));
  // The kept CA is trusted only from directories no one else can write; its old key is replaced, so its mode does not matter here.
  if (kept) checkProfilePermissions(home, { dir: kept.dir });
  // A server restarting is tried for 2 s, as every person command does (README "Where commands run").
  const retry = new RetryBudget(signal);
  const ca =
    kept && (pin === undefined || pin === kept.ca_pin)
      ? kept.ca
      : await retry.run(() => fetchPinnedCA(address, pin ? [pin] : [], warn, PIN_NAMES.person), address);
  const untrusted = { trusted: `this login trusts (${spkiPin(ca)})`, next: `if the server was rebuilt with new CAs, pass --ca-pin with its new pin` };
  const client = new ServerClient(address, { ca, untrusted });
  retries.set(client, retry);
  return { client, ca, pin: spkiPin(ca) };
}

/** Each login client's retry budget (anonymousClient's), which its calls share. */
const retries = new WeakMap<ServerClient, RetryBudget>();

/** The person's key (made here, never sent) and the certificate request for it. */
export async function newKey(user: string): Promise<{ key: string; csr: string }> {
  const keys = await generateKeys();
  return { key: await keyPem(keys.privateKey), csr: await createCsr(keys, user || 'kport-user') };
}

/** A refusal of a login call: the server's one sentence, as a credentials failure (exit 4). */
export async function loginCall<R extends Route>(client: ServerClient, route: R, body: RequestOf<R>): Promise<ResponseOf<R>> {
  const retry = retries.get(client) ?? new RetryBudget(new AbortController().signal);
  try {
    // Only a call that never reached the server is sent again: a login spends its invite or TOTP code.
    return await retry.run(() => client.call(route, body), client.address, neverSent);
  } catch (err) {
    if (err instanceof ApiError)
      throw new UserError(
        `The kport server at ${client.address.host.includes(':') ? `[${client.address.host}]` : client.address.host}:${client.address.port} refused the login: ${err.message.replace(/\.$/, '')}.`,
        err.status === 400 ? 2 : 4,
      );
    throw err;
  }
}

/**
 * Keeps the login: only an answer that is a certificate for this login's key, naming the person,
 * is written (a confused or hostile answer must not leave a profile that fails later).
 */
export function saveLogin(home: string, address: ServerAddress, answer: unknown, key: string, ca: string): Profile {
  const identity = answer as Partial<Identity> | null;
  const bad = (why: string) =>
    new UserError(
      `The kport server at ${address.host}:${address.port} answered the login with ${why}: nothing was written; check that it is a kport server of this version.`,
      1,
    );
  if (
    typeof identity?.user !== 'string' ||
    !Array.isArray(identity.roles) ||
    !identity.roles.every((r) => typeof r === 'string') ||
    typeof identity.cert !== 'string'
  ) {
    throw notKportServer(address, 'it answered the login with something that is not an identity, and nothing was written');
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(identity.cert);
  } catch {
    throw bad('a certificate that does not parse');
  }
  if (!cert.checkPrivateKey(createPrivateKey(key))) throw bad('a certificate for another key');
  const expires = new Date(cert.validTo);
  return saveProfile(
    home,
    address,
    {
      proxy: `${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`,
      user: identity.user,
      roles: identity.roles,
      expires: expires.toISOString(),
      ca_pin: spkiPin(ca),
    },
    { ca, cert: identity.cert, key },
  );
}
