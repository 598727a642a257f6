// The admin HTTP API (loopback by default): /health, /ready, /metrics, plus routes that
// other modules mount (e.g. /v1/instances). An optional bearer token guards all but /health.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '../log.ts';
import type { Registry } from './metrics.ts';
import { errorMessage } from '../util/error-message.ts';

export interface ReadinessCheck {
  ready: boolean;
  /** Shown in /ready; a ready module may still report a degraded state here. */
  detail: Record<string, unknown>;
}

export interface AdminRequest {
  method: string;
  path: string;
  /** Path segments after the route's prefix. */
  params: string[];
  query: URLSearchParams;
  body: () => Promise<string>;
}

export interface AdminResponse {
  status: number;
  body: unknown;
  contentType?: string;
  /** Instead of `body`: the text in pieces, written as they come (a big answer never blocks the thread whole). */
  stream?: AsyncIterable<string>;
}

export type RouteHandler = (req: AdminRequest) => Promise<AdminResponse> | AdminResponse;

export interface AdminServerOptions {
  address: string;
  port: number;
  token?: string;
  metrics: Registry;
  logger: Logger;
}

const MAX_BODY = 1024 * 1024;
/** How much past MAX_BODY is still read (and dropped) so the 413 reaches the client. */
const DRAIN_LIMIT = 16 * MAX_BODY;

export class AdminServer {
  private server: Server | null = null;
  private readonly checks = new Map<string, () => ReadinessCheck>();
  private readonly routes: Array<{ prefix: string; handler: RouteHandler }> = [];
  port = 0;

  constructor(private readonly options: AdminServerOptions) {
    this.route('/health', () => ({ status: 200, body: { status: 'ok' } }));
    this.route('/ready', () => this.readiness());
    this.route('/metrics', async () => ({ status: 200, body: await options.metrics.render(), contentType: options.metrics.contentType }));
  }

  addReadinessCheck(name: string, check: () => ReadinessCheck): void {
    this.checks.set(name, check);
  }

  /** Mounts a handler for a path and everything below it (`/v1/instances` → `/v1/instances/:id`). */
  route(prefix: string, handler: RouteHandler): void {
    this.routes.push({ prefix, handler });
    this.routes.sort((a, b) => b.prefix.length - a.prefix.length);
  }

  private readiness(): AdminResponse {
    const modules = Object.fromEntries([...this.checks].map(([name, check]) => [name, check()]));
    const ready = Object.values(modules).every((m) => m.ready);
    return { status: ready ? 200 : 503, body: { ready, modules } };
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      this.dispatch(req, res).catch((err: unknown) => {
        this.options.logger.error({ err: errorMessage(err) }, 'admin request failed');
        if (!res.headersSent) send(res, { status: 500, body: { error: 'internal error' } });
      });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.address, () => resolve());
    });
    const address = server.address();
    this.port = typeof address === 'object' && address ? address.port : this.options.port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const route = this.routes.find((r) => path === r.prefix || path.startsWith(`${r.prefix}/`));
    if (!route) {
      send(res, { status: 404, body: { error: `no such endpoint: ${path}` } });
      return;
    }
    const { token } = this.options;
    if (token && route.prefix !== '/health' && !bearerMatches(req.headers.authorization, token)) {
      send(res, { status: 401, body: { error: 'missing or wrong bearer token' } });
      return;
    }
    let params: string[];
    try {
      params = path.slice(route.prefix.length).split('/').filter(Boolean).map(decodeURIComponent);
    } catch {
      send(res, { status: 400, body: { error: `malformed percent-encoding in ${path}` } });
      return;
    }
    const body = () => readBody(req);
    const response = await route.handler({ method: req.method ?? 'GET', path, params, query: url.searchParams, body });
    if (response.stream) await sendStream(res, response.status, response.contentType ?? 'application/json', response.stream);
    else send(res, response);
  }
}

/**
 * The body, up to MAX_BODY. Past it the rest is read and dropped, so the client gets the
 * 413 naming the limit instead of a cut connection; a sender that goes on far past it is cut off.
 */
function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > DRAIN_LIMIT) req.destroy();
      else if (size <= MAX_BODY) chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > MAX_BODY) reject(new Error(`request body of ${size} bytes is over the limit of ${MAX_BODY} bytes`));
      else resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', reject);
  });
}

function send(res: ServerResponse, response: AdminResponse): void {
  const text = typeof response.body === 'string' ? response.body : JSON.stringify(response.body, null, 2) + '\n';
  res.writeHead(response.status, { 'content-type': response.contentType ?? 'application/json' });
  res.end(text);
}

async function sendStream(res: ServerResponse, status: number, contentType: string, pieces: AsyncIterable<string>): Promise<void> {
  res.writeHead(status, { 'content-type': contentType });
  for await (const piece of pieces) {
    if (res.destroyed) return;
    if (!res.write(piece)) await new Promise<void>((resolve) => {
      res.once('drain', resolve);
      res.once('close', resolve);
    });
  }
  res.end();
}

/** Whether an Authorization header carries the token, compared in constant time. */
function bearerMatches(header: string | undefined, token: string): boolean {
  // Digests are of equal length, so neither the token's length nor a matching prefix shows in the time taken.
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(header ?? ''), digest(`Bearer ${token}`));
}
