// auth_service.audit_sessions_uri, as Teleport spells it: `s3://bucket/prefix` and, for S3-compatible
// storage (MinIO, Ceph, moto), query parameters: region, endpoint (a URL, or host:port that
// insecure=true makes http), path_style (on by default with an endpoint, as Teleport does).
// Credentials are never in the URI: they come from the AWS SDK's default chain (environment,
// shared files, web identity, instance role).

export interface S3Location {
  bucket: string;
  /** Keys are `<prefix>/<session id>.cast`; '' puts them at the bucket's top. */
  prefix: string;
  region?: string;
  /** The S3 API's URL, for S3-compatible storage; AWS's own otherwise. */
  endpoint?: string;
  pathStyle: boolean;
  /** s3://bucket/prefix, for messages (the query left out). */
  where: string;
}

const PARAMS = ['region', 'endpoint', 'insecure', 'path_style', 'disablesse'];
/** S3's rules for a bucket's name: 3 to 63 lower-case letters, digits, dots and hyphens, a letter or digit at each end. */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** The location, or throws one sentence saying what is wrong and what a right one looks like. */
export function parseSessionsUri(text: string): S3Location {
  const example = 's3://BUCKET/PREFIX?region=us-east-1 (or with endpoint=http://HOST:PORT for S3-compatible storage)';
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`${JSON.stringify(text)} is not a URI: write ${example}`);
  }
  if (url.protocol !== 's3:')
    throw new Error(`kport stores recordings in S3-compatible storage only, and ${JSON.stringify(text)} is not an s3:// URI: write ${example}`);
  if (url.username || url.password)
    throw new Error(
      'audit_sessions_uri must not hold credentials: take them out and give them as the AWS SDK reads them (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ~/.aws, or the instance role)',
    );
  const bucket = url.hostname;
  if (!bucket) throw new Error(`${JSON.stringify(text)} names no bucket: write ${example}`);
  if (!BUCKET.test(bucket) || bucket.includes('..'))
    throw new Error(`${JSON.stringify(bucket)} is not an S3 bucket name (3 to 63 lower-case letters, digits, dots and hyphens)`);
  if (url.port) throw new Error(`${JSON.stringify(text)} has a port after the bucket: give the storage's address as endpoint=http://HOST:PORT`);
  if (url.hash) throw new Error(`${JSON.stringify(text)} has a #fragment, which means nothing here: take it out`);
  // The URL parser resolves . and .. away: the prefix as written is what is checked.
  const written = text.slice(`s3://${url.host}`.length).split(/[?#]/)[0] ?? '';
  const segments = decodeURIComponent(written)
    .split('/')
    .filter((s) => s !== '');
  if (segments.some((s) => s === '.' || s === '..')) throw new Error(`the prefix of ${JSON.stringify(text)} has a . or .. segment: name the prefix plainly`);
  const q = url.searchParams;
  for (const key of q.keys()) {
    if (!PARAMS.includes(key))
      throw new Error(`audit_sessions_uri has the parameter ${JSON.stringify(key)}, which kport does not know: use ${PARAMS.join(', ')}`);
    // get() would take the first silently: which one was meant is the writer's to say.
    if (q.getAll(key).length > 1) throw new Error(`audit_sessions_uri has the parameter ${JSON.stringify(key)} more than once: give it once`);
  }
  const flag = (name: string) => {
    const value = q.get(name);
    if (value === null) return undefined;
    if (value === 'true' || value === 'false') return value === 'true';
    throw new Error(`audit_sessions_uri's ${name} is true or false, not ${JSON.stringify(value)}`);
  };
  const insecure = flag('insecure') ?? false;
  const pathStyle = flag('path_style');
  flag('disablesse');
  const region = q.get('region') || undefined;
  if (region !== undefined && !/^[a-z0-9-]{1,64}$/.test(region))
    throw new Error(`audit_sessions_uri's region ${JSON.stringify(region)} is not a region name such as us-east-1`);
  const endpoint = q.get('endpoint') ? endpointUrl(q.get('endpoint')!, insecure) : undefined;
  const prefix = segments.join('/');
  return {
    bucket,
    prefix,
    ...(region && { region }),
    ...(endpoint && { endpoint }),
    pathStyle: pathStyle ?? endpoint !== undefined,
    where: `s3://${bucket}${prefix ? `/${prefix}` : ''}`,
  };
}

/** endpoint=http://host:port as it is; endpoint=host:port (Teleport's form) is https, or http with insecure=true. */
function endpointUrl(value: string, insecure: boolean): string {
  // Checked as written (the query already decoded %2F to /): the URL parser would resolve a path of
  // . and .. segments (or backslashes) away to /, and the check on its pathname below would pass it.
  const address = value.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').replace(/\/$/, '');
  if (/[/\\?#]/.test(address)) throw new Error(`audit_sessions_uri's endpoint ${JSON.stringify(value)} has a path: give the address alone (http://HOST:PORT)`);
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `${insecure ? 'http' : 'https'}://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new Error(`audit_sessions_uri's endpoint ${JSON.stringify(value)} is not an address: write endpoint=http://HOST:PORT`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`audit_sessions_uri's endpoint ${JSON.stringify(value)} is not http or https`);
  if (url.username || url.password) throw new Error("audit_sessions_uri's endpoint must not hold credentials: give them as the AWS SDK reads them");
  if ((url.pathname !== '/' && url.pathname !== '') || url.search)
    throw new Error(`audit_sessions_uri's endpoint ${JSON.stringify(value)} has a path: give the address alone (http://HOST:PORT)`);
  return url.origin;
}
