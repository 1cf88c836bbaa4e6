import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * What the gauges read when Prometheus scrapes (README "Diagnostics"): the server's own counts,
 * looked up then rather than kept twice. Set once the server's parts exist.
 */
export interface MetricSources {
  /** Reverse tunnels open to this server (every agent's, the in-process service's loopback too). */
  tunnels(): number;
  /** Kubernetes requests open through the server: upgrades (exec, attach, port-forward), watches, and the others in flight. */
  kubeOpen(): { upgrades: number; watches: number; requests: number };
  /** Audit events waiting for their batched store write (events/audit.ts). */
  auditQueue(): number;
}

/**
 * One server's Prometheus metrics, in a registry of its own (not prom-client's global one), so two
 * servers in one process, as tests run them, never share or collide on a metric. Names follow
 * Prometheus' conventions: `_total` counters, `_seconds` histograms, a `kport_` prefix.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly #requests: Counter<'route' | 'code'>;
  readonly #kube: Counter<'outcome'>;
  readonly #store: Histogram<'op' | 'outcome'>;
  #sources?: MetricSources;

  constructor() {
    // The process's CPU, memory, event-loop lag, handles and GC, as every Node exporter has them.
    collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    this.#requests = new Counter({
      name: 'kport_http_requests_total',
      help: 'API calls answered, by route (src/api/routes.ts; "unknown" for a path no route has) and HTTP status code.',
      labelNames: ['route', 'code'],
      registers,
    });
    this.#kube = new Counter({
      name: 'kport_kube_requests_total',
      help: 'Kubernetes requests through the proxy, by outcome: the status class answered (2xx, 3xx, 4xx, 5xx) or "aborted" when the connection ended first.',
      labelNames: ['outcome'],
      registers,
    });
    this.#store = new Histogram({
      name: 'kport_store_call_seconds',
      help: 'Store (backend) call latency, by operation and outcome (ok or error).',
      labelNames: ['op', 'outcome'],
      // From a local SQLite read (~0.1 ms) to an etcd call stuck behind an election (seconds).
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    const sources = () => this.#sources;
    new Gauge({
      name: 'kport_reverse_tunnels_open',
      help: 'Reverse tunnels open to this server.',
      registers,
      collect() {
        this.set(sources()?.tunnels() ?? 0);
      },
    });
    new Gauge({
      name: 'kport_kube_open_requests',
      help: 'Kubernetes requests open through this server: kind="upgrade" for exec, attach and port-forward sessions, kind="watch" for watches, kind="request" for the others in flight.',
      labelNames: ['kind'],
      registers,
      collect() {
        const open = sources()?.kubeOpen() ?? { upgrades: 0, watches: 0, requests: 0 };
        this.set({ kind: 'upgrade' }, open.upgrades);
        this.set({ kind: 'watch' }, open.watches);
        this.set({ kind: 'request' }, open.requests);
      },
    });
    new Gauge({
      name: 'kport_audit_queue_length',
      help: 'Audit events waiting for their batched store write.',
      registers,
      collect() {
        this.set(sources()?.auditQueue() ?? 0);
      },
    });
  }

  /** Where the gauges read from, once the server's parts exist. */
  watch(sources: MetricSources): void {
    this.#sources = sources;
  }

  /** An API call answered. */
  request(route: string, code: number): void {
    this.#requests.inc({ route, code: String(code) });
  }

  /** A Kubernetes request ended: with `code` answered, or aborted (undefined) before its answer. */
  kubeRequest(code: number | undefined): void {
    this.#kube.inc({ outcome: code === undefined ? 'aborted' : `${Math.floor(code / 100)}xx` });
  }

  /** A store call that took `seconds`. */
  storeCall(op: string, seconds: number, ok: boolean): void {
    this.#store.observe({ op, outcome: ok ? 'ok' : 'error' }, seconds);
  }

  /** The Prometheus text exposition and its content type. */
  async scrape(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
}
