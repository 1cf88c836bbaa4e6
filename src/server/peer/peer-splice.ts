import { constants, type ClientHttp2Stream, type ServerHttp2Stream } from 'node:http2';
import type { OutgoingHttpHeaders } from 'node:http';

/**
 * Pipes a peer's stream (`down`) to the agent's tunnel stream (`up`) and back, both directions with
 * backpressure: the response's headers, body and trailers as the agent sent them, and a reset on
 * either side passed to the other, so the person's server sees the agent's stream as if it were its
 * own. Nothing is decided here: the person's server authorised, audited and signed the request.
 */
export function splice(down: ServerHttp2Stream, up: ClientHttp2Stream, requestEnded: boolean): void {
  let trailers: OutgoingHttpHeaders | undefined;
  down.on('error', () => {});
  up.on('error', () => {});
  if (!requestEnded) down.pipe(up);
  up.once('response', (headers) => {
    if (down.closed) return;
    const out: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(headers)) if (name === ':status' || name.charCodeAt(0) !== 58) out[name] = value;
    down.respond(out, { waitForTrailers: true });
    up.pipe(down);
  });
  up.once('trailers', (sent) => (trailers = Object.fromEntries(Object.entries(sent).filter(([name]) => name.charCodeAt(0) !== 58))));
  // No trailers: node sends an empty DATA frame that ends the stream. (Closing it with RST_STREAM
  // NO_ERROR instead left the caller's stream neither ended nor closed after an earlier stream.)
  down.once('wantTrailers', () => down.sendTrailers(trailers ?? {}));
  up.once('close', () => {
    // Ended with a reset (the tunnel lost, the agent cancelled): the same reset, so the person's server knows it broke.
    const code = up.rstCode ?? constants.NGHTTP2_NO_ERROR;
    if (!down.closed && (code !== constants.NGHTTP2_NO_ERROR || !down.headersSent))
      down.close(code === constants.NGHTTP2_NO_ERROR ? constants.NGHTTP2_INTERNAL_ERROR : code);
  });
  down.once('close', () => {
    if (!up.closed) up.close(down.rstCode || constants.NGHTTP2_CANCEL);
  });
}
