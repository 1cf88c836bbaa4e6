import { Agent, fetch } from 'undici';

/**
 * A "browser" of plain HTTP requests for OIDC tests: it keeps cookies (by name and path), follows
 * redirects one at a time, and submits the provider's own login and consent forms. No mock: every
 * page comes from the real provider and the real kport endpoints.
 */
export class Browser {
  readonly #dispatcher: Agent;
  readonly #cookies = new Map<string, { name: string; value: string; path: string; host: string }>();
  /** Every URL visited, in order (redirects included). */
  readonly visited: string[] = [];

  constructor(cas: string[]) {
    this.#dispatcher = new Agent({ connect: { ca: cas } });
  }

  close(): Promise<void> {
    return this.#dispatcher.close();
  }

  async request(url: string, form?: Record<string, string>): Promise<{ url: string; status: number; location?: string; body: string }> {
    const target = new URL(url);
    this.visited.push(url);
    const cookie = [...this.#cookies.values()]
      .filter((c) => c.host === target.host && target.pathname.startsWith(c.path))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
    const res = await fetch(url, {
      method: form ? 'POST' : 'GET',
      redirect: 'manual',
      dispatcher: this.#dispatcher,
      headers: { ...(cookie && { cookie }), ...(form && { 'content-type': 'application/x-www-form-urlencoded' }), accept: 'text/html' },
      ...(form && { body: new URLSearchParams(form).toString() }),
    });
    for (const line of res.headers.getSetCookie()) this.#store(target, line);
    const location = res.headers.get('location');
    return { url, status: res.status, body: await res.text(), ...(location && { location: new URL(location, url).href }) };
  }

  #store(from: URL, line: string): void {
    const [pair, ...attributes] = line.split(';').map((s) => s.trim());
    const eq = pair!.indexOf('=');
    const name = pair!.slice(0, eq);
    const value = pair!.slice(eq + 1);
    let path = '/';
    let expired = value === '';
    for (const attribute of attributes) {
      const [key, val = ''] = attribute.split('=');
      if (key!.toLowerCase() === 'path') path = val;
      if (key!.toLowerCase() === 'max-age' && Number(val) <= 0) expired = true;
      if (key!.toLowerCase() === 'expires' && Date.parse(val) < Date.now()) expired = true;
    }
    const id = `${from.host} ${path} ${name}`;
    if (expired) this.#cookies.delete(id);
    else this.#cookies.set(id, { name, value, path, host: from.host });
  }

  /**
   * Opens `url` and goes on as a person would: follows redirects, signs in as `login` on the
   * provider's login page, continues on its consent page. Stops before visiting a URL `stopAt`
   * accepts (returned as `stoppedAt`), or at the first page that is neither a redirect nor a form.
   */
  async signIn(
    url: string,
    login: string,
    stopAt: (url: string) => boolean = () => false,
  ): Promise<{ stoppedAt?: string; last: { url: string; status: number; body: string } }> {
    let next: { url: string; form?: Record<string, string> } | undefined = { url };
    for (let step = 0; step < 20 && next; step++) {
      if (stopAt(next.url)) return { stoppedAt: next.url, last: { url: next.url, status: 0, body: '' } };
      const page = await this.request(next.url, next.form);
      if (page.location && page.status >= 300 && page.status < 400) {
        next = { url: page.location };
        continue;
      }
      const action = /<form[^>]*action="([^"]+)"/.exec(page.body)?.[1]?.replaceAll('&amp;', '&').replaceAll('&#x2F;', '/');
      const prompt = /name="prompt" value="(login|consent)"/.exec(page.body)?.[1];
      if (page.status !== 200 || !action || !prompt) return { last: page };
      next = { url: new URL(action, page.url).href, form: prompt === 'login' ? { prompt, login, password: 'any password' } : { prompt } };
    }
    throw new Error(`signing in did not end after 20 steps; visited:\n${this.visited.join('\n')}`);
  }
}
