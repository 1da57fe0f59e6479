import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { request, SECRET_A } from '../test/support.js'
import { createSessionManager, type SessionManagerOptions } from './manager.js'
import type { StandardResult, StandardSchemaV1 } from './schema.js'
import { CookieStore } from './stores/cookie.js'
import { MemoryStore } from './stores/memory.js'

type Cart = { items: string[] }

// A validator implementing the Standard Schema interface by hand, as zod, valibot and arktype do.
const cartSchema: StandardSchemaV1<unknown, Cart> = {
  '~standard': {
    version: 1,
    vendor: 'test',
    validate: async (value): Promise<StandardResult<Cart>> => {
      const items = (value as { items?: unknown }).items
      if (Array.isArray(items) && items.every((item) => typeof item === 'string')) return { value: { items } }
      return { issues: [{ message: 'items must be an array of strings', path: ['items'] }] }
    },
  },
}

function pair(options: Partial<SessionManagerOptions> = {}) {
  const store = options.store ?? new MemoryStore({ cleanupIntervalMs: 0 })
  // The old deploy wrote carts as a comma-separated string; the new one validates.
  const before = createSessionManager<{ items?: string }>({ store, secrets: [SECRET_A] })
  const after = createSessionManager<Cart>({ store, secrets: [SECRET_A], schema: cartSchema, ...options })
  return { before, after }
}

describe('validation of session data on load', () => {
  it('passes valid data through', async () => {
    const { after } = pair()
    const { cookie } = await request(after, undefined, (s) => s.set('items', ['apple']))
    assert.deepEqual((await request(after, cookie)).session.get('items'), ['apple'])
  })

  it('drops a session whose data no longer fits the schema, instead of handing on the wrong type', async () => {
    const { before, after } = pair()
    const reasons: string[] = []
    after.on('rejected', ({ reason }) => reasons.push(reason))
    const { cookie } = await request(before, undefined, (s) => s.set('items', 'apple,pear'))
    const { session } = await request(after, cookie)
    assert.equal(session.isNew, true)
    assert.deepEqual(reasons, ['invalid'])
  })

  it('repairs it with migrate(), validates the result, and saves the new shape', async () => {
    const { before, after } = pair({
      migrate: (data) => (typeof data.items === 'string' ? { items: data.items.split(',') } : undefined),
    })
    const { cookie } = await request(before, undefined, (s) => s.set('items', 'apple,pear'))
    const { session } = await request(after, cookie)
    assert.deepEqual(session.get('items'), ['apple', 'pear'])
    const stored = await request(before, cookie) // no schema: sees what the store holds now
    assert.deepEqual(stored.session.get('items'), ['apple', 'pear'], 'the migrated shape was saved')
  })

  it('drops the session when migrate() returns something that still fails', async () => {
    const { before, after } = pair({ migrate: () => ({ items: 42 }) })
    const { cookie } = await request(before, undefined, (s) => s.set('items', 'apple'))
    assert.equal((await request(after, cookie)).session.isNew, true)
  })

  it('validates stateless sessions too', async () => {
    const store = new CookieStore()
    const { before, after } = pair({ store })
    const { cookie } = await request(before, undefined, (s) => s.set('items', 'apple'))
    assert.equal((await request(after, cookie)).session.isNew, true)
  })
})
