import type * as client from 'openid-client';

/**
 * The most bytes the server reads of any one answer of the identity provider: its discovery
 * document, JWKS, token response (the ID token inside it) and userinfo answer. Real ones are far
 * smaller (a discovery document or JWKS of a few KiB; Entra ID puts at most 200 groups in a token,
 * Okta 100), but Keycloak puts every group in, so a token response with an ID token and an access
 * token of 2,000 groups is about 300 KiB: 1 MiB leaves room for that, and a provider (or whoever
 * answers in its name) cannot make the server hold or parse more per call.
 */
export const MAX_PROVIDER_ANSWER_BYTES = 1024 * 1024;

/** An answer of the identity provider larger than the server reads (thrown by providerFetch). */
export class ProviderAnswerTooLarge extends Error {
  readonly url: string;
  readonly limit: number;
  constructor(url: string, limit: number, declared?: number) {
    super(`the identity provider's answer at ${url} is larger than ${limit} bytes${declared ? ` (it declared ${declared})` : ''}`);
    this.name = 'ProviderAnswerTooLarge';
    this.url = url;
    this.limit = limit;
  }
}

/** Statuses whose response may not have a body (the Response constructor refuses one). */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/**
 * fetch for openid-client that reads every answer whole, up to `maxBytes` (decoded), before
 * openid-client sees it: a larger one fails with ProviderAnswerTooLarge and the rest of it is not
 * read. With `ca`, the provider's HTTPS is checked against those CAs (the system's and ca_file).
 */
export async function providerFetch(opts: { ca?: string[]; maxBytes?: number } = {}): Promise<client.CustomFetch> {
  const maxBytes = opts.maxBytes ?? MAX_PROVIDER_ANSWER_BYTES;
  let inner: (url: string, options: client.CustomFetchOptions) => Promise<Response>;
  if (opts.ca) {
    const { Agent, fetch } = await import('undici');
    const dispatcher = new Agent({ connect: { ca: opts.ca } });
    inner = (url, options) => fetch(url, { ...options, dispatcher } as never) as unknown as Promise<Response>;
  } else {
    inner = (url, options) => fetch(url, options as RequestInit);
  }
  return (async (url: string, options: client.CustomFetchOptions) => bounded(await inner(url, options), url, maxBytes)) as unknown as client.CustomFetch;
}

async function bounded(res: Response, url: string, maxBytes: number): Promise<Response> {
  const declared = Number(res.headers.get('content-length') ?? '');
  if (declared > maxBytes) {
    await res.body?.cancel().catch(() => {});
    throw new ProviderAnswerTooLarge(url, maxBytes, declared);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (res.body) {
    // Leaving the loop by the throw cancels the stream: the rest is never read.
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      total += chunk.byteLength;
      if (total > maxBytes) throw new ProviderAnswerTooLarge(url, maxBytes);
      chunks.push(chunk);
    }
  }
  const body = NULL_BODY.has(res.status) ? null : Buffer.concat(chunks);
  const copy = new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers as HeadersInit });
  // Errors name the URL that answered.
  Object.defineProperty(copy, 'url', { value: res.url || url });
  return copy;
}
