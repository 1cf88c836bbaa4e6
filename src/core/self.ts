import { resolve } from 'node:path';
import { isSea } from 'node:sea';

/**
 * How another program (kubectl running the exec plugin `kport kube credentials`) runs this very
 * kport again: by absolute path, as tsh writes its own, so nothing depends on PATH at kubectl's run.
 * Under Node that is node and the launcher; the single executable is the program itself, and Node
 * sets its argv[1] to the executable too, so passing argv[1] on would read as a command of that name
 * (`kport /x/kport kube credentials`: "unknown command").
 */
export function selfCommand(process: { execPath: string; argv: string[] } = globalThis.process, sea = isSea()): { command: string; args: string[] } {
  if (sea) return { command: process.execPath, args: [] };
  return { command: process.execPath, args: [resolve(process.argv[1] ?? 'kport')] };
}
