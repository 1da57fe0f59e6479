// Koa: `ctx.session` is typed by the data declared in tessera's `Register` (register.ts), through the
// adapter's `declare module 'koa'`.
import Koa, { type Context } from 'koa'
import { createSessionManager, type Session } from 'tessera'
import { koaSession } from 'tessera/koa'
import { MemoryStore } from 'tessera/memory'
import { type AppData, type Equal, expectType } from './helpers.js'
import './register.js'

const sessions = createSessionManager<AppData>({
  store: new MemoryStore(),
  secrets: ['0123456789abcdefghijklmnopqrstuvwxyzABCDEF'],
})

const app = new Koa()
app.use(koaSession(sessions))
app.use(async (ctx) => {
  expectType<Equal<typeof ctx.session, Session<AppData>>>()
  const visits = (ctx.session.get('visits') ?? 0) + 1
  ctx.session.set('visits', visits)
  const userId = ctx.session.get('userId')
  expectType<Equal<typeof userId, string | undefined>>()
  // @ts-expect-error unknown key
  ctx.session.get('isAdmin')
  // @ts-expect-error unknown key
  ctx.session.delete('isAdmin')
  // @ts-expect-error wrong value type
  ctx.session.set('visits', '1')
  // @ts-expect-error wrong value type
  ctx.session.set('userId', null)
  ctx.body = { visits }
})

export function userOf(ctx: Context): string | undefined {
  return ctx.session.get('userId')
}
