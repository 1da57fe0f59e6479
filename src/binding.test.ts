import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { fakeClock, request, SECRET_A } from '../test/support.js'
import { type BindingMismatch, networkPrefix, userAgentFamily } from './binding.js'
import { SessionLimitError } from './errors.js'
import { createSessionManager, type SessionManagerOptions } from './manager.js'
import { MemoryStore } from './stores/memory.js'

const FIREFOX_LINUX = 'Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0'
const FIREFOX_LINUX_NEXT = 'Mozilla/5.0 (X11; Linux x86_64; rv:141.0) Gecko/20100101 Firefox/141.0'
const CHROME_WINDOWS =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Safari/537.36'
const SAFARI_IPHONE =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1'

function setup(options: Partial<SessionManagerOptions> = {}) {
  const clock = fakeClock()
  const manager = createSessionManager<{ visits?: number }>({
    store: new MemoryStore({ cleanupIntervalMs: 0 }),
    secrets: [SECRET_A],
    clock: clock.now,
    ...options,
  })
  return { manager, clock }
}

describe('client families', () => {
  it('names the browser and OS family, ignoring versions', () => {
    assert.equal(userAgentFamily(FIREFOX_LINUX), 'Firefox on Linux')
    assert.equal(userAgentFamily(FIREFOX_LINUX_NEXT), 'Firefox on Linux')
    assert.equal(userAgentFamily(CHROME_WINDOWS), 'Chrome on Windows')
    assert.equal(userAgentFamily(SAFARI_IPHONE), 'Safari on iOS')
    assert.equal(userAgentFamily('curl/8.5.0'), 'other on other')
  })

  it('reduces addresses to their network: IPv4 /24, IPv6 /48, mapped IPv4 as IPv4', () => {
    assert.equal(networkPrefix('203.0.113.7'), '203.0.113.0/24')
    assert.equal(networkPrefix('::ffff:203.0.113.99'), '203.0.113.0/24')
    assert.equal(networkPrefix('2001:db8:abcd:12::1'), '2001:db8:abcd::/48')
    assert.equal(networkPrefix('::1'), '0:0:0::/48')
  })
})

describe('hijack signals', () => {
  it('asks the hook when the browser family changes, and rejects the request when it says so', async () => {
    const calls: BindingMismatch[] = []
    const { manager } = setup({
      binding: {
        onMismatch: (mismatch) => {
          calls.push(mismatch)
          return 'reject'
        },
      },
    })
    const seen: unknown[] = []
    manager.on('hijackSuspected', (event) => seen.push(event))
    const { cookie } = await request(manager, undefined, (s) => s.login('alice'), {
      userAgent: FIREFOX_LINUX,
      ip: '203.0.113.7',
    })
    assert.equal(
      (await request(manager, cookie, undefined, { userAgent: FIREFOX_LINUX_NEXT, ip: '198.51.100.1' }))
        .session.userId,
      'alice',
    )
    assert.equal(calls.length, 0, 'a browser update and a new network are not signals by default')
    const stolen = await request(manager, cookie, undefined, { userAgent: CHROME_WINDOWS, ip: '203.0.113.7' })
    assert.equal(stolen.session.isNew, true)
    assert.deepEqual(calls[0]?.changed, ['userAgent'])
    assert.equal(calls[0]?.recorded.userAgent, FIREFOX_LINUX)
    assert.equal((seen[0] as { verdict: string }).verdict, 'reject')
    assert.equal(
      (await request(manager, cookie, undefined, { userAgent: FIREFOX_LINUX })).session.userId,
      'alice',
      'the owner keeps the session',
    )
  })

  it('compares networks only when ipPrefix is on, and lets the hook allow', async () => {
    const calls: BindingMismatch[] = []
    const { manager } = setup({
      binding: {
        userAgent: false,
        ipPrefix: true,
        onMismatch: (mismatch) => {
          calls.push(mismatch)
          return 'allow'
        },
      },
    })
    const { cookie } = await request(manager, undefined, (s) => s.login('alice'), {
      userAgent: FIREFOX_LINUX,
      ip: '203.0.113.7',
    })
    await request(manager, cookie, undefined, { userAgent: CHROME_WINDOWS, ip: '203.0.113.200' })
    assert.equal(calls.length, 0)
    const moved = await request(manager, cookie, undefined, { userAgent: FIREFOX_LINUX, ip: '198.51.100.1' })
    assert.deepEqual(calls[0]?.changed, ['ip'])
    assert.equal(moved.session.userId, 'alice')
  })

  it('is off by default', async () => {
    const { manager } = setup()
    const { cookie } = await request(manager, undefined, (s) => s.login('alice'), {
      userAgent: FIREFOX_LINUX,
    })
    assert.equal(
      (await request(manager, cookie, undefined, { userAgent: CHROME_WINDOWS })).session.userId,
      'alice',
    )
  })
})

describe('sessions per user', () => {
  it('evicts the least recently active sessions beyond the limit at login', async () => {
    const { manager, clock } = setup({ maxSessionsPerUser: { limit: 2 } })
    const first = (await request(manager, undefined, (s) => s.login('alice'))).cookie
    clock.advance(60_000)
    const second = (await request(manager, undefined, (s) => s.login('alice'))).cookie
    clock.advance(60_000)
    const third = (await request(manager, undefined, (s) => s.login('alice'))).cookie
    assert.equal((await manager.listSessions('alice')).length, 2)
    assert.equal((await request(manager, first)).session.isNew, true, 'the oldest is gone')
    assert.equal((await request(manager, second)).session.userId, 'alice')
    assert.equal((await request(manager, third)).session.userId, 'alice')
  })

  it('refuses a login past the limit with SessionLimitError when asked to reject new sessions', async () => {
    const { manager } = setup({ maxSessionsPerUser: { limit: 1, onLimit: 'reject-new' } })
    const first = (await request(manager, undefined, (s) => s.login('alice'))).cookie
    const error = await request(manager, undefined, (s) => s.login('alice')).then(
      () => undefined,
      (e: unknown) => e,
    )
    assert.ok(error instanceof SessionLimitError)
    assert.deepEqual([error.code, error.status], ['ERR_SESSION_LIMIT', 403])
    assert.equal((await request(manager, first)).session.userId, 'alice')
    assert.equal(
      (await request(manager, first, (s) => s.login('alice'))).session.userId,
      'alice',
      'logging in again on the same session is fine',
    )
  })
})

describe('sessions per user under parallel logins', () => {
  it('never lets parallel logins end each other: a burst may exceed the limit until the next login', async () => {
    const { manager, clock } = setup({ maxSessionsPerUser: { limit: 1 } })
    const cookies = await Promise.all(
      [0, 1].map(async () => (await request(manager, undefined, (s) => s.login('alice'))).cookie),
    )
    for (const cookie of cookies) assert.equal((await request(manager, cookie)).session.userId, 'alice')
    clock.advance(1000)
    const latest = (await request(manager, undefined, (s) => s.login('alice'))).cookie
    assert.equal((await manager.listSessions('alice')).length, 1, 'the next login settles it')
    assert.equal((await request(manager, latest)).session.userId, 'alice')
  })
})
