// A server's diagnostics address (teleport.diag_addr): plain HTTP, as a load balancer's check or Prometheus reads it.
import { request } from 'node:http';

/** One GET (or `method`) to `host:port` + `path`: its status and body; a fresh connection each time. */
export function diagGet(
  address: string,
  path: string,
  opts: { method?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: string }> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method: opts.method ?? 'GET', headers: opts.headers ?? {}, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${address}${path} in 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** A sample's value in Prometheus text (`name{label="v",...}` exactly as exposed), or undefined when absent. */
export function metricValue(text: string, sample: string): number | undefined {
  for (const line of text.split('\n')) if (line.startsWith(`${sample} `)) return Number(line.slice(sample.length + 1));
  return undefined;
}
