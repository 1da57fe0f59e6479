// Express: `req.session` is typed by the data declared once in tessera's `Register` (register.ts), in every
// route, with no type argument at the call site.
import express, { type Request } from 'express'
import { createSessionManager, type RegisteredData, type Session } from 'tessera'
import { csrf, session } from 'tessera/express'
import { MemoryStore } from 'tessera/memory'
import { type AppData, type Equal, expectType } from './helpers.js'
import './register.js'

const sessions = createSessionManager<AppData>({
  store: new MemoryStore(),
  secrets: ['0123456789abcdefghijklmnopqrstuvwxyzABCDEF'],
})

const app = express()
app.use(session(sessions), csrf())

app.get('/', (req, res) => {
  expectType<Equal<typeof req.session, Session<AppData>>>()
  const userId = req.session.get('userId')
  expectType<Equal<typeof userId, string | undefined>>()
  const cart = req.session.get('cart')
  expectType<Equal<typeof cart, AppData['cart']>>()
  req.session.set('visits', (req.session.get('visits') ?? 0) + 1)
  // @ts-expect-error unknown key
  req.session.get('isAdmin')
  // @ts-expect-error unknown key
  req.session.set('isAdmin', true)
  // @ts-expect-error wrong value type
  req.session.set('visits', 'one')
  // @ts-expect-error wrong value type
  req.session.set('userId', 42)
  res.send(userId ?? 'anonymous')
})

app.post('/login', async (req, res) => {
  await req.session.login('alice')
  // @ts-expect-error login takes a user ID string
  await req.session.login({ id: 'alice' })
  res.redirect(303, '/')
})

// A handler written apart from the app gets the same type from Express's Request.
export function profile(req: Request): string | undefined {
  return req.session.get('userId')
}

// createSessionManager<RegisteredData>() keeps the manager's data type and req.session's the same.
const registered = createSessionManager<RegisteredData>({
  store: new MemoryStore(),
  secrets: ['0123456789abcdefghijklmnopqrstuvwxyzABCDEF'],
})
expectType<Equal<Awaited<ReturnType<typeof registered.load>>, Session<AppData>>>()
app.use(session(registered))
