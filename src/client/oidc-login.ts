import { createServer, type ServerResponse } from 'node:http';
import { routes, type RequestOf, type ResponseOf, type Route } from '../api/routes.ts';
import { UserError } from '../core/errors.ts';

/** How long kport login waits for the browser to come back from the identity provider. */
export const BROWSER_WAIT_MS = 3 * 60_000;
const CALLBACK_PATH = '/callback';

export interface OidcLoginDeps {
  /**
   * One call of a login route (loginCall over ServerClient.call); a refusal throws its one sentence.
   * The answers are read here with the routes' schemas too (a test's transport may not check them).
   */
  post<R extends Route>(route: R, body: RequestOf<R>): Promise<unknown>;
  /** A certificate request for the key this login will hold. */
  csr: string;
  /** `none` prints the URL instead of opening a browser (a remote shell, a headless machine). */
  browser: 'default' | 'none';
  /** Where the URL and progress go (stderr: stdout is data). */
  say(line: string): void;
  /** Opens a URL in the person's browser; by default xdg-open (open on macOS) through execa. */
  openBrowser?: (url: string) => Promise<void>;
  waitMs?: number;
  signal?: AbortSignal;
}

type Begun = ResponseOf<typeof routes.oidcBegin>;

/**
 * `kport login --auth oidc`, the way `tsh login` does SSO: a listener on a random loopback port,
 * the server's login URL in the browser, and, when the browser comes back to the listener with
 * this login's attempt and one-time code, the finish call whose answer (the Identity: user,
 * roles, certificate) is returned. The browser is told the outcome in a small page.
 */
export async function oidcLogin(deps: OidcLoginDeps): Promise<unknown> {
  const waitMs = deps.waitMs ?? BROWSER_WAIT_MS;
  let begun: Begun | undefined;
  let settle!: { resolve: (identity: unknown) => void; reject: (err: unknown) => void };
  const done = new Promise<unknown>((resolve, reject) => (settle = { resolve, reject }));
  let finishing = false;

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const attempt = url.searchParams.get('attempt');
    const code = url.searchParams.get('code');
    // Only this login's redirect counts; anything else (a favicon, a stray tab) is turned away.
    if (req.method !== 'GET' || url.pathname !== CALLBACK_PATH || !begun || attempt !== begun.attempt || !code || finishing) {
      return page(res, 404, 'Not this login', 'This address is waiting for one kport login; nothing else is here.');
    }
    finishing = true;
    void deps.post(routes.oidcFinish, { attempt: begun.attempt, secret: begun.secret, code }).then(
      (identity) => {
        page(res, 200, 'Logged in', 'kport has your certificate: you can close this window and go back to the terminal.');
        settle.resolve(identity);
      },
      (err: unknown) => {
        page(res, 403, 'Login refused', (err as Error).message);
        settle.reject(err);
      },
    );
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as { port: number };
  const timer = setTimeout(
    () =>
      settle.reject(
        new UserError(
          `the browser did not come back from the identity provider within ${waitMs % 60_000 === 0 ? `${waitMs / 60_000} minutes` : `${Math.round(waitMs / 1000)} seconds`}: run kport login --auth oidc again (--browser none prints the URL to open yourself).`,
        ),
      ),
    waitMs,
  );
  const aborted = () => settle.reject(new UserError('kport login was interrupted before the browser came back.', 130));
  deps.signal?.addEventListener('abort', aborted, { once: true });
  try {
    const request: RequestOf<typeof routes.oidcBegin> = { csr: deps.csr, redirect_uri: `http://127.0.0.1:${port}${CALLBACK_PATH}` };
    const answer = routes.oidcBegin.response.safeParse(await deps.post(routes.oidcBegin, request));
    begun = answer.success ? answer.data : undefined;
    if (!begun || !/^https?:\/\//.test(begun.auth_url))
      throw new UserError('the kport server answered the OIDC login without a login URL: check that it is a kport server of this version.');
    await show(deps, begun.auth_url);
    return await done;
  } finally {
    clearTimeout(timer);
    deps.signal?.removeEventListener('abort', aborted);
    server.closeAllConnections();
    server.close();
  }
}

async function show(deps: OidcLoginDeps, url: string): Promise<void> {
  if (deps.browser === 'none') {
    deps.say(`Open this URL in a browser on this machine to log in:\n  ${url}`);
    return;
  }
  try {
    await (deps.openBrowser ?? openBrowser)(url);
    deps.say(`Opened the browser to log in; if it did not open, visit:\n  ${url}`);
  } catch {
    deps.say(`Could not open a browser; open this URL in one on this machine to log in:\n  ${url}`);
  }
}

/** xdg-open (open on macOS), detached: the browser outlives kport. */
async function openBrowser(url: string): Promise<void> {
  const { execa } = await import('execa');
  const child = execa(process.platform === 'darwin' ? 'open' : 'xdg-open', [url], { detached: true, stdio: 'ignore', reject: true });
  // A missing opener fails at once (ENOENT); a running one is left to itself.
  await Promise.race([child.then(() => undefined), new Promise<void>((resolve) => setTimeout(resolve, 1000).unref())]);
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function page(res: ServerResponse, status: number, title: string, message: string): void {
  const body = `<!doctype html><html><head><meta charset="utf-8"><title>kport: ${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p></body></html>`;
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'content-security-policy': "default-src 'none'",
  });
  res.end(body);
}
