// Idle `kubectl exec -it` sessions held open through the server (issue 21): WebSocket
// v5.channel.k8s.io (kubectl's default) from raw ws clients with the person's certificate, through a
// server and agent of their own (fresh processes, so the memory measured is the sessions'), to a kwok
// pod whose exec runs `sh` on this machine. Each session is shown to be live (a command's output comes
// back) before it is counted; then they idle while the server's and agent's RSS are read.
import WebSocket from 'ws';
import type { KubeApiserver } from '../test/peers/kube.ts';
import { clusterExec, startKwok } from '../test/peers/kwok.ts';
import { procStat } from './lib.ts';
import { startServerPath } from './server-path.ts';

const STDIN = 0;
const STDOUT = 1;

function openSession(url: string, tls: { ca: Buffer; cert: Buffer; key: Buffer }, i: number): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['v5.channel.k8s.io'], { ...tls });
    let out = '';
    const timer = setTimeout(() => reject(new Error(`exec session ${i}: no output in 30 s (${JSON.stringify(out)})`)), 30_000);
    ws.on('error', reject);
    ws.on('unexpected-response', (_req, res) => reject(new Error(`exec session ${i}: HTTP ${res.statusCode}`)));
    ws.on('open', () => {
      // The tty echoes what is typed: look for the shell's arithmetic, not the command line.
      ws.send(Buffer.concat([Buffer.from([STDIN]), Buffer.from(`echo r$((1+1))x${i}\n`)]));
    });
    ws.on('message', (data: Buffer) => {
      if (data[0] === STDOUT) out += data.subarray(1).toString();
      if (out.includes(`r2x${i}`)) {
        clearTimeout(timer);
        ws.removeAllListeners('message');
        resolve(ws);
      }
    });
  });
}

/** Opens `count` exec -it sessions through a fresh server and agent; returns the result as Markdown. */
export async function holdExecSessions(api: KubeApiserver, count: number): Promise<string> {
  const kwok = await startKwok(api, [clusterExec()]);
  await kwok.createPod('default', 'idle');
  const path = await startServerPath(api);
  const pids = { server: path.server.proc!.pid!, agent: path.agent.pid! };
  const url = `${path.url.replace(/^https/, 'wss')}/api/v1/namespaces/default/pods/idle/exec?command=sh&stdin=true&stdout=true&tty=true`;
  try {
    // One session first and closed: code paths loaded and compiled before the baseline.
    (await openSession(url, path.tls, -1)).close();
    await new Promise((r) => setTimeout(r, 3000));
    const before = { server: procStat(pids.server).rssMiB, agent: procStat(pids.agent).rssMiB };
    const sessions: WebSocket[] = [];
    for (let i = 0; i < count; i += 10)
      sessions.push(...(await Promise.all(Array.from({ length: Math.min(10, count - i) }, (_, j) => openSession(url, path.tls, i + j)))));
    await new Promise((r) => setTimeout(r, 5000));
    const open = sessions.filter((s) => s.readyState === WebSocket.OPEN).length;
    const held = { server: procStat(pids.server).rssMiB, agent: procStat(pids.agent).rssMiB };
    for (const s of sessions) s.close();
    const per = (k: 'server' | 'agent') => ((held[k] - before[k]) * 1024) / count;
    return [
      `| idle exec -it sessions | open after 5 s | server RSS MiB before / holding | agent RSS MiB before / holding | per session KiB: server | agent | both |`,
      '|---|---|---|---|---|---|---|',
      `| ${count} | ${open} | ${before.server.toFixed(0)} / ${held.server.toFixed(0)} | ${before.agent.toFixed(0)} / ${held.agent.toFixed(0)} | ${per('server').toFixed(0)} | ${per('agent').toFixed(0)} | ${(per('server') + per('agent')).toFixed(0)} |`,
    ].join('\n');
  } finally {
    await path.stop();
    await kwok.stop();
  }
}
