import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const KPORT = fileURLToPath(new URL('../bin/kport.js', import.meta.url));

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Wall time of a whole kport process, in ms, `runs` times. */
export function timeProcess(args: string[], env: NodeJS.ProcessEnv, runs: number): number[] {
  return timeCommand(process.execPath, [KPORT, ...args], env, runs);
}

/** Wall time of any command, in ms, `runs` times. */
export function timeCommand(command: string, args: string[], env: NodeJS.ProcessEnv, runs: number): number[] {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    execFileSync(command, args, { env, stdio: ['ignore', 'ignore', 'inherit'] });
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return times;
}

export function row(cells: Array<string | number>): string {
  return `| ${cells.map((c) => (typeof c === 'number' ? c.toFixed(c < 10 ? 2 : 0) : c)).join(' | ')} |`;
}

/** A process's CPU time so far and its resident memory, from /proc. */
export function procStat(pid: number): { cpuMs: number; rssMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const ticks = Number(stat[11]) + Number(stat[12]);
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
  return { cpuMs: (ticks * 1000) / 100, rssMiB: rss };
}
