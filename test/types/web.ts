// Web Request/Response handlers and Hono: the session is typed by the manager's data type (a generic).
import { Hono } from 'hono'
import { createSessionManager, type Session } from 'tessera'
import { MemoryStore } from 'tessera/memory'
import { commitSession, honoSession, loadSession, type SessionVariables, withSession } from 'tessera/web'
import { type Equal, expectType } from './helpers.js'

type Data = { userId?: string; visits?: number }

const sessions = createSessionManager<Data>({
  store: new MemoryStore(),
  secrets: ['0123456789abcdefghijklmnopqrstuvwxyzABCDEF'],
})

// Next.js route handlers, Bun.serve, Deno.serve.
export const GET = withSession(sessions, (_request, session) => {
  expectType<Equal<typeof session, Session<Data>>>()
  const visits = (session.get('visits') ?? 0) + 1
  session.set('visits', visits)
  // @ts-expect-error unknown key
  session.get('cart')
  // @ts-expect-error unknown key
  session.set('isAdmin', true)
  // @ts-expect-error wrong value type
  session.set('visits', '1')
  return Response.json({ visits })
})

// Extra arguments (Next.js's context, Deno's info) pass through, typed.
export const withParams = withSession(
  sessions,
  (_request, session, context: { params: Promise<{ id: string }> }) => {
    expectType<Equal<typeof session, Session<Data>>>()
    return Response.json({ context: typeof context.params, user: session.get('userId') ?? null })
  },
)
expectType<Equal<Parameters<typeof withParams>, [Request, { params: Promise<{ id: string }> }]>>()

export async function manual(request: Request): Promise<Response> {
  const session = await loadSession(sessions, request)
  expectType<Equal<typeof session, Session<Data>>>()
  // @ts-expect-error wrong value type
  session.set('userId', 1)
  return commitSession(sessions, session, new Response('ok'))
}

// Hono, with the variables declared on the app.
const app = new Hono<{ Variables: SessionVariables<Data> }>()
app.use(honoSession(sessions))
app.get('/', (c) => {
  const session = c.get('session')
  expectType<Equal<typeof session, Session<Data>>>()
  const userId = session.get('userId')
  expectType<Equal<typeof userId, string | undefined>>()
  // @ts-expect-error unknown key
  session.get('isAdmin')
  // @ts-expect-error wrong value type
  session.set('visits', '1')
  // @ts-expect-error not a variable of this app
  c.get('user')
  return c.json({ userId: userId ?? null })
})

// Hono, with the variables inferred from the middleware alone.
export const inferred = new Hono().use(honoSession(sessions)).get('/', (c) => {
  const visits = c.get('session').get('visits')
  expectType<Equal<typeof visits, number | undefined>>()
  // @ts-expect-error unknown key
  c.get('session').get('isAdmin')
  return c.text(String(visits))
})
