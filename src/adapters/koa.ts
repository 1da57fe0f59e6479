/**
 * Koa adapter (Koa 3): a middleware that puts a typed `ctx.session` on every request and saves it after
 * `await next()`, before Koa writes the response (a streamed body included), so the client never sees a
 * response whose session is not saved.
 *
 * Errors are thrown, so Koa's error handling answers: a store outage is a `StoreError` whose `status` (503)
 * Koa's default handler uses, with every header the response had removed. A request whose downstream
 * middleware threw has its session changes dropped.
 *
 * With `ctx.respond = false` Koa no longer writes the response: call `commitSession(manager, ctx.session,
 * ctx.res)` from `tessera/node` before you write to `ctx.res`.
 *
 * @example
 * import Koa from 'koa'
 * import { koaSession } from 'tessera/koa'
 *
 * declare module 'tessera' { interface Register { data: { visits?: number } } }
 *
 * const app = new Koa()
 * app.use(koaSession(sessions))
 * app.use((ctx) => {
 *   const visits = (ctx.session.get('visits') ?? 0) + 1
 *   ctx.session.set('visits', visits)
 *   ctx.body = { visits }
 * })
 *
 * @module
 */
import type { DefaultState, Middleware, ParameterizedContext } from 'koa'
import { SessionCommittedError } from '../errors.js'
import type { RegisteredData } from '../index.js'
import { type CommitResult, commitNow, loadNow, type SessionManager } from '../manager.js'
import type { Session } from '../session.js'
import { sessionRequestOf } from './node.js'

declare module 'koa' {
  interface DefaultContext {
    /** The session of this request, typed by the data you declared in tessera's `Register` interface. */
    session: Session<RegisteredData>
  }
}

/**
 * The session middleware. Mount it before the middleware that uses `ctx.session`.
 *
 * Declare the data type once so `ctx.session` is typed everywhere:
 * ```ts
 * declare module 'tessera' { interface Register { data: { userId?: string } } }
 * ```
 *
 * @throws {StoreError} (through Koa's error handling, status 503) when the store fails.
 */
export function koaSession<Data extends object>(manager: SessionManager<Data>): Middleware {
  return async (ctx, next) => {
    // Awaited only when the store made it wait: each await is a turn of the microtask queue.
    const loading = manager[loadNow](sessionRequestOf(ctx.req))
    const session = loading instanceof Promise ? await loading : loading
    ctx.session = session as unknown as Session<RegisteredData>
    await next()
    if (ctx.headerSent) {
      throw new SessionCommittedError(
        'the response headers were sent before the session was committed (ctx.respond = false?)',
      )
    }
    const committing = manager[commitNow](session)
    applyCommit(ctx, committing instanceof Promise ? await committing : committing)
  }
}

/**
 * Puts what a commit asks for on the response: its `Set-Cookie` headers after any the app set,
 * `Session-Token`, `Referrer-Policy`, `Cache-Control`, and `Cookie` (or the token header) added to `Vary`.
 */
export function applyCommit(ctx: ParameterizedContext<DefaultState>, result: CommitResult): void {
  if (result.setCookie.length > 0) ctx.append('Set-Cookie', [...result.setCookie])
  if (result.token !== undefined) ctx.set('Session-Token', result.token)
  if (result.referrerPolicy !== undefined) ctx.set('Referrer-Policy', result.referrerPolicy)
  if (result.cacheControl !== undefined) ctx.set('Cache-Control', result.cacheControl)
  if (result.vary !== undefined) ctx.vary(result.vary)
}
