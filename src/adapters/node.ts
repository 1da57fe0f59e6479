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
import { isSessionError, SessionCommittedError } from '../errors.js'
import type { SessionManager, SessionRequest } from '../manager.js'
import type { Session } from '../session.js'

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
  }
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
  const { setCookie } = await manager.commit(session)
  if (res.headersSent)
    throw new SessionCommittedError('the response headers were sent while the session was being saved')
  if (setCookie.length > 0) res.appendHeader('Set-Cookie', [...setCookie])
}

type Method = 'writeHead' | 'write' | 'end' | 'flushHeaders'

/**
 * Holds back `res` from its first `writeHead`, `write`, `end` or `flushHeaders` until `commit` settles, so the
 * client never sees a response (a redirect after login, say) before the session it relies on is saved.
 * Then the `Set-Cookie` headers are merged in and the held calls replay in order; if `commit` fails, they
 * are dropped and `onError` answers instead.
 *
 * This replaces the four methods on this one response object, because node:http offers no asynchronous hook
 * before headers are flushed; the originals come back as soon as the commit settles.
 */
export function holdUntilCommitted(
  res: ServerResponse,
  commit: () => Promise<readonly string[]>,
  onError: (error: unknown) => void,
): { readonly cancel: () => boolean } {
  const methods: Method[] = ['writeHead', 'write', 'end', 'flushHeaders']
  const originals = new Map(methods.map((name) => [name, res[name]] as const))
  const held: { name: Method; args: unknown[] }[] = []
  let started = false

  const restore = () => {
    for (const [name, original] of originals) Object.assign(res, { [name]: original })
  }
  const settle = (cookies: readonly string[]) => {
    restore()
    let cookiesPlaced = cookies.length === 0
    for (const { name, args } of held) {
      if (!cookiesPlaced && name === 'writeHead') {
        Reflect.apply(res.writeHead, res, withCookies(res, args, cookies))
        cookiesPlaced = true
        continue
      }
      if (!cookiesPlaced && !res.headersSent) {
        res.appendHeader('Set-Cookie', [...cookies])
        cookiesPlaced = true
      }
      Reflect.apply(originals.get(name)!, res, args)
    }
  }
  const hold = (name: Method) =>
    function held_(this: ServerResponse, ...args: unknown[]) {
      held.push({ name, args })
      if (!started) {
        started = true
        commit().then(settle, (error: unknown) => {
          restore()
          held.length = 0
          onError(error)
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

// writeHead(status, [reason], [headers]): merge our cookies with any Set-Cookie the app set, whether through
// setHeader() or in the headers argument, since Node lets one silently replace the other.
function withCookies(res: ServerResponse, args: unknown[], cookies: readonly string[]): unknown[] {
  const headersIndex = typeof args[1] === 'string' ? 2 : 1
  const headers = args[headersIndex]
  const existing = toList(res.getHeader('set-cookie'))
  if (Array.isArray(headers)) {
    const rest: unknown[] = []
    const fromArgs: string[] = []
    for (let i = 0; i + 1 < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() === 'set-cookie') fromArgs.push(...toList(headers[i + 1]))
      else rest.push(headers[i], headers[i + 1])
    }
    if (res.getHeaderNames().length === 0) {
      // Node keeps a raw header array as given only when no header was set before: keep that path.
      const extra = [...fromArgs, ...cookies].flatMap((cookie) => ['Set-Cookie', cookie])
      return replaceAt(args, headersIndex, [...rest, ...extra])
    }
    res.setHeader('Set-Cookie', [...existing, ...fromArgs, ...cookies])
    return replaceAt(args, headersIndex, rest)
  }
  if (headers !== null && typeof headers === 'object') {
    const rest: Record<string, unknown> = {}
    const fromArgs: string[] = []
    for (const [name, value] of Object.entries(headers)) {
      if (name.toLowerCase() === 'set-cookie') fromArgs.push(...toList(value))
      else rest[name] = value
    }
    res.setHeader('Set-Cookie', [...existing, ...fromArgs, ...cookies])
    return replaceAt(args, headersIndex, rest)
  }
  res.appendHeader('Set-Cookie', [...cookies])
  return args
}

function toList(value: unknown): string[] {
  if (value === undefined || value === null) return []
  return Array.isArray(value) ? value.map(String) : [String(value)]
}

function replaceAt(args: unknown[], index: number, value: unknown): unknown[] {
  const copy = [...args]
  copy[index] = value
  return copy
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
        async () => (await manager.commit(session)).setCookie,
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
