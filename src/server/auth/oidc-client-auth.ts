import { createPrivateKey } from 'node:crypto';
import { ApiError } from '../../api/errors.ts';
import { readFile } from 'node:fs/promises';
import * as client from 'openid-client';
import { UsageError } from '../../core/errors.ts';

/** How the server proves it is the client at the provider's token endpoint (`client_auth_method`). */
export type ClientAuthMethod = 'basic' | 'post' | 'private_key_jwt';

/** The names OAuth gives them (RFC 7591 token_endpoint_auth_method). */
export const WIRE_NAMES: Record<ClientAuthMethod, string> = { basic: 'client_secret_basic', post: 'client_secret_post', private_key_jwt: 'private_key_jwt' };

/** What the server can authenticate with: client_secret, and the key of client_key_file. */
export interface ClientCredentials {
  secret?: string;
  key?: CryptoKey;
}

/**
 * The methods to try at the token endpoint, in order. A configured one alone; otherwise those the
 * provider's discovery document lists in `token_endpoint_auth_methods_supported` (absent, the list
 * means client_secret_basic: OpenID Connect Discovery 1.0, section 3) that the server has
 * credentials for: the key first (it was configured to be used), then basic, then post. Several
 * are kept because providers such as Okta list both secret methods but take only the one the
 * client was registered with: the server then tries the next when the first is refused as a
 * client, as Teleport's OAuth2 library (golang.org/x/oauth2, AuthStyleAutoDetect) does.
 */
export function clientAuthMethods(configured: ClientAuthMethod | undefined, supported: unknown, has: { secret: boolean; key: boolean }): ClientAuthMethod[] {
  if (configured) return [configured];
  const listed = Array.isArray(supported) ? supported.filter((s): s is string => typeof s === 'string') : [WIRE_NAMES.basic];
  const usable = [...(has.key ? (['private_key_jwt'] as const) : []), ...(has.secret ? (['basic', 'post'] as const) : [])];
  const methods = usable.filter((m) => listed.includes(WIRE_NAMES[m]));
  if (methods.length > 0) return methods;
  throw new ApiError(
    'oidc_client_auth_unsupported',
    `the identity provider's token endpoint takes none of ${usable.map((m) => WIRE_NAMES[m]).join(', ')} (its discovery document lists ${listed.slice(0, 10).join(', ') || 'none'}): register kport's client there for one of them, and set auth_service.authentication.client_auth_method to it (basic, post, or private_key_jwt with client_key_file).`,
  );
}

export function clientAuth(method: ClientAuthMethod, credentials: ClientCredentials): client.ClientAuth {
  if (method === 'private_key_jwt') return client.PrivateKeyJwt(credentials.key!);
  return method === 'post' ? client.ClientSecretPost(credentials.secret) : client.ClientSecretBasic(credentials.secret);
}

/** EC curves as Node names them, as WebCrypto does. */
const CURVES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

/**
 * client_key_file's private key, to sign the JWT that authenticates the server (RFC 7523): RSA
 * (RS256), EC P-256, P-384 or P-521 (ES256, ES384, ES512) or Ed25519. Read once, at the server's
 * start, so a wrong file stops the start and names itself.
 */
export async function clientKey(file: string): Promise<CryptoKey> {
  const wrong = (why: string) =>
    new UsageError(
      `auth_service.authentication.client_key_file ${file} ${why}: point it at the PEM private key whose public key is registered at the identity provider for this client.`,
    );
  let pem: string;
  try {
    pem = await readFile(file, 'utf8');
  } catch (err) {
    throw wrong(`cannot be read (${(err as Error).message})`);
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw wrong('holds no PEM private key');
  }
  const curve = CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''];
  const algorithm =
    key.asymmetricKeyType === 'rsa'
      ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
      : key.asymmetricKeyType === 'ec' && curve
        ? { name: 'ECDSA', namedCurve: curve }
        : key.asymmetricKeyType === 'ed25519'
          ? { name: 'Ed25519' }
          : undefined;
  if (!algorithm)
    throw wrong(
      `holds a ${key.asymmetricKeyType ?? 'unknown'} key${key.asymmetricKeyDetails?.namedCurve ? ` on ${key.asymmetricKeyDetails.namedCurve}` : ''}, not RSA, EC P-256, P-384, P-521 or Ed25519`,
    );
  // Node's webcrypto CryptoKey is the global one at run time; its types name a usage the DOM lib does not know yet.
  return key.toCryptoKey(algorithm, false, ['sign']) as unknown as CryptoKey;
}

/** True when the token endpoint refused the client itself (not the code): another method may pass. */
export function refusedAsClient(err: unknown): boolean {
  if (err instanceof client.ResponseBodyError) return err.error === 'invalid_client';
  if (err instanceof client.WWWAuthenticateChallengeError) return err.status === 401 || err.cause.some((c) => c.parameters.error === 'invalid_client');
  return false;
}
