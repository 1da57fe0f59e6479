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
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { ServerResponse, STATUS_CODES } from 'node:http'
import type { TLSSocket } from 'node:tls'
import { CSRF_HEADER, type CsrfRequest } from '../csrf.js'
import { isSessionError, SessionCommittedError } from '../errors.js'
import {
  type CommitResult,
  commitNow,
  loadNow,
  type SessionManager,
  type SessionRequest,
} from '../manager.js'
import type { Session } from '../session.js'
import { withVary } from '../vary.js'

/** What the manager needs to know about a node:http request. */
export function sessionRequestOf(req: IncomingMessage): SessionRequest {
  return new NodeSessionRequest(req)
}

// One object per request, no closure. Each read of `req` counts under Express (see Hold): `headers` and `socket`
// are read once, and `url` (the query transport's) only when asked for.
class NodeSessionRequest implements SessionRequest {
  readonly #req: IncomingMessage
  readonly #headers: IncomingHttpHeaders
  readonly cookie: string | string[] | undefined
  readonly encrypted: boolean
  readonly forwardedProto: string | string[] | undefined
  readonly host: string | undefined
  readonly userAgent: string | undefined
  readonly ip: string | undefined
  readonly forwardedFor: string | string[] | undefined

  constructor(req: IncomingMessage) {
    const { headers, socket } = req
    this.#req = req
    this.#headers = headers
    this.cookie = headers.cookie
    this.encrypted = (socket as Partial<TLSSocket>).encrypted === true
    this.forwardedProto = headers['x-forwarded-proto']
    this.host = headers.host
    this.userAgent = headers['user-agent']
    this.ip = socket.remoteAddress
    this.forwardedFor = headers['x-forwarded-for']
  }

  get url(): string | undefined {
    return this.#req.url
  }

  header(name: string): string | undefined {
    return firstHeader(this.#headers[name])
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

/**
 * Puts what a commit asks for on `res`: its `Set-Cookie` headers after any the app set, its `Cache-Control`
 * (a response that depends on the session must not be cached for others), and `Cookie` added to `Vary`.
 */
export function applyCommit(res: ServerResponse, result: CommitResult): void {
  applyCommitThrough(throughResponse, res, result)
}

/** How header methods are called on a response. */
interface HeaderCalls {
  set(res: ServerResponse, name: string, value: string | string[]): void
  get(res: ServerResponse, name: string): ReturnType<ServerResponse['getHeader']>
  append(res: ServerResponse, name: string, value: string[]): void
}

const throughResponse: HeaderCalls = {
  set: (res, name, value) => void res.setHeader(name, value),
  get: (res, name) => res.getHeader(name),
  append: (res, name, value) => void res.appendHeader(name, value),
}

// Node's own methods, found on ServerResponse.prototype (where an instrumentation's wrapper would be) rather
// than looked up on an Express response, where every lookup misses V8's caches (see Hold). Only for responses
// with nothing between them and that prototype overriding these methods.
const throughPrototype: HeaderCalls = {
  set: (res, name, value) => void ServerResponse.prototype.setHeader.call(res, name, value),
  get: (res, name) => ServerResponse.prototype.getHeader.call(res, name),
  append: (res, name, value) => void ServerResponse.prototype.appendHeader.call(res, name, value),
}

function applyCommitThrough(calls: HeaderCalls, res: ServerResponse, result: CommitResult): void {
  if (result.setCookie.length > 0) calls.append(res, 'Set-Cookie', [...result.setCookie])
  if (result.token !== undefined) calls.set(res, 'Session-Token', result.token)
  if (result.referrerPolicy !== undefined) calls.set(res, 'Referrer-Policy', result.referrerPolicy)
  if (result.cacheControl !== undefined) calls.set(res, 'Cache-Control', result.cacheControl)
  if (result.vary !== undefined) {
    const current = calls.get(res, 'vary')
    if (current === undefined) calls.set(res, 'Vary', result.vary)
    else {
      const vary = withVary(toList(current).join(', '), result.vary)
      if (vary !== undefined) calls.set(res, 'Vary', vary)
    }
  }
}

/** What commits a held response: a manager and its session, or any function. */
interface Committer<S> {
  commit(session: S): Promise<CommitResult>
  /** A manager's commit without a promise when nothing had to wait. */
  readonly [commitNow]?: (session: S) => CommitResult | Promise<CommitResult>
}

type ErrorSink = (error: unknown, req: IncomingMessage | undefined, res: ServerResponse) => void

// The four methods that can put something of a response on the wire, by index.
const WRITE_HEAD = 0
const WRITE = 1
const END = 2
const FLUSH_HEADERS = 3

type Method = (this: ServerResponse, ...args: unknown[]) => unknown
type Methods = readonly [Method, Method, Method, Method]

/**
 * The state of one held response: one object and the list of held calls; no Map, array of names or
 * computed-key object per request.
 *
 * Every property read or written on the response counts under Express, which gives each response a
 * prototype of its own (`Object.setPrototypeOf(res, app.response)`): V8 then gives each response a map of its
 * own, so every access misses the inline caches (about 0.3 µs a read and 1.5 µs a write on this machine). So
 * the Express middleware (`viaPrototype`) has the four methods intercepted once and for all on Express's
 * shared response prototype (see {@link interceptedPrototype}), and the hold found through a WeakMap: nothing
 * is written on the response. Everywhere else (node:http, a response with its own wrappers) the response gets
 * the four methods as its own properties, cheap on a plain response, which call straight through once the
 * commit settles.
 */
class Hold<S> {
  /** The methods the held calls replay to: the response's own or its prototype's, or another library's. */
  readonly #originals: Methods
  /** True when the hold lives in {@link holds} rather than in methods put on the response. */
  readonly #shared: boolean
  /** How this response's headers are set: through its own lookups, or Node's methods called on it. */
  readonly #headers: HeaderCalls
  /** Held calls, flat: method index, then its arguments. */
  readonly #held: unknown[] = []
  #started = false
  #done = false

  readonly res: ServerResponse
  readonly committer: Committer<S>
  readonly session: S
  readonly onError: ErrorSink
  readonly req: IncomingMessage | undefined

  constructor(
    res: ServerResponse,
    committer: Committer<S>,
    session: S,
    onError: ErrorSink,
    req: IncomingMessage | undefined,
    viaPrototype = false,
  ) {
    this.res = res
    this.committer = committer
    this.session = session
    this.onError = onError
    this.req = req
    const shared = !viaPrototype || holds.has(res) ? undefined : interceptedPrototype(res)
    this.#shared = shared !== undefined
    this.#headers =
      shared !== undefined && !definesBelow(res, ServerResponse.prototype, HEADER_METHODS)
        ? throughPrototype
        : throughResponse
    if (shared !== undefined) {
      this.#originals = shared
      holds.set(res, this as Hold<unknown>)
      return
    }
    this.#originals = [
      res.writeHead as Method,
      res.write as Method,
      res.end as Method,
      res.flushHeaders as Method,
    ]
    res.writeHead = this.#intercept(WRITE_HEAD) as ServerResponse['writeHead']
    res.write = this.#intercept(WRITE) as ServerResponse['write']
    res.end = this.#intercept(END) as ServerResponse['end']
    res.flushHeaders = this.#intercept(FLUSH_HEADERS) as ServerResponse['flushHeaders']
  }

  #intercept(method: number): Method {
    const hold = this
    return function held(this: ServerResponse, ...args: unknown[]): unknown {
      return hold.call(this, method, args)
    }
  }

  call(res: ServerResponse, method: number, args: unknown[]): unknown {
    if (this.#done) return Reflect.apply(this.#originals[method]!, res, args)
    this.#held.push(method, args)
    if (!this.#started) {
      this.#started = true
      // Wait for the handler's synchronous code (`res.writeHead(200); res.end(session.get('x'))`): what it
      // reads from the session decides the caching headers, and what it writes must still be saved.
      queueMicrotask(() => this.#commit())
    }
    // write() reports "keep writing"; the others return the response for chaining.
    return method === WRITE ? true : this.res
  }

  /** Gives the response back untouched if nothing was written yet. */
  cancel(): boolean {
    if (this.#started) return false
    this.#release()
    return true
  }

  #commit(): void {
    let committing: CommitResult | Promise<CommitResult>
    try {
      const { committer } = this
      const now = committer[commitNow]
      committing = now === undefined ? committer.commit(this.session) : now.call(committer, this.session)
    } catch (error) {
      this.#fail(error)
      return
    }
    // A manager whose store answers at once settles here, and the response goes out in this same turn.
    if (committing instanceof Promise) {
      committing.then(
        (result) => this.#replay(result),
        (error: unknown) => this.#fail(error),
      )
    } else this.#replay(committing)
  }

  #fail(error: unknown): void {
    this.#release()
    this.#held.length = 0
    this.onError(error, this.req, this.res)
  }

  #replay(result: CommitResult): void {
    this.#release()
    const { res } = this
    const held = this.#held
    let applied = false
    try {
      for (let i = 0; i < held.length; i += 2) {
        const method = held[i] as number
        let args = held[i + 1] as unknown[]
        if (!applied && !res.headersSent) {
          if (method === WRITE_HEAD) args = absorbHeaderArgument(res, args)
          applyCommitThrough(this.#headers, res, result)
          applied = true
        }
        Reflect.apply(this.#originals[method]!, res, args)
      }
    } catch (error) {
      // What Node would have thrown at the handler (an invalid header, say) goes to the error path instead.
      this.onError(error, this.req, this.res)
    }
  }

  // From now on the methods call straight through. Those put on the response stay there: deleting them could
  // turn it into a slow dictionary, and reassigning would undo a wrapper installed after ours.
  #release(): void {
    this.#done = true
    if (this.#shared) holds.delete(this.res)
  }
}

/** The holds of responses intercepted through their prototype, until each settles. */
const holds = new WeakMap<object, Hold<unknown>>()
/** Shared response prototypes intercepted so far → the methods they had before. */
const interceptedPrototypes = new WeakMap<object, Methods>()

/**
 * For a response whose prototype a framework replaced (Express: `app.response`, which inherits from the
 * `response` object all Express applications share, which inherits from `ServerResponse.prototype`): the
 * methods its prototype chain had before tessera intercepted them on that shared object, the one just above
 * `ServerResponse.prototype` (so sub-applications, whose prototypes Express swaps in and out, are covered
 * too). Responses without a hold call straight through. Undefined for a plain node:http response, whose
 * prototype is everyone's, and for a response with methods of its own (another library's wrappers), which
 * would bypass an interception on the prototype: those get their own interception.
 */
function interceptedPrototype(res: ServerResponse): Methods | undefined {
  const target = sharedResponsePrototype.of(res) as ServerResponse | undefined
  if (target === undefined) return undefined
  let originals = interceptedPrototypes.get(target)
  if (originals === undefined) {
    originals = [
      target.writeHead as Method,
      target.write as Method,
      target.end as Method,
      target.flushHeaders as Method,
    ]
    const passThrough = originals
    const intercept = (method: number): Method =>
      function intercepted(this: ServerResponse, ...args: unknown[]): unknown {
        const hold = holds.get(this)
        return hold === undefined
          ? Reflect.apply(passThrough[method]!, this, args)
          : hold.call(this, method, args)
      }
    target.writeHead = intercept(WRITE_HEAD) as ServerResponse['writeHead']
    target.write = intercept(WRITE) as ServerResponse['write']
    target.end = intercept(END) as ServerResponse['end']
    target.flushHeaders = intercept(FLUSH_HEADERS) as ServerResponse['flushHeaders']
    interceptedPrototypes.set(target, originals)
  }
  // Methods of its own, or of a prototype between it and the shared one, would bypass the interception.
  return definesBelow(res, target, HELD_METHODS) ? undefined : originals
}

const HELD_METHODS = ['writeHead', 'write', 'end', 'flushHeaders'] as const
const HEADER_METHODS = ['setHeader', 'getHeader', 'appendHeader'] as const

/**
 * Whether `value`, or a prototype between it and `stop`, has any of `names` as its own property (true too when
 * `stop` is not in its chain). Asked with Object.hasOwn: reading `res.end` and the like misses V8's caches on
 * every Express response.
 */
function definesBelow(value: object, stop: object, names: readonly string[]): boolean {
  for (let object: object | null = value; object !== stop; object = Object.getPrototypeOf(object)) {
    if (object === null) return true
    for (const name of names) if (Object.hasOwn(object, name)) return true
  }
  return false
}

/**
 * Finds the object just below `base` in a prototype chain (for Express: the `request` or `response` object
 * every application inherits from), remembering the last chain: an app's requests (or responses) all share it.
 * @internal Not part of the public API; it may change in any release.
 */
export class SharedPrototype {
  readonly #base: object
  #direct: object | null = null
  #shared: object | undefined

  constructor(base: object) {
    this.#base = base
  }

  /** Undefined when `value` inherits `base` directly or not at all. */
  of(value: object): object | undefined {
    const direct = Object.getPrototypeOf(value) as object | null
    if (direct === this.#direct) return this.#shared
    let shared = direct
    if (shared !== this.#base && shared !== null) {
      for (;;) {
        const next = Object.getPrototypeOf(shared) as object | null
        if (next === this.#base) break
        shared = next
        if (shared === null) break
      }
    }
    this.#direct = direct
    this.#shared = shared === this.#base || shared === null ? undefined : shared
    return this.#shared
  }
}

const sharedResponsePrototype = new SharedPrototype(ServerResponse.prototype)

/**
 * {@link holdUntilCommitted} for tessera's own adapters: commits with `committer.commit(session)` and reports
 * failures as `onError(error, req, res)`, so a request allocates no closures for it. `viaPrototype`: intercept
 * on the framework's shared response prototype rather than on the response (Express; see `Hold`).
 * @internal Not part of the public API; it may change in any release.
 */
export function holdForCommit<S>(
  res: ServerResponse,
  committer: Committer<S>,
  session: S,
  onError: ErrorSink,
  req?: IncomingMessage,
  viaPrototype = false,
): { readonly cancel: () => boolean } {
  return new Hold(res, committer, session, onError, req, viaPrototype)
}

/**
 * Holds back `res` from its first `writeHead`, `write`, `end` or `flushHeaders` until `commit` settles, so the
 * client never sees a response (a redirect after login, say) before the session it relies on is saved.
 * Then the commit's headers are merged in and the held calls replay in order; if `commit` fails, they are
 * dropped and `onError` answers instead.
 *
 * This puts the four methods on this one response object, because node:http offers no asynchronous hook
 * before headers are flushed; once the commit settles they call straight through to the methods they hide.
 */
export function holdUntilCommitted(
  res: ServerResponse,
  commit: () => Promise<CommitResult>,
  onError: (error: unknown) => void,
): { readonly cancel: () => boolean } {
  const hold_ = new Hold(res, { commit }, undefined, (error) => onError(error), undefined)
  return { cancel: () => hold_.cancel() }
}

// writeHead(status, [reason], [headers]): moves the headers argument onto the response first, keeping Node's
// precedence (the argument replaces what setHeader() set) except for Set-Cookie, which is appended, so no
// cookie of the app's or ours silently replaces another. Duplicates inside the argument are kept.
function absorbHeaderArgument(res: ServerResponse, args: unknown[]): unknown[] {
  const index = typeof args[1] === 'string' ? 2 : 1
  const headers = args[index]
  if (headers === undefined || headers === null || typeof headers !== 'object') return args
  if (!Array.isArray(headers)) {
    const names = Object.keys(headers)
    // The usual `{ 'content-type': … }`: no two names differ only in case, so nothing needs grouping.
    if (!differOnlyInCase(names)) {
      for (let i = 0; i < names.length; i++) {
        const name = names[i]!
        const value = (headers as Record<string, unknown>)[name]
        putHeader(res, name, typeof value === 'string' ? value : toList(value))
      }
      return args.slice(0, index)
    }
  }
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
  for (const { name, values } of grouped.values()) putHeader(res, name, values)
  return args.slice(0, index)
}

// One header of a held writeHead(): Set-Cookie lines join those already set, any other name replaces its value.
function putHeader(res: ServerResponse, name: string, value: string | string[]): void {
  if (name.length === 10 && name.toLowerCase() === 'set-cookie') res.appendHeader(name, value)
  else res.setHeader(name, Array.isArray(value) && value.length === 1 ? value[0]! : value)
}

function differOnlyInCase(names: readonly string[]): boolean {
  for (let i = 1; i < names.length; i++) {
    const name = names[i]!.toLowerCase()
    for (let j = 0; j < i; j++) if (names[j]!.toLowerCase() === name) return true
  }
  return false
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
    let held: Hold<Session<Data>> | undefined
    try {
      const loading = manager[loadNow](sessionRequestOf(req))
      const session = loading instanceof Promise ? await loading : loading
      held = new Hold(res, manager, session, onError as ErrorSink, req)
      const result = handler(req, res, session)
      // Awaiting a plain value would still cost a turn of the microtask queue.
      if (isThenable(result)) await result
    } catch (error) {
      // A handler that failed before writing has its changes dropped; one that failed mid-response keeps going.
      if (held === undefined || held.cancel()) onError(error, req, res)
      else if (!isSessionError(error)) console.error(error)
    }
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null | undefined)?.then === 'function'
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
