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
  const query = q < 0 ? '' : rawPath.slice(q + 1);
  const parts = path.split('/').filter(Boolean);
  let rest: string[];
  if (parts[0] === 'api') rest = parts.slice(2);
  else if (parts[0] === 'apis') {
    info.apiGroup = parts[1] ?? '';
    rest = parts.slice(3);
  } else {
    info.verb = method.toLowerCase();
    return info;
  }
  if (rest[0] === 'watch') {
    info.verb = 'watch';
    rest = rest.slice(1);
  }
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    info.namespace = rest[1]!;
    rest = rest.slice(2);
  } else if (rest[0] === 'namespaces' && rest.length === 2) {
    info.namespace = rest[1]!;
  }
  info.resource = rest[0] ?? '';
  info.name = rest[1] ?? '';
  info.subresource = rest[2] ?? '';
  if (info.verb === 'get' && !info.name) info.verb = /(^|&)watch=(1|true)(&|$)/.test(query) ? 'watch' : 'list';
  if (info.verb === 'delete' && !info.name) info.verb = 'deletecollection';
  return info;
}
