import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** Set by the agent as Impersonate-Extra-*, so the cluster's own audit log names the person and joins to kport's. */
export const ORIGINAL_USER_EXTRA = 'kport.dev/original-user';
export const SESSION_ID_EXTRA = 'kport.dev/session-id';

/**
 * Headers that describe one hop, the client's credentials, or its identity claims: never forwarded
 * as sent. Expect too: kport's own server answers a client's 100-continue and reads the body it forwards.
 */
export const DROP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'expect',
  'host',
  'authorization',
  'proxy-authorization',
  'http2-settings',
]);
/**
 * kport's own hop headers (kport-identity, the signed identity on a tunnel stream; kport-peer-host,
 * the agent a peer hop is for) are set by kport alone: any a client sends is dropped, so none can
 * ride ahead of kport's own on a hop or reach the cluster.
 */
export const KPORT_HEADER_PREFIX = 'kport-';

/** Whether a request header (its lower-case name) is not forwarded as the client sent it; impersonation is dropped apart. */
export function dropsRequestHeader(name: string): boolean {
  return DROP.has(name) || name.startsWith(KPORT_HEADER_PREFIX);
}
const DROP_RESPONSE = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

/**
 * The request's headers as the cluster gets them, after `lead` (the pseudo-headers or Host), as
 * [name, value, ...], which node:http2, node:https and undici all take: the client's own less the
 * hop-by-hop ones, its credentials, any Impersonate-* and any kport-*; then the checked identity, each
 * Impersonate-Group on a line of its own as the API server reads them, and the user's extras;
 * then the proxy's credentials.
 */
export function forwardedHeaders(
  lead: string[],
  headers: IncomingHttpHeaders,
  identity: { user: string; groups: string[] },
  authorization: string | undefined,
  extra?: Record<string, string[]>,
): string[] {
  const list = lead;
  list.push('impersonate-user', identity.user);
  for (const group of identity.groups) if (sendsGroup(identity, group)) list.push('impersonate-group', group);
  if (extra) for (const key in extra) for (const value of extra[key]!) list.push(extraHeader(key), value);
  if (authorization) list.push('authorization', authorization);
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name.charCodeAt(0) === 58 /* : */ || dropsRequestHeader(name) || name.startsWith('impersonate-')) continue;
    if (typeof value === 'string') list.push(name, value);
    else for (const v of value) list.push(name, v);
  }
  return list;
}

/** A header name may hold only token characters; the API server lower-cases the name and percent-decodes the key. */
const TOKEN_CHAR = /[A-Za-z0-9!#$&'*+\-.^_`|~]/;
const extraNames = new Map<string, string>();

/**
 * `Impersonate-Extra-<key>`, the key percent-encoded as client-go encodes it (kport.dev/original-user
 * becomes kport.dev%2foriginal-user), in lower case: HTTP/2 allows no other.
 */
export function extraHeader(key: string): string {
  let name = extraNames.get(key);
  if (name === undefined) {
    let encoded = '';
    for (const ch of key) encoded += TOKEN_CHAR.test(ch) ? ch : [...Buffer.from(ch)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
    name = `impersonate-extra-${encoded.toLowerCase()}`;
    // A handful of keys in practice; the bound keeps a caller with many from growing it.
    if (extraNames.size < 64) extraNames.set(key, name);
  }
  return name;
}

/**
 * Whether to send a group as Impersonate-Group. The API server adds system:authenticated itself to
 * any impersonated user but system:anonymous (unless system:unauthenticated is asked for) and
 * authorises every group sent, so sending it would cost the cluster a check per request for the
 * same identity.
 */
export function sendsGroup(identity: { user: string; groups: string[] }, group: string): boolean {
  return group !== 'system:authenticated' || identity.user === 'system:anonymous' || identity.groups.includes('system:unauthenticated');
}

export function responseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && name.charCodeAt(0) !== 58 /* : */ && !DROP_RESPONSE.has(name)) out[name] = value;
  }
  return out;
}
