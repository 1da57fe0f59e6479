// The core API: the data type given to createSessionManager<Data>() types every Session method, through
// load(), the CookieStore (stateless) mode, and the events. Misuse is a compile error.
import {
  createSessionManager,
  type RegisteredData,
  type RejectionReason,
  type Session,
  type SessionManager,
  type StandardSchemaV1,
} from 'tessera'
import { CookieStore } from 'tessera/cookie'
import { MemoryStore } from 'tessera/memory'
import { type AppData, type Equal, expectType } from './helpers.js'
import './register.js'

type Cart = { sku: string; quantity: number }[]
type Data = { userId?: string; visits?: number; cart?: Cart; theme: 'light' | 'dark' }

const secrets = ['0123456789abcdefghijklmnopqrstuvwxyzABCDEF']
const sessions = createSessionManager<Data>({ store: new MemoryStore(), secrets })
expectType<Equal<typeof sessions, SessionManager<Data>>>()

export async function core(): Promise<void> {
  const session = await sessions.load({ cookie: undefined })
  expectType<Equal<typeof session, Session<Data>>>()

  // get, take: the declared type, or undefined when absent.
  const userId = session.get('userId')
  expectType<Equal<typeof userId, string | undefined>>()
  const visits = session.get('visits')
  expectType<Equal<typeof visits, number | undefined>>()
  const cart = session.get('cart')
  expectType<Equal<typeof cart, Cart | undefined>>()
  const theme = session.get('theme') // a required key may still be absent from a new session
  expectType<Equal<typeof theme, 'light' | 'dark' | undefined>>()
  const taken = session.take('visits')
  expectType<Equal<typeof taken, number | undefined>>()
  const keys = session.keys()
  expectType<Equal<typeof keys, ('userId' | 'visits' | 'cart' | 'theme')[]>>()

  // set: the declared value type; undefined deletes an optional key.
  session
    .set('userId', 'alice')
    .set('visits', 1)
    .set('cart', [{ sku: 'a-1', quantity: 2 }])
  session.set('theme', 'dark')
  session.set('userId', undefined)
  session.delete('cart')
  session.has('visits')

  // @ts-expect-error unknown key
  session.get('userID')
  // @ts-expect-error unknown key
  session.set('isAdmin', true)
  // @ts-expect-error unknown key
  session.has('isAdmin')
  // @ts-expect-error unknown key
  session.delete('isAdmin')
  // @ts-expect-error unknown key
  session.take('isAdmin')
  // @ts-expect-error wrong value type
  session.set('visits', '1')
  // @ts-expect-error wrong value type
  session.set('userId', 42)
  // @ts-expect-error wrong value type inside an array of objects
  session.set('cart', [{ sku: 'a-1', quantity: '2' }])
  // @ts-expect-error a value outside a literal union
  session.set('theme', 'blue')
  // @ts-expect-error a required key cannot be set to undefined
  session.set('theme', undefined)
  // @ts-expect-error set needs a value
  session.set('visits')

  // The lifecycle calls and metadata are typed too.
  expectType<Equal<ReturnType<typeof session.login>, Promise<void>>>()
  expectType<Equal<typeof session.userId, string | undefined>>()
  // @ts-expect-error login takes a user ID string
  await session.login(42)
  const other = createSessionManager<AppData>({ store: new MemoryStore(), secrets })
  const foreign = await other.load({ cookie: undefined })
  // @ts-expect-error commit takes a session of this manager's data type
  await sessions.commit(foreign)
}

// Stateless (CookieStore) mode: the same Session type.
export async function stateless(): Promise<void> {
  const sealed = createSessionManager<{ cart?: Cart }>({ store: new CookieStore(), secrets })
  const session = await sealed.load({ cookie: undefined })
  const cart = session.get('cart')
  expectType<Equal<typeof cart, Cart | undefined>>()
  // @ts-expect-error unknown key
  session.get('userId')
  // @ts-expect-error wrong value type
  session.set('cart', 'a-1')
}

// Without a type argument, data is a plain record of unknown values: reads must be narrowed.
export async function untyped(): Promise<void> {
  const loose = createSessionManager({ store: new MemoryStore(), secrets })
  const session = await loose.load({ cookie: undefined })
  const anything = session.get('anything')
  expectType<Equal<typeof anything, unknown>>()
  session.set('anything', { nested: [1, 2] })
}

// The Register declaration (register.ts) is what the framework adapters read.
expectType<Equal<RegisteredData, AppData>>()

// Events: payloads are typed by event name.
sessions.on('rejected', ({ reason, session }) => {
  expectType<Equal<typeof reason, RejectionReason>>()
  expectType<Equal<typeof session, string | undefined>>()
})
sessions.on('storeError', ({ operation }) => {
  expectType<Equal<typeof operation, string>>()
})
// @ts-expect-error unknown event
sessions.on('loggedOut', () => undefined)

// A Standard Schema validates loaded data at run time; the data type still comes from the type argument
// (the manager does not infer it from the schema).
declare const schema: StandardSchemaV1<unknown, { visits?: number }>
export async function validated(): Promise<void> {
  const checked = createSessionManager<{ visits?: number }>({ store: new MemoryStore(), secrets, schema })
  const visits = (await checked.load({ cookie: undefined })).get('visits')
  expectType<Equal<typeof visits, number | undefined>>()
}
