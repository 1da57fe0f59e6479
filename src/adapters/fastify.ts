/**
 * Fastify adapter (Fastify 5): a plugin that puts a typed `request.session` on every request. The session is
 * loaded in an `onRequest` hook and saved in an `onSend` hook: Fastify holds the payload, streams included,
 * until `onSend` resolves, so the response never leaves before its session is saved, and nothing is patched.
 *
 * Errors go through Fastify's error handler: a store outage is a `StoreError` whose `status` (503) Fastify's
 * default handler answers with. A request whose handler failed has its session changes dropped, and the error
 * page gets no session headers.
 *
 * A hijacked reply (`reply.hijack()`) is not committed: call `commitSession(manager, request.session,
 * reply.raw)` from `tessera/node` before writing to `reply.raw`.
 *
 * @example
 * import Fastify from 'fastify'
 * import { tesseraSession } from 'tessera/fastify'
 *
 * declare module 'tessera' { interface Register { data: { visits?: number } } }
 *
 * const app = Fastify()
 * await app.register(tesseraSession, { manager: sessions })
 * app.get('/', async (request) => {
 *   const visits = (request.session.get('visits') ?? 0) + 1
 *   request.session.set('visits', visits)
 *   return { visits }
 * })
 *
 * @module
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fastifyPlugin from 'fastify-plugin'
import { isSessionError } from '../errors.js'
import type { RegisteredData } from '../index.js'
import {
  type CommitResult,
  commitNow,
  loadNow,
  type SessionManager,
  type SessionRequest,
} from '../manager.js'
import type { Session as TesseraSession } from '../session.js'
import { withVary } from '../vary.js'
import { sessionRequestOf } from './node.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The session of this request, typed by the data you declared in tessera's `Register` interface. */
    session: TesseraSession<RegisteredData>
  }
}

/** Any session manager, whatever its data type: `request.session` is typed by tessera's `Register` instead. */
export interface AnySessionManager {
  load(request: SessionRequest): Promise<object>
  commit(session: never): Promise<CommitResult>
}

/** Options of {@link tesseraSession}. */
export interface TesseraSessionOptions {
  /** The session manager, from `createSessionManager()`. */
  manager: AnySessionManager
}

// Set on a request whose session must not be committed (again): already committed, or answered by the error
// path. A request decoration rather than a WeakSet: every request is born with the field, at no extra cost.
const SETTLED = Symbol('tessera.settled')

type Settling = FastifyRequest & { [SETTLED]: boolean }

const plugin: FastifyPluginAsync<TesseraSessionOptions> = async (fastify, options) => {
  const manager = options.manager as unknown as SessionManager<RegisteredData>
  fastify.decorateRequest('session', null as unknown as TesseraSession<RegisteredData>)
  fastify.decorateRequest(SETTLED, false)

  // Callback-style hooks, not async ones: Fastify wraps every promise a hook returns, and these run on every
  // request.
  fastify.addHook('onRequest', (request, _reply, done) => {
    const loading = manager[loadNow](sessionRequestOf(request.raw))
    // A store that answers at once (MemoryStore): the request goes on in this same turn.
    if (!(loading instanceof Promise)) {
      request.session = loading
      done()
      return
    }
    loading.then((session) => {
      request.session = session
      done()
    }, done)
  })

  // A handler, hook or the commit itself failed: the error page must neither commit nor carry the session.
  fastify.addHook('onError', (request, _reply, _error, done) => {
    ;(request as Settling)[SETTLED] = true
    done()
  })

  fastify.addHook('onSend', (request, reply, payload, done) => {
    if (request.session === null || (request as Settling)[SETTLED]) {
      done(null, payload)
      return
    }
    ;(request as Settling)[SETTLED] = true
    const fail = (error: unknown) => {
      discard(payload)
      // Fastify's default handler keeps a status the route already set (a 303 after login, say).
      reply.code(isSessionError(error) ? error.status : 500)
      done(error as Error)
    }
    const finish = (result: CommitResult) => {
      try {
        applyCommit(reply, result)
      } catch (error) {
        fail(error)
        return
      }
      done(null, payload)
    }
    const committing = manager[commitNow](request.session)
    if (committing instanceof Promise) committing.then(finish, fail)
    else finish(committing)
  })
}

/**
 * The session plugin, wrapped with fastify-plugin so `request.session` reaches every route of the instance
 * it is registered on. Register it once, before the routes that use the session.
 *
 * Declare the data type once so `request.session` is typed everywhere:
 * ```ts
 * declare module 'tessera' { interface Register { data: { userId?: string } } }
 * ```
 */
export const tesseraSession = fastifyPlugin(plugin, { fastify: '5.x', name: 'tessera-session' })

/**
 * Puts what a commit asks for on `reply`: its `Set-Cookie` headers after any the app set, `Session-Token`,
 * `Referrer-Policy`, `Cache-Control`, and `Cookie` (or the token header) added to `Vary`.
 */
export function applyCommit(reply: FastifyReply, result: CommitResult): void {
  if (result.setCookie.length > 0) reply.header('set-cookie', [...result.setCookie])
  if (result.token !== undefined) reply.header('session-token', result.token)
  if (result.referrerPolicy !== undefined) reply.header('referrer-policy', result.referrerPolicy)
  if (result.cacheControl !== undefined) reply.header('cache-control', result.cacheControl)
  if (result.vary !== undefined) {
    const current = reply.getHeader('vary')
    if (current === undefined) reply.header('vary', result.vary)
    else {
      const vary = withVary([current].flat().join(', '), result.vary)
      if (vary !== undefined) reply.header('vary', vary)
    }
  }
}

// A payload that will never be sent: release a stream's resources instead of leaving it open.
function discard(payload: unknown): void {
  const stream = payload as { destroy?: () => void; cancel?: () => Promise<void> } | null
  if (typeof stream?.destroy === 'function') stream.destroy()
  else if (typeof stream?.cancel === 'function') stream.cancel().catch(() => undefined)
}
