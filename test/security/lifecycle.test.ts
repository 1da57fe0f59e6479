// Checklist F and G (docs/security.md): regeneration against concurrent requests, and expiry defaults.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { SessionDestroyedError } from '../../src/errors.js'
import { sha256Hex } from '../../src/internal/crypto.js'
import { createSessionManager } from '../../src/manager.js'
import { MemoryStore } from '../../src/stores/memory.js'
import { attribute, request, SECRET_A, T0 } from '../support.js'
import { type Data, idOf, setup } from './support.js'

describe('F. lifecycle', () => {
  it('#27: never lets a request loaded before regenerate() bring the old ID back', async () => {
    const { manager, memory, clock } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.set('visits', 1))
    const oldKey = sha256Hex(idOf(cookie!))
    const late = await manager.load({ cookie }) // loaded before the regenerate, saved after it
    const reader = await manager.load({ cookie }) // the same, but only reading, with a refresh due
    const { cookie: renewed } = await request(manager, cookie, (s) => s.regenerate())
    assert.notEqual(idOf(renewed!), idOf(cookie!))

    late.set('visits', 99)
    await assert.rejects(manager.commit(late), SessionDestroyedError)
    clock.advance(2 * 60_000)
    reader.get('visits')
    const result = await manager.commit(reader)
    assert.deepEqual(result.setCookie, [], 'no cookie for the retired ID')
    assert.equal(await memory.get(oldKey, clock.now()), undefined, 'the old record stays gone')
    assert.equal((await request(manager, cookie)).session.isNew, true, 'the old cookie stays dead')
    assert.equal((await request(manager, renewed)).session.get('visits'), 1)
  })
})

describe('G. expiry', () => {
  it('#32: keeps the absolute deadline through regenerate(), and ends the session on it however active', async () => {
    const { manager, clock } = setup({ absoluteTimeout: 8 * 60 * 60_000 })
    let { cookie, session } = await request(manager, undefined, (s) => s.set('visits', 1))
    const deadline = session.absoluteExpiresAt.getTime()
    assert.equal(deadline, T0 + 8 * 60 * 60_000)
    clock.advance(20 * 60_000)
    ;({ cookie, session } = await request(manager, cookie, (s) => s.regenerate()))
    assert.equal(session.get('visits'), 1, 'the live session was regenerated')
    assert.equal(session.absoluteExpiresAt.getTime(), deadline, 'regenerate() keeps it')
    ;({ session } = await request(manager, cookie))
    assert.equal(session.absoluteExpiresAt.getTime(), deadline)
    // A request every 10 minutes until one second past the deadline.
    while (clock.now() + 10 * 60_000 < deadline) {
      clock.advance(10 * 60_000)
      const visit = await request(manager, cookie, (s) => s.set('visits', (s.get('visits') ?? 0) + 1))
      assert.equal(visit.session.isNew, false)
      for (const header of visit.result.setCookie) {
        const maxAge = Number(attribute(header, 'Max-Age'))
        assert.ok(maxAge <= Math.ceil((deadline - clock.now()) / 1000), 'Max-Age never outlives the deadline')
      }
      cookie = visit.cookie
    }
    clock.advance(deadline - clock.now() + 1000)
    assert.equal((await request(manager, cookie)).session.isNew, true)
  })

  it('#33: defaults to a 30-minute idle timeout and a 12-hour absolute timeout', async () => {
    const manager = createSessionManager<Data>({
      store: new MemoryStore({ cleanupIntervalMs: 0 }),
      secrets: [SECRET_A],
      clock: () => T0,
      onWarning: () => {},
    })
    assert.equal(manager.idleTimeout, 30 * 60_000)
    assert.equal(manager.absoluteTimeout, 12 * 60 * 60_000)
    const { session, result } = await request(manager, undefined, (s) => s.set('visits', 1))
    assert.equal(session.absoluteExpiresAt.getTime() - session.createdAt.getTime(), 12 * 60 * 60_000)
    assert.equal(attribute(result.setCookie[0]!, 'Max-Age'), '1800')
  })
})
