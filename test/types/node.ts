// node:http: the session handed to the handler is typed by the manager's data type (a generic: no Register).
import { createServer } from 'node:http'
import { createSessionManager, type Session } from 'tessera'
import { MemoryStore } from 'tessera/memory'
import { commitSession, loadSession, withSession } from 'tessera/node'
import { type Equal, expectType } from './helpers.js'

type Data = { userId?: string; visits?: number }

const sessions = createSessionManager<Data>({
  store: new MemoryStore(),
  secrets: ['0123456789abcdefghijklmnopqrstuvwxyzABCDEF'],
})

createServer(
  withSession(sessions, (_req, res, session) => {
    expectType<Equal<typeof session, Session<Data>>>()
    const visits = session.get('visits')
    expectType<Equal<typeof visits, number | undefined>>()
    session.set('visits', (visits ?? 0) + 1)
    // @ts-expect-error unknown key
    session.get('cart')
    // @ts-expect-error unknown key
    session.set('isAdmin', true)
    // @ts-expect-error wrong value type
    session.set('visits', '1')
    res.end(String(session.get('userId')))
  }),
)

// The parts separately: loadSession and commitSession keep the type.
createServer(async (req, res) => {
  const session = await loadSession(sessions, req)
  expectType<Equal<typeof session, Session<Data>>>()
  const userId = session.get('userId')
  expectType<Equal<typeof userId, string | undefined>>()
  // @ts-expect-error wrong value type
  session.set('userId', 1)
  await commitSession(sessions, session, res)
  res.end()
})

// @ts-expect-error a handler cannot claim data the manager does not hold
withSession(sessions, (_req, _res, session: Session<{ isAdmin?: boolean }>) => session.get('isAdmin'))
