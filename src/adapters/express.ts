/**
 * Express adapter (Express 5 and 4): a middleware that puts a typed `req.session` on every request and saves
 * it before the response goes out. Store errors go to `next(err)`, so the app's own error handler answers
 * (503 by default, from the error's `status`).
 *
 * @example
 * import express from 'express'
 * import { session } from 'tessera/express'
 *
 * const app = express()
 * app.use(session(sessions))
 * app.get('/', (req, res) => {
 *   req.session.set('visits', (req.session.get('visits') ?? 0) + 1)
 *   res.send(`visit ${req.session.get('visits')}`)
 * })
 *
 * @module
 */
import { IncomingMessage, type ServerResponse } from 'node:http'
import { CSRF_FIELD, type CsrfOptions, checkCsrf } from '../csrf.js'
import { SessionConfigError } from '../errors.js'
import type { RegisteredData } from '../index.js'
import { loadNow, type SessionManager } from '../manager.js'
import type { Session } from '../session.js'
import { csrfRequestOf, holdForCommit, SharedPrototype, sessionRequestOf } from './node.js'

declare global {
  namespace Express {
    interface Request {
      /** The session of this request, typed by the data you declared in tessera's `Register` interface. */
      session: Session<RegisteredData>
    }
  }
}

/** The shape of an Express middleware, without depending on Express's types at run time. */
export type SessionMiddleware = (
  req: IncomingMessage,
  res: ServerResponse,
  next: (error?: unknown) => void,
) => void

/**
 * The session middleware. Mount it before the routes that use `req.session`.
 *
 * Declare the data type once so `req.session` is typed everywhere:
 * ```ts
 * declare module 'tessera' { interface Register { data: { userId?: string } } }
 * ```
 */
export function session<Data extends object>(manager: SessionManager<Data>): SessionMiddleware {
  return (req, res, next) => {
    const loading = manager[loadNow](sessionRequestOf(req))
    // A store that answers at once (MemoryStore): the next middleware runs now, not a microtask later.
    if (loading instanceof Promise) loading.then((loaded) => attach(req, res, manager, loaded, next), next)
    else attach(req, res, manager, loading, next)
  }
}

function attach<Data extends object>(
  req: IncomingMessage,
  res: ServerResponse,
  manager: SessionManager<Data>,
  loaded: Session<Data>,
  next: (error?: unknown) => void,
): void {
  setSession(req, loaded)
  // Through Express's shared response prototype: nothing is written on the response (see Hold).
  holdForCommit(res, manager, loaded, next, req, true)
  next()
}

/** The sessions of requests whose `session` property is the accessor on Express's shared request prototype. */
const sessions = new WeakMap<object, unknown>()
/** Shared request prototypes that have the accessor, or could not take it (false). */
const accessorOn = new WeakMap<object, boolean>()

/**
 * `req.session = loaded`, without writing on `req` where possible: a property added to a request whose
 * prototype Express replaced costs more than the rest of the middleware (see Hold in node.ts). An accessor on
 * the prototype all Express applications share (the one just above `IncomingMessage.prototype`) reads the
 * session from a WeakMap instead; assigning `req.session` still works (it becomes the request's own property).
 */
function setSession(req: IncomingMessage, loaded: unknown): void {
  const shared = sharedRequestPrototype(req)
  if (shared === undefined || Object.hasOwn(req, 'session')) {
    ;(req as IncomingMessage & { session: unknown }).session = loaded
    return
  }
  sessions.set(req, loaded)
}

const sharedRequestPrototypes = new SharedPrototype(IncomingMessage.prototype)

function sharedRequestPrototype(req: IncomingMessage): object | undefined {
  const shared = sharedRequestPrototypes.of(req)
  if (shared === undefined) return undefined
  let usable = accessorOn.get(shared)
  if (usable === undefined) {
    // Another library's `session` on that prototype stays as it is; this middleware then writes on `req`.
    usable = !Object.hasOwn(shared, 'session')
    if (usable) {
      Object.defineProperty(shared, 'session', {
        configurable: true,
        enumerable: false,
        get(this: object) {
          return sessions.get(this)
        },
        set(this: object, value: unknown) {
          Object.defineProperty(this, 'session', {
            value,
            writable: true,
            enumerable: true,
            configurable: true,
          })
        },
      })
    }
    accessorOn.set(shared, usable)
  }
  return usable ? shared : undefined
}

/**
 * CSRF protection: requests other than GET, HEAD, OPTIONS and TRACE must carry a token from
 * `req.session.csrfToken()` in the `_csrf` form field (parse the body first, e.g. `express.urlencoded()`) or
 * the `X-CSRF-Token` header, and must not come from another site according to `Origin` or `Sec-Fetch-Site`.
 * A failure goes to `next(err)` as a `CsrfError` (status 403). Mount it after {@link session}.
 *
 * @example
 * app.use(session(sessions), express.urlencoded({ extended: false }), csrf())
 * app.get('/form', (req, res) => res.send(`<input type="hidden" name="_csrf" value="${req.session.csrfToken()}">`))
 */
export function csrf(options: CsrfOptions = {}): SessionMiddleware {
  return (req, _res, next) => {
    const { session: current, body } = req as IncomingMessage & { session?: Session<object>; body?: unknown }
    if (current === undefined) {
      next(new SessionConfigError('csrf() needs req.session: mount session(manager) before it'))
      return
    }
    const field =
      typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[CSRF_FIELD] : undefined
    next(checkCsrf(current, csrfRequestOf(req, field), options))
  }
}
