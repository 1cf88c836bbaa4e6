import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic } from './atomic-write.ts';
import { checkTrusted } from './file-trust.ts';

/**
 * Writes a file that holds a secret (a key, a credential, a kubeconfig with a client key): 0600, in a
 * directory made 0700, written aside and renamed into place so a crash never leaves half of it. A
 * directory that belongs to another user is refused before anything is changed in it: it is theirs
 * to read, and chmod would not make it ours.
 */
export function writeSecretFile(path: string, text: string): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Only whose it is: one others can write is made 0700 below, as before.
  checkTrusted(dir, { what: 'the directory', harm: `replace ${path}` }, { ownerOnly: true });
  chmodSync(dir, 0o700);
  writeFileAtomic(path, text, { mode: 0o600 });
}
