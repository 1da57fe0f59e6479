/**
 * Web-standard adapter: sessions for any `Request` → `Response` handler (Next.js route handlers, Bun.serve,
 * Deno.serve, Cloudflare-style fetch handlers), and a Hono middleware. This file uses Web APIs only. The
 * session is saved before the `Response` is handed back; a `ReadableStream` body is streamed, never buffered.
 *
 * @example
 * import { withSession } from 'tessera/web'
 *
 * // Next.js: app/count/route.ts (Bun: Bun.serve({ fetch: handler }); Deno: Deno.serve(handler))
 * export const GET = withSession(sessions, (request, session) => {
 *   const visits = (session.get('visits') ?? 0) + 1
 *   session.set('visits', visits)
 *   return Response.json({ visits })
 * })
 *
 * @module
 */
import type { MiddlewareHandler } from 'hono'
import { isSessionError } from '../errors.js'
import type { CommitResult, SessionManager, SessionRequest } from '../manager.js'
import type { Session } from '../session.js'
import { withVary } from '../vary.js'

/**
 * What the manager needs to know about a `Request`; the URL's scheme says whether it came over TLS. `ip` is
 * the peer's address when the runtime offers it (Bun: `server.requestIP(request)?.address`), kept at login.
 */
export function sessionRequestOf(request: Request, ip?: string): SessionRequest {
  const url = new URL(request.url)
  const header = (name: string) => request.headers.get(name) ?? undefined
  return {
    cookie: header('cookie'),
    encrypted: url.protocol === 'https:',
    forwardedProto: header('x-forwarded-proto'),
    host: header('host') ?? url.host,
    userAgent: header('user-agent'),
    ip,
    forwardedFor: header('x-forwarded-for'),
    header,
    url: url.pathname + url.search,
  }
}

/** Loads the session of `request`. @throws {StoreError} when the store fails. */
export function loadSession<Data extends object>(
  manager: SessionManager<Data>,
  request: Request,
  ip?: string,
): Promise<Session<Data>> {
  return manager.load(sessionRequestOf(request, ip))
}

/**
 * Saves `session` and resolves a new `Response` like `response` with the session's headers added, its body
 * passed through untouched. A `101` (WebSocket upgrade) is returned as it is: it cannot carry new headers.
 *
 * @throws {StoreError} when the store fails; `response` is then not to be sent.
 */
export async function commitSession<Data extends object>(
  manager: SessionManager<Data>,
  session: Session<Data>,
  response: Response,
): Promise<Response> {
  const result = await manager.commit(session)
  if (response.status === 101) return response
  const headers = new Headers(response.headers)
  applyCommit(headers, result)
  const { status, statusText } = response
  return new Response(response.body, { status, statusText, headers })
}

/** Puts a commit's headers on `headers`: Set-Cookie appended, Cookie (or the token header) merged into Vary. */
export function applyCommit(headers: Headers, result: CommitResult): void {
  for (const cookie of result.setCookie) headers.append('set-cookie', cookie)
  if (result.token !== undefined) headers.set('session-token', result.token)
  if (result.referrerPolicy !== undefined) headers.set('referrer-policy', result.referrerPolicy)
  if (result.cacheControl !== undefined) headers.set('cache-control', result.cacheControl)
  if (result.vary !== undefined) {
    const vary = withVary(headers.get('vary') ?? '', result.vary)
    if (vary !== undefined) headers.set('vary', vary)
  }
}

/** Options of {@link withSession} and {@link honoSession}. */
export interface WebSessionOptions<Rest extends unknown[] = []> {
  /** The peer's address, when the runtime offers it (Deno: `(_request, info) => info.remoteAddr.hostname`). */
  ip?: (request: Request, ...rest: Rest) => string | undefined
  /** withSession: answers a session error. The default answers its `status` (503 for a store outage). */
  onError?: (error: unknown, request: Request) => Response | Promise<Response>
}

/**
 * Wraps a `Request` → `Response` handler: the session is loaded before it runs and committed onto the
 * `Response` it returns. Arguments after the request (Next.js's `{ params }`, Deno's `info`, Bun's `server`)
 * are passed on. tessera's errors (a store outage: 503) are answered by `onError`; any other error
 * the handler throws goes on to the runtime, and the session's changes are dropped.
 */
export function withSession<Data extends object, Rest extends unknown[] = []>(
  manager: SessionManager<Data>,
  handler: (request: Request, session: Session<Data>, ...rest: Rest) => Response | Promise<Response>,
  options: WebSessionOptions<Rest> = {},
): (request: Request, ...rest: Rest) => Promise<Response> {
  const onError = options.onError ?? errorResponse
  return async (request, ...rest) => {
    let response: Response | undefined
    try {
      const session = await loadSession(manager, request, options.ip?.(request, ...rest))
      response = await handler(request, session, ...rest)
      return await commitSession(manager, session, response)
    } catch (error) {
      if (!isSessionError(error)) throw error
      await response?.body?.cancel().catch(() => undefined)
      return onError(error, request)
    }
  }
}

function errorResponse(error: unknown): Response {
  const status = isSessionError(error) ? error.status : 500
  const headers = { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }
  return new Response(status === 503 ? 'Service Unavailable' : 'Error', { status, headers })
}

/** Hono's `Variables` for a session of `Data`: `new Hono<{ Variables: SessionVariables<Data> }>()`. */
export type SessionVariables<Data extends object> = { session: Session<Data> }

/**
 * Hono middleware: `c.get('session')` in every handler after it, committed onto `c.res` after `await next()`.
 * A handler that failed (`c.error`) has its session changes dropped. A session error (a store outage) is
 * thrown to Hono's error handler: `app.onError` receives the `StoreError` (answer its `status`, 503), and
 * Hono's default handler answers that status too.
 *
 * @example
 * import { Hono } from 'hono'
 * import { honoSession, type SessionVariables } from 'tessera/web'
 *
 * const app = new Hono<{ Variables: SessionVariables<{ visits?: number }> }>()
 * app.use(honoSession(sessions))
 * app.get('/', (c) => {
 *   const visits = (c.get('session').get('visits') ?? 0) + 1
 *   c.get('session').set('visits', visits)
 *   return c.json({ visits })
 * })
 */
export function honoSession<Data extends object>(
  manager: SessionManager<Data>,
  options: Pick<WebSessionOptions, 'ip'> = {},
): MiddlewareHandler<{ Variables: SessionVariables<Data> }> {
  return async (c, next) => {
    let answered = false
    try {
      const session = await loadSession(manager, c.req.raw, options.ip?.(c.req.raw))
      c.set('session', session)
      await next()
      if (c.error !== undefined) return
      answered = true
      const committed = await commitSession(manager, session, c.res)
      c.res = undefined // so Hono takes the new response as it is, without copying the old headers back over it
      c.res = committed
    } catch (error) {
      if (!isSessionError(error)) throw error
      if (answered) {
        // The handler's response will not be sent: release its body, and keep its headers off the error page.
        await c.res.body?.cancel().catch(() => undefined)
        c.res = undefined
      }
      // Hono's default handler answers any error with getResponse(); app.onError still gets the StoreError.
      Object.defineProperty(error, 'getResponse', { value: () => errorResponse(error), configurable: true })
      throw error
    }
  }
}
