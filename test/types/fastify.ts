// Fastify: `request.session` is typed by the data declared in tessera's `Register` (register.ts), through
// the plugin's `declare module 'fastify'`.
import Fastify, { type FastifyRequest } from 'fastify'
import { createSessionManager, type Session } from 'tessera'
import { tesseraSession } from 'tessera/fastify'
import { MemoryStore } from 'tessera/memory'
import { type AppData, type Equal, expectType } from './helpers.js'
import './register.js'

const sessions = createSessionManager<AppData>({
  store: new MemoryStore(),
  secrets: ['0123456789abcdefghijklmnopqrstuvwxyzABCDEF'],
})

export async function build() {
  const app = Fastify()
  await app.register(tesseraSession, { manager: sessions })
  // A manager of any data type is accepted: request.session is typed by Register, not by the manager.
  await app.register(tesseraSession, {
    manager: createSessionManager({ store: new MemoryStore(), secrets: [] }),
  })
  // @ts-expect-error the plugin needs a manager
  await app.register(tesseraSession, {})

  app.get('/', async (request) => {
    expectType<Equal<typeof request.session, Session<AppData>>>()
    const visits = (request.session.get('visits') ?? 0) + 1
    expectType<Equal<typeof visits, number>>()
    request.session.set('visits', visits)
    const userId = request.session.get('userId')
    expectType<Equal<typeof userId, string | undefined>>()
    // @ts-expect-error unknown key
    request.session.get('isAdmin')
    // @ts-expect-error unknown key
    request.session.set('isAdmin', true)
    // @ts-expect-error wrong value type
    request.session.set('visits', '1')
    // @ts-expect-error wrong value type
    request.session.set('cart', [{ sku: 1, quantity: 1 }])
    return { visits }
  })
  return app
}

export function cartOf(request: FastifyRequest): AppData['cart'] {
  return request.session.get('cart')
}
