/** What a Kubernetes API request does, parsed from its method and path as the apiserver does, for the audit log. */
export interface RequestInfo {
  verb: string;
  apiGroup: string;
  namespace: string;
  resource: string;
  subresource: string;
  name: string;
}

const VERBS: Record<string, string> = { POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete', GET: 'get', HEAD: 'get' };

export function requestInfo(method: string, rawPath: string): RequestInfo {
  const info: RequestInfo = { verb: (VERBS[method] ?? method).toLowerCase(), apiGroup: '', namespace: '', resource: '', subresource: '', name: '' };
  const q = rawPath.indexOf('?');
  const path = q < 0 ? rawPath : rawPath.slice(0, q);
  // The non-empty segments, decoded (a segment without % is its own decoding).
  const parts = path.split('/');
  let n = 0;
  for (const part of parts) if (part) parts[n++] = part.includes('%') ? decodeSegment(part) : part;
  parts.length = n;
  let i: number;
  if (parts[0] === 'api') i = 2;
  else if (parts[0] === 'apis') {
    info.apiGroup = parts[1] ?? '';
    i = 3;
  } else {
    info.verb = method.toLowerCase();
    return info;
  }
  if (parts[i] === 'watch') {
    info.verb = 'watch';
    i++;
  }
  if (parts[i] === 'namespaces' && n - i >= 2) {
    info.namespace = parts[i + 1]!;
    // /namespaces/NAME is the namespace itself; /namespaces/NAME/RESOURCE... is inside it.
    if (n - i >= 3) i += 2;
  }
  info.resource = parts[i] ?? '';
  info.name = parts[i + 1] ?? '';
  info.subresource = parts[i + 2] ?? '';
  if (info.verb === 'get' && !info.name) info.verb = q >= 0 && /(^|&)watch=(1|true)(&|$)/.test(rawPath.slice(q + 1)) ? 'watch' : 'list';
  if (info.verb === 'delete' && !info.name) info.verb = 'deletecollection';
  return info;
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

const DOT_SEGMENT = /(?:^|\/)\.{1,2}(?:\/|$)/;
const SUSPECT_CHARACTER = /[\u0000-\u001f\u007f\\]/;

/**
 * Why a request path must not be forwarded, or undefined when it may. API clients never send dot
 * segments or encoded slashes; a server or proxy that normalises them would serve another request
 * than the one kport checked and audited (`/api/v1/namespaces/x/pods/../../secrets`).
 */
export function unsafePathReason(rawPath: string): string | undefined {
  const q = rawPath.indexOf('?');
  const path = q < 0 ? rawPath : rawPath.slice(0, q);
  if (!path.startsWith('/')) return 'the request path must start with "/"';
  // Almost every path has nothing encoded and nothing suspect: one scan instead of a decode per segment.
  if (!path.includes('%') && !DOT_SEGMENT.test(path) && !SUSPECT_CHARACTER.test(path)) return undefined;
  for (const segment of path.split('/')) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      return `the path segment "${segment}" is not valid percent-encoding`;
    }
    if (decoded === '.' || decoded === '..') return `the path has a dot segment ("${segment}"), which API clients never send`;
    if (decoded.includes('/') || decoded.includes('\\')) return `the path segment "${segment}" encodes a slash, which API clients never send`;
    if (/[\u0000-\u001f\u007f]/.test(decoded)) return `the path segment "${segment}" encodes a control character`;
  }
  return undefined;
}

const LONG_QUERY = /(?:^|&)(?:watch|follow)=(?:1|true)(?:&|$)/;
const LONG_PATH = /^\/(?:api\/[^/]+|apis\/[^/]+\/[^/]+)\/watch\/|\/(?:proxy|exec|attach|portforward)(?:\/|$)/;

/**
 * Whether a request stays open for as long as the client wants: a watch, a followed log, a proxied
 * stream or a session (the apiserver's long-running requests, and logs with follow).
 */
export function isLongRunning(rawPath: string): boolean {
  const q = rawPath.indexOf('?');
  if (q >= 0 && LONG_QUERY.test(rawPath.slice(q + 1))) return true;
  return LONG_PATH.test(q < 0 ? rawPath : rawPath.slice(0, q));
}
