/**
 * node:http adapter: load the session of an `IncomingMessage`, and commit it onto a `ServerResponse`
 * before its headers go out.
 *
 * @example
 * import { createServer } from 'node:http'
 * import { withSession } from 'tessera/node'
 *
 * createServer(withSession(sessions, async (req, res, session) => {
 *   session.set('visits', (session.get('visits') ?? 0) + 1)
 *   res.end(`visit ${session.get('visits')}`)
 * })).listen(3000)
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { STATUS_CODES } from 'node:http'
import type { TLSSocket } from 'node:tls'
import { CSRF_HEADER, type CsrfRequest } from '../csrf.js'
import { isSessionError, SessionCommittedError } from '../errors.js'
import type { CommitResult, SessionManager, SessionRequest } from '../manager.js'
import type { Session } from '../session.js'
import { withVary } from '../vary.js'

/** What the manager needs to know about a node:http request. */
export function sessionRequestOf(req: IncomingMessage): SessionRequest {
  return {
    cookie: req.headers.cookie,
    encrypted: (req.socket as Partial<TLSSocket>).encrypted === true,
    forwardedProto: req.headers['x-forwarded-proto'],
    host: req.headers.host,
    userAgent: req.headers['user-agent'],
    ip: req.socket.remoteAddress,
    forwardedFor: req.headers['x-forwarded-for'],
    header: (name) => firstHeader(req.headers[name]),
    url: req.url,
  }
}

/**
 * What `checkCsrf()` needs about `req`. `token` is the token your body parser found in the form; without
 * one, the `X-CSRF-Token` header is used.
 *
 * @example
 * const failure = checkCsrf(session, csrfRequestOf(req, form.get('_csrf')))
 * if (failure) throw failure // 403
 */
export function csrfRequestOf(req: IncomingMessage, token?: unknown): CsrfRequest {
  const header = req.headers[CSRF_HEADER]
  return {
    method: req.method ?? 'GET',
    token: token ?? (Array.isArray(header) ? header[0] : header),
    origin: req.headers.origin,
    secFetchSite: firstHeader(req.headers['sec-fetch-site']),
    host: req.headers.host,
  }
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

/**
 * Loads the session of `req`.
 *
 * @throws {StoreError} when the store fails.
 */
export function loadSession<Data extends object>(
  manager: SessionManager<Data>,
  req: IncomingMessage,
): Promise<Session<Data>> {
  return manager.load(sessionRequestOf(req))
}

/**
 * Saves `session` and adds its `Set-Cookie` headers to `res`, keeping any the application set. Await it
 * before writing the response.
 *
 * @throws {SessionCommittedError} when the headers of `res` were already sent.
 * @throws {StoreError} when the store fails.
 */
export async function commitSession<Data extends object>(
  manager: SessionManager<Data>,
  session: Session<Data>,
  res: ServerResponse,
): Promise<void> {
  if (res.headersSent)
    throw new SessionCommittedError('the response headers were sent before the session was committed')
  const result = await manager.commit(session)
  if (res.headersSent)
    throw new SessionCommittedError('the response headers were sent while the session was being saved')
  applyCommit(res, result)
}

type Method = 'writeHead' | 'write' | 'end' | 'flushHeaders'

/**
 * Puts what a commit asks for on `res`: its `Set-Cookie` headers after any the app set, its `Cache-Control`
 * (a response that depends on the session must not be cached for others), and `Cookie` added to `Vary`.
 */
export function applyCommit(res: ServerResponse, result: CommitResult): void {
  if (result.setCookie.length > 0) res.appendHeader('Set-Cookie', [...result.setCookie])
  if (result.token !== undefined) res.setHeader('Session-Token', result.token)
  if (result.referrerPolicy !== undefined) res.setHeader('Referrer-Policy', result.referrerPolicy)
  if (result.cacheControl !== undefined) res.setHeader('Cache-Control', result.cacheControl)
  if (result.vary !== undefined) {
    const vary = withVary(toList(res.getHeader('vary')).join(', '), result.vary)
    if (vary !== undefined) res.setHeader('Vary', vary)
  }
}

/**
 * Holds back `res` from its first `writeHead`, `write`, `end` or `flushHeaders` until `commit` settles, so the
 * client never sees a response (a redirect after login, say) before the session it relies on is saved.
 * Then the commit's headers are merged in and the held calls replay in order; if `commit` fails, they are
 * dropped and `onError` answers instead.
 *
 * This replaces the four methods on this one response object, because node:http offers no asynchronous hook
 * before headers are flushed; the originals come back as soon as the commit settles.
 */
export function holdUntilCommitted(
  res: ServerResponse,
  commit: () => Promise<CommitResult>,
  onError: (error: unknown) => void,
): { readonly cancel: () => boolean } {
  const methods: Method[] = ['writeHead', 'write', 'end', 'flushHeaders']
  const originals = new Map(methods.map((name) => [name, res[name]] as const))
  const held: { name: Method; args: unknown[] }[] = []
  let started = false

  const restore = () => {
    for (const [name, original] of originals) Object.assign(res, { [name]: original })
  }
  const settle = (result: CommitResult) => {
    restore()
    let applied = false
    try {
      for (const { name, args } of held) {
        let replayed = args
        if (!applied && !res.headersSent) {
          if (name === 'writeHead') replayed = absorbHeaderArgument(res, args)
          applyCommit(res, result)
          applied = true
        }
        Reflect.apply(originals.get(name)!, res, replayed)
      }
    } catch (error) {
      // What Node would have thrown at the handler (an invalid header, say) goes to the error path instead.
      onError(error)
    }
  }
  const hold = (name: Method) =>
    function held_(this: ServerResponse, ...args: unknown[]) {
      held.push({ name, args })
      if (!started) {
        started = true
        // Wait for the handler's synchronous code (`res.writeHead(200); res.end(session.get('x'))`): what it
        // reads from the session decides the caching headers, and what it writes must still be saved.
        queueMicrotask(() => {
          commit().then(settle, (error: unknown) => {
            restore()
            held.length = 0
            onError(error)
          })
        })
      }
      // write() reports "keep writing"; the others return the response for chaining.
      return name === 'write' ? true : res
    }
  for (const name of methods) Object.assign(res, { [name]: hold(name) })
  return {
    // Gives the response back untouched if nothing was written yet, so an error page never commits the session.
    cancel: () => {
      if (started) return false
      restore()
      return true
    },
  }
}

// writeHead(status, [reason], [headers]): moves the headers argument onto the response first, keeping Node's
// precedence (the argument replaces what setHeader() set) except for Set-Cookie, which is appended, so no
// cookie of the app's or ours silently replaces another. Duplicates inside the argument are kept.
function absorbHeaderArgument(res: ServerResponse, args: unknown[]): unknown[] {
  const index = typeof args[1] === 'string' ? 2 : 1
  const headers = args[index]
  if (headers === undefined || headers === null || typeof headers !== 'object') return args
  const pairs: [string, unknown][] = []
  if (Array.isArray(headers) && Array.isArray(headers[0])) {
    for (const pair of headers as unknown[][]) pairs.push([String(pair[0]), pair[1]]) // [[name, value], …]
  } else if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) pairs.push([String(headers[i]), headers[i + 1]]) // flat
  } else {
    pairs.push(...Object.entries(headers))
  }
  const grouped = new Map<string, { name: string; values: string[] }>()
  for (const [name, value] of pairs) {
    const key = name.toLowerCase()
    const group = grouped.get(key) ?? { name, values: [] }
    group.values.push(...toList(value))
    grouped.set(key, group)
  }
  for (const [key, { name, values }] of grouped) {
    if (key === 'set-cookie') res.appendHeader(name, values)
    else res.setHeader(name, values.length === 1 ? values[0]! : values)
  }
  return args.slice(0, index)
}

function toList(value: unknown): string[] {
  if (value === undefined || value === null) return []
  return Array.isArray(value) ? value.map(String) : [String(value)]
}

/** Options of {@link withSession}. */
export interface WithSessionOptions {
  /**
   * Answers a request whose session failed to load or save, or whose handler threw. The default answers with
   * the error's `status` (503 for a store outage) and logs errors that are not tessera's own.
   */
  onError?: (error: unknown, req: IncomingMessage, res: ServerResponse) => void
}

/**
 * Wraps a node:http handler: the session is loaded before it runs and committed, automatically, before the
 * response it writes goes out.
 */
export function withSession<Data extends object>(
  manager: SessionManager<Data>,
  handler: (req: IncomingMessage, res: ServerResponse, session: Session<Data>) => unknown,
  options: WithSessionOptions = {},
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const onError = options.onError ?? defaultOnError
  return async (req, res) => {
    let hold: ReturnType<typeof holdUntilCommitted> | undefined
    try {
      const session = await loadSession(manager, req)
      hold = holdUntilCommitted(
        res,
        () => manager.commit(session),
        (error) => onError(error, req, res),
      )
      await handler(req, res, session)
    } catch (error) {
      // A handler that failed before writing has its changes dropped; one that failed mid-response keeps going.
      if (hold === undefined || hold.cancel()) onError(error, req, res)
      else if (!isSessionError(error)) console.error(error)
    }
  }
}

function defaultOnError(error: unknown, _req: IncomingMessage, res: ServerResponse): void {
  if (!isSessionError(error)) console.error(error)
  if (res.headersSent) {
    res.destroy()
    return
  }
  for (const name of res.getHeaderNames()) res.removeHeader(name)
  const status = isSessionError(error) ? error.status : 500
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' })
  res.end(STATUS_CODES[status] ?? 'Error')
}
