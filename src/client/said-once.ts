import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeSecretFile } from '../core/secret-file.ts';

/**
 * How long a failure said to one process stays said. kubectl runs its exec plugin (`kport kube
 * credentials`) for each call of one command, five for discovery alone, and shows the plugin's
 * stderr each time: an expired login read five times. A command's calls come within seconds; a
 * process id is not reused that fast.
 */
const SAID_FOR_MS = 30_000;

const Said = z.object({ parent: z.number(), message: z.string(), at: z.number() });

/**
 * Whether `message` is new to process `parent` (kubectl, running this as its exec plugin), and if
 * so, remembers it. The record is a 0600 file in the kport home, a directory only its owner may
 * write (commands check it), so no one else can silence a message; it holds a hash of the message,
 * the parent's pid and the time, nothing secret. Without a kport home, everything is new.
 */
export function firstTimeSaid(home: string, parent: number, message: string, now: number): boolean {
  if (!existsSync(home)) return true;
  const path = join(home, 'exec-plugin-said.json');
  const hash = createHash('sha256').update(message).digest('hex');
  let kept: z.infer<typeof Said> | undefined;
  try {
    const parsed = Said.safeParse(JSON.parse(readFileSync(path, 'utf8')));
    if (parsed.success) kept = parsed.data;
  } catch {}
  if (kept && kept.parent === parent && kept.message === hash && now - kept.at >= 0 && now - kept.at < SAID_FOR_MS) return false;
  try {
    writeSecretFile(path, JSON.stringify({ parent, message: hash, at: now }));
  } catch {
    // Not remembered: said again next time, which is only noisy.
  }
  return true;
}
