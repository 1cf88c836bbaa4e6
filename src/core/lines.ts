// Text lines out of a byte stream, holding at most one chunk and one unfinished line: what streams a
// recording (kport play) or a watch never has the whole body in memory.

export class LineTooLong extends Error {}

/**
 * Each line of `chunks`, without its `\n`, as UTF-8 (a character split across two chunks is decoded
 * whole). A last line without `\n` is given too. Stops with LineTooLong when one line grows past
 * `maxLine` characters, so a peer that never sends a newline cannot fill this process's memory.
 * Reads `chunks` only as lines are asked for: a reader that waits, waits the stream.
 */
export async function* splitLines(chunks: AsyncIterable<Buffer | Uint8Array>, maxLine = Number.POSITIVE_INFINITY): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8');
  let partial = '';
  for await (const chunk of chunks) {
    const text = decoder.decode(chunk, { stream: true });
    let start = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
      const line = partial + text.slice(start, nl);
      if (line.length > maxLine) throw new LineTooLong(`a line longer than ${maxLine} characters`);
      partial = '';
      start = nl + 1;
      yield line;
    }
    partial += text.slice(start);
    if (partial.length > maxLine) throw new LineTooLong(`a line longer than ${maxLine} characters`);
  }
  partial += decoder.decode();
  if (partial) yield partial;
}
