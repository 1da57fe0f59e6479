import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { fakeClock, SECRET_A, spyStore } from '../test/support.js'
import { SessionConfigError } from './errors.js'
import {
  createSessionManager,
  type SessionManagerOptions,
  type SessionRequest,
  type SessionWarning,
} from './manager.js'
import { MemoryStore } from './stores/memory.js'

function setup(options: Partial<SessionManagerOptions> = {}) {
  const spy = spyStore(new MemoryStore({ cleanupIntervalMs: 0 }))
  const warnings: SessionWarning[] = []
  const clock = fakeClock()
  const manager = createSessionManager<{ userId?: string }>({
    store: spy.store,
    secrets: [SECRET_A],
    clock: clock.now,
    onWarning: (warning) => warnings.push(warning),
    ...options,
  })
  return { manager, spy, warnings, clock }
}

const headers =
  (values: Record<string, string>): SessionRequest['header'] =>
  (name) =>
    values[name]

async function issueToken(
  manager: ReturnType<typeof setup>['manager'],
  request: Partial<SessionRequest> = {},
) {
  const session = await manager.load({ cookie: undefined, ...request })
  session.set('userId', 'alice')
  const token = session.token()
  const result = await manager.commit(session)
  return { token, result }
}

describe('transports', () => {
  it('ignores a valid token sent as a URL parameter or a header when the cookie transport is configured', async () => {
    const { manager, spy } = setup()
    const session = await manager.load({ cookie: undefined })
    session.set('userId', 'alice')
    const token = session.token()
    await manager.commit(session)
    spy.reset()
    const loaded = await manager.load({
      cookie: undefined,
      url: `/x?sid=${token}`,
      header: headers({ authorization: `Bearer ${token}`, 'x-session-id': token }),
    })
    assert.equal(loaded.isNew, true)
    assert.equal(spy.count('get'), 0)
  })

  it('reads Authorization: Bearer with the header transport, answers new tokens in Session-Token, and ignores cookies', async () => {
    const { manager } = setup({ transport: { type: 'header' } })
    const { token, result } = await issueToken(manager)
    assert.deepEqual(result.setCookie, [])
    assert.equal(result.token, token)
    assert.equal(result.vary, 'authorization')
    const viaHeader = await manager.load({
      cookie: undefined,
      header: headers({ authorization: `Bearer ${token}` }),
    })
    assert.equal(viaHeader.get('userId'), 'alice')
    const viaCookie = await manager.load({ cookie: `sid=${token}; __Host-sid=${token}` })
    assert.equal(viaCookie.isNew, true)
    await viaHeader.destroy()
    assert.equal(
      (await manager.commit(viaHeader)).token,
      '',
      'an ended session tells the client to drop its token',
    )
  })

  it('reads a named header raw, and refuses oversized or non-Bearer values', async () => {
    const { manager } = setup({ transport: { type: 'header', name: 'x-session' } })
    const { token } = await issueToken(manager)
    assert.equal(
      (await manager.load({ cookie: undefined, header: headers({ 'x-session': token }) })).isNew,
      false,
    )
    const bearer = setup({ transport: { type: 'header' } })
    const issued = (await issueToken(bearer.manager)).token
    for (const value of [issued, `Basic ${issued}`, `Bearer ${'x'.repeat(600)}`]) {
      assert.equal(
        (await bearer.manager.load({ cookie: undefined, header: headers({ authorization: value }) })).isNew,
        true,
      )
    }
  })

  it('with the query transport, sets Referrer-Policy: no-referrer, warns at startup, and reads only its parameter', async () => {
    const { manager, warnings } = setup({ transport: { type: 'query', name: 'sid' } })
    assert.equal(warnings[0]?.code, 'TESSERA_URL_TRANSPORT')
    const { token, result } = await issueToken(manager)
    assert.equal(result.referrerPolicy, 'no-referrer')
    assert.equal(
      (await manager.load({ cookie: undefined, url: `/a?x=1&sid=${encodeURIComponent(token)}` })).get(
        'userId',
      ),
      'alice',
    )
    assert.equal((await manager.load({ cookie: `__Host-sid=${token}`, url: '/a' })).isNew, true)
    const read = await manager.load({ cookie: undefined, url: '/a' })
    assert.equal(
      (await manager.commit(read)).referrerPolicy,
      'no-referrer',
      'on every response, not only new sessions',
    )
  })

  it('refuses a transport it does not know, and the Cookie header as a header transport', () => {
    for (const transport of [
      { type: 'smoke' },
      { type: 'header', name: 'cookie' },
      { type: 'header', name: 'Bad Name' },
    ]) {
      assert.throws(
        () => setup({ transport: transport as SessionManagerOptions['transport'] & object }),
        SessionConfigError,
      )
    }
  })
})

describe('production checks', () => {
  it('refuses MemoryStore, an insecure cookie and the URL transport in production unless allowed', () => {
    assert.throws(() => setup({ production: true }), /ephemeral store/)
    assert.doesNotThrow(() => setup({ production: true, allowInProduction: { ephemeralStore: true } }))
    const allowMemory = { ephemeralStore: true }
    assert.throws(
      () => setup({ production: true, allowInProduction: allowMemory, cookie: { secure: false } }),
      /secure: false/,
    )
    assert.throws(
      () => setup({ production: true, allowInProduction: allowMemory, transport: { type: 'query' } }),
      SessionConfigError,
    )
    assert.doesNotThrow(() =>
      setup({
        production: true,
        allowInProduction: { ...allowMemory, insecureCookie: true },
        cookie: { secure: false },
      }),
    )
  })

  it('reads NODE_ENV=production by default', () => {
    const previous = process.env.NODE_ENV
    process.env.NODE_ENV = 'production'
    try {
      assert.throws(() => setup(), /ephemeral store/)
    } finally {
      if (previous === undefined) delete process.env.NODE_ENV
      else process.env.NODE_ENV = previous
    }
  })
})
