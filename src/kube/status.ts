import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Http2ServerResponse, ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';

/**
 * kport's own answers (a refusal, an unknown or unreachable cluster), shaped so that kubectl, helm
 * and k9s print kport's sentence.
 *
 * client-go reads a Status body only where it decodes a result (typed calls, `kubectl get --raw`).
 * Discovery (`/api`, `/apis`, `/version`: the first thing kubectl, helm and k9s ask) takes the raw
 * result, whose error is made from the status code and, for 403 and 5xx but 503 and 504, a text/*
 * body's words (any other body reads "unknown"); other codes get client-go's own generic sentence.
 * So kport refuses with 403 and fails as a gateway with 502, as text/plain, which every client-go
 * path prints; a 400, whose words client-go drops even as text, carries a Status, read where
 * client-go decodes one (errors.NewGenericServerResponse, rest.Request.transformResponse).
 *
 * Tried with kubectl 1.32 and 1.34 (`get pods`, `get --raw`): a 404 or 503 Status reads "the server
 * could not find the requested resource" and "the server is currently unable to handle the request"
 * at discovery. So the server answers a cluster missing or not allowed with 403 ("Error from server
 * (Forbidden): kube_cluster "x" not found: ..."), and one no agent serves, or whose agents are busy,
 * with 502 ("an error on the server ("no agent serves x ...") has prevented the request from
 * succeeding"). An agent's own 404 (a cluster it does not serve) and 503 (one it cannot serve right
 * now) stay Status answers: the server routes only to agents whose heartbeat names the cluster.
 */
export type KportCode = 400 | 401 | 403 | 404 | 429 | 502 | 503;

const REASONS: Record<KportCode, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  429: 'TooManyRequests',
  502: 'BadGateway',
  503: 'ServiceUnavailable',
};

/** Whether client-go keeps a text body's words for this code on every path (errors.NewGenericServerResponse). */
function textCarries(code: KportCode): boolean {
  return code === 403 || code === 502;
}

const statusJson = (code: KportCode, message: string) =>
  JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: REASONS[code], code });

export function statusAnswer(code: KportCode, message: string): { contentType: string; body: string } {
  if (textCarries(code)) return { contentType: 'text/plain; charset=utf-8', body: `${message}\n` };
  return { contentType: 'application/json', body: statusJson(code, message) };
}

export function sendStatus(res: ServerResponse | Http2ServerResponse, code: KportCode, message: string): void {
  const { contentType, body } = statusAnswer(code, message);
  (res as ServerResponse).writeHead(code, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export function respondStatus(stream: ServerHttp2Stream, code: KportCode, message: string): void {
  const { contentType, body } = statusAnswer(code, message);
  stream.respond({ ':status': code, 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  stream.end(body);
}

/**
 * On a socket whose upgrade request is refused: the HTTP/1.1 response written by hand, then closed.
 * Always a Status: the upgrades are exec, attach and port-forward, and client-go's SPDY upgrade
 * (which kubectl falls back to after a refused WebSocket one) decodes the body as a Status, reading
 * a text one as an empty Status: kubectl printed "Error from server: " and nothing else.
 */
export function rawStatus(socket: Duplex, code: KportCode, message: string): void {
  const body = statusJson(code, message);
  const contentType = 'application/json';
  socket.end(
    `HTTP/1.1 ${code} ${STATUS_CODES[code]}\r\ncontent-type: ${contentType}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}
