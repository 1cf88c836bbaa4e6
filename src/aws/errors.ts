import { describeConnectError } from '../core/net-errors.ts';

/** What kport needs to know about a failed AWS call, whatever shape the SDK gave it. */
export interface AwsFailure {
  kind: 'access-denied' | 'throttled' | 'credentials' | 'not-found' | 'other';
  status?: number;
  message: string;
}

const THROTTLING = new Set(['ThrottlingException', 'Throttling', 'TooManyRequestsException', 'RequestLimitExceeded', 'ThrottledException', 'SlowDown']);
const CREDENTIALS = new Set([
  'CredentialsProviderError',
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
]);

export function classifyAwsError(err: unknown): AwsFailure {
  const e = err as {
    name?: string;
    message?: string;
    $metadata?: { httpStatusCode?: number };
    $response?: { statusCode?: number };
    $responseBodyText?: string;
    $kportEndpoint?: string;
  };
  const status = e.$metadata?.httpStatusCode ?? e.$response?.statusCode;
  // Some emulators (moto) answer JSON APIs with an XML error body the SDK cannot parse.
  const xml = e.$responseBodyText?.match(/<Code>([^<]+)<\/Code>[\s\S]*?<Message>([^<]*)<\/Message>/);
  const name = xml?.[1] ?? e.name ?? 'Error';
  let message = (xml?.[2] ?? e.message ?? String(err)).trim();
  // The SDK's words for a body it could not read ("Deserialization error: to see the raw response,
  // inspect the hidden field {error}.$response", or a bare "UnknownError") help nobody.
  if (
    !xml &&
    status !== undefined &&
    (/hidden field|Deserialization error/i.test(message) || /^Unknown(Error)?$/.test(name) || message === name || message === '')
  ) {
    message = `AWS answered HTTP ${status} (not an AWS error document)${e.$kportEndpoint ? ` from ${e.$kportEndpoint}` : ''}`;
  }
  const connect = status === undefined ? describeConnectError(err) : undefined;
  if (connect) message = `cannot reach AWS: ${connect}`;
  if (THROTTLING.has(name) || status === 429) return { kind: 'throttled', status, message };
  if (CREDENTIALS.has(name) || (status === 403 && /security token|access key|signature/i.test(message))) return { kind: 'credentials', status, message };
  if (/AccessDenied|UnauthorizedOperation|AuthorizationError/i.test(name) || status === 403) return { kind: 'access-denied', status, message };
  if (name === 'ResourceNotFoundException' || status === 404) return { kind: 'not-found', status, message };
  return { kind: 'other', status, message };
}

/** For AccessDenied, the IAM action the message names ("... not authorized to perform: eks:ListClusters ..."). */
export function missingAction(message: string): string | undefined {
  return message.match(/perform:?\s+([a-z0-9-]+:[A-Za-z0-9]+)/)?.[1];
}
