// Fixtures shared by the security tests (test/security): a manager over a spied MemoryStore on a fake clock,
// a node:http server helper, and the parts of a cookie the tests take apart.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after } from 'node:test'
import type { SessionManagerOptions } from '../../src/manager.js'
import type { Store } from '../../src/store.js'
import { MemoryStore } from '../../src/stores/memory.js'
import { setupManager } from '../support.js'

export type Data = {
  userId?: string
  email?: string
  visits?: number
  blob?: string
  deep?: unknown
  cart?: string[]
}

/** A manager over a spied MemoryStore, on a fake clock, collecting its warnings (see setupManager). */
export const setup = (options: Partial<SessionManagerOptions> = {}) => setupManager<Data>(options)

/** `name=value` of a Set-Cookie header (or a Cookie pair): the value. */
export const tokenOf = (cookie: string): string => cookie.slice(cookie.indexOf('=') + 1).split(';')[0]!

/** The raw session ID inside a signed session cookie (`name=id.signature`). */
export const idOf = (cookie: string): string => tokenOf(cookie).split('.')[0]!

/** A store method bound to its store, or a plain property as is (for proxies around real stores). */
export function bound(target: object, property: string | symbol): unknown {
  const value: unknown = Reflect.get(target, property)
  return typeof value === 'function' ? value.bind(target) : value
}

/** A MemoryStore whose `method` rejects like a driver that lost its connection. */
export function failingStore(method: keyof Store, error = new Error('ECONNREFUSED')): Store {
  return new Proxy(new MemoryStore({ cleanupIntervalMs: 0 }), {
    get: (target, property) =>
      property === method ? async () => Promise.reject(error) : bound(target, property),
  })
}

const servers: Server[] = []
after(() => {
  for (const server of servers) server.close()
})

/** Serves `handler` on 127.0.0.1 and resolves its origin; every server closes after the file's tests. */
export async function serve(
  handler: (req: IncomingMessage, res: ServerResponse) => unknown,
): Promise<string> {
  const server = createServer((req, res) => void handler(req, res))
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}
