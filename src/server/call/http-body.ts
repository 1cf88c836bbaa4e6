import { constants as h2, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { ApiError } from '../../api/errors.ts';
import type { BodyBudget } from './limits.ts';

/**
 * A JSON body of at most `limit` bytes, its bytes held against `budget` while it is read. With
 * `deadlineMs`, the whole body must have come within that long (else 408): a body sent a byte at a
 * time would otherwise hold its share of the budget until the connection's idle timeout.
 */
export async function readJson(req: Http2ServerRequest, limit: number, budget: BodyBudget, opts: { deadlineMs?: number } = {}): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  // Not destroyed on a refusal: the refusal is still to be answered on this stream.
  const body = (req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  let timer: NodeJS.Timeout | undefined;
  const late =
    opts.deadlineMs === undefined
      ? undefined
      : new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new ApiError('too_slow', `this request body must arrive within ${opts.deadlineMs! / 1000} s: send it all at once`)),
            opts.deadlineMs,
          );
        });
  try {
    for (;;) {
      const pending = body.next();
      // Left waiting when the deadline passes: its later end or error is nobody's business.
      pending.catch(() => undefined);
      const next = await (late ? Promise.race([pending, late]) : pending);
      if (next.done) break;
      const chunk = next.value;
      if (size + chunk.length > limit) throw new ApiError('too_large', `this request body is at most ${limit} bytes`);
      if (!budget.reserve(chunk.length)) throw new ApiError('busy', 'the server is reading too many requests at once: try again in a few seconds');
      size += chunk.length;
      chunks.push(chunk);
    }
  } finally {
    clearTimeout(timer);
    budget.release(size);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
  } catch {
    throw new ApiError('bad_request', 'the request body is not JSON');
  }
}

/** The answer; a body still coming (refused before it was read) is cut off, not read to its end. */
export function send(res: Http2ServerResponse, status: number, body: unknown, req?: Http2ServerRequest): void {
  const text = JSON.stringify(body);
  const unread = req !== undefined && !req.complete;
  // HTTP/1.1 cannot stop one request's body but by closing the connection after the answer.
  if (unread && !req.stream) res.setHeader('connection', 'close');
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
  if (unread && req.stream && !req.stream.closed) req.stream.close(h2.NGHTTP2_NO_ERROR);
}
