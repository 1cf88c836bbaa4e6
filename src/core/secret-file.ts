import { chmodSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic } from './atomic-write.ts';
import { trustedPath } from './trusted-path.ts';

/**
 * Writes a file that holds a secret (a key, a credential, a kubeconfig with a client key): 0600, in a
 * directory made 0700, written aside and renamed into place so a crash never leaves half of it. A
 * directory that belongs to another user is refused before anything is changed in it: it is theirs
 * to read, and chmod would not make it ours.
 */
export function writeSecretFile(path: string, text: string): void {
  // Made through the checked path (trusted-path.ts); the directory itself only whose it is: one others can write is made 0700 below, as before.
  const dir = trustedPath(dirname(path), { what: 'the directory' }, { create: true });
  chmodSync(dir, 0o700);
  writeFileAtomic(join(dir, basename(path)), text, { mode: 0o600 });
}
