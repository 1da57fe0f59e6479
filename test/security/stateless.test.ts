// Checklist J and §2.3 (docs/security.md): stateless sessions sealed in the cookie.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { aesGcmSeal, deriveKey } from '../../src/internal/crypto.js'
import { createSessionManager } from '../../src/manager.js'
import { serializePayload } from '../../src/payload.js'
import { Sealer } from '../../src/sealer.js'
import { CookieStore } from '../../src/stores/cookie.js'
import { fakeClock, request, SECRET_A, SECRET_B, T0 } from '../support.js'
import type { Data } from './support.js'

function statelessManager(secrets = [SECRET_A], clock = fakeClock()) {
  const manager = createSessionManager<Data>({
    store: new CookieStore(),
    secrets,
    clock: clock.now,
    onWarning: () => {},
  })
  const reasons: string[] = []
  manager.on('rejected', ({ reason }) => reasons.push(reason))
  return { manager, clock, reasons }
}

describe('J. stateless sessions', () => {
  it('#41: seals under a key of the hour, so no key comes near 2^32 seals, and values of earlier hours still open', async () => {
    let now = T0
    const sealer = new Sealer([SECRET_A], 'sid', false, () => now)
    const early = await sealer.seal('early')
    now += 2 * 3_600_000
    const later = await sealer.seal('later')
    const hourOf = (value: string) => value.split('.')[1]
    assert.notEqual(hourOf(early), hourOf(later))
    assert.deepEqual(await sealer.open(early), { plaintext: 'early', renew: false })
    assert.deepEqual(await sealer.open(later), { plaintext: 'later', renew: false })
    // The hour is authenticated: moved to another hour, the value no longer opens.
    const moved = early.replace(`.${hourOf(early)}.`, `.${hourOf(later)}.`)
    assert.equal(await sealer.open(moved), undefined)
  })

  it('#41: refuses a value claiming an hour no live session can come from, before deriving any key', async () => {
    const now = T0
    const sealer = new Sealer([SECRET_A], 'sid', false, () => now)
    const value = await sealer.seal('x')
    const hour = Math.floor(now / 3_600_000)
    for (const claimed of [hour + 2, hour - 400 * 24 - 2, 0]) {
      const forged = value.replace(`.${value.split('.')[1]}.`, `.${claimed.toString(36)}.`)
      assert.equal(await sealer.open(forged), undefined)
    }
  })

  it('#41: opens a value sealed in the earlier t1 format and asks for it to be re-sealed as t2', async () => {
    const { manager } = statelessManager()
    const key = deriveKey(new TextEncoder().encode(SECRET_A), 'tessera/v1/session-seal')
    const plaintext = `${T0 + 60_000}.${serializePayload({ createdAt: T0, absoluteExpiresAt: T0 + 60_000 }, { visits: 3 })}`
    const legacy = `t1.${await aesGcmSeal(key, plaintext, `t1.${manager.cookieName}`)}`
    const { session, result } = await request(manager, `${manager.cookieName}=${legacy}`, (s) =>
      s.get('visits'),
    )
    assert.equal(session.get('visits'), 3)
    assert.match(result.setCookie[0] ?? '', new RegExp(`^${manager.cookieName}=t2\\.`))
  })

  it('#42: refuses a sealed session whose expiry is missing or absurd (1e300, Infinity, NaN, negative, past)', async () => {
    const { manager, reasons } = statelessManager()
    // Sealed with the real key: what only a key holder (or a bug) could produce.
    const sealer = new Sealer([SECRET_A], manager.cookieName, false, () => T0)
    const payload = (meta: { absoluteExpiresAt: number; createdAt?: number }) =>
      serializePayload(
        { createdAt: meta.createdAt ?? T0, absoluteExpiresAt: meta.absoluteExpiresAt },
        {
          userId: 'alice',
        },
      )
    const live = payload({ absoluteExpiresAt: T0 + 60_000 })
    // Awaited: sealing may be asynchronous (Web Crypto).
    const cookie = async (plaintext: string) => `${manager.cookieName}=${await sealer.seal(plaintext)}`
    assert.equal(
      (await manager.load({ cookie: await cookie(`${T0 + 60_000}.${live}`) })).get('userId'),
      'alice',
    )
    reasons.length = 0
    const refused = [
      live, // no idle deadline at all
      `.${live}`,
      `1e300.${live}`,
      `Infinity.${live}`,
      `NaN.${live}`,
      `-1.${live}`,
      `${2 ** 53}.${live}`,
      `${T0 - 1}.${live}`,
      `${T0 + 60_000}.${payload({ absoluteExpiresAt: 1e300 })}`,
      `${T0 + 60_000}.${payload({ absoluteExpiresAt: T0 - 1 })}`,
      `${T0 + 60_000}.${live.replace(/"a":\d+/, '"a":null')}`,
      `${T0 + 60_000}.${live.replace(/"a":\d+,/, '')}`,
    ]
    for (const plaintext of refused) {
      const session = await manager.load({ cookie: await cookie(plaintext) })
      assert.equal(session.isNew, true, plaintext.slice(0, 40))
      assert.equal(session.get('userId'), undefined)
    }
    assert.equal(reasons.length, refused.length)
    assert.ok(
      reasons.every((reason) => reason === 'garbage' || reason === 'expired'),
      reasons.join(),
    )
  })

  it('#43: refuses a stateless cookie sealed under a secret that was dropped from the list', async () => {
    const issuing = statelessManager([SECRET_A])
    const { cookie } = await request(issuing.manager, undefined, (s) => s.set('userId', 'alice'))
    const rotating = statelessManager([SECRET_B, SECRET_A])
    assert.equal((await request(rotating.manager, cookie)).session.get('userId'), 'alice', 'still listed')
    const dropped = statelessManager([SECRET_B])
    const { session, result } = await request(dropped.manager, cookie)
    assert.equal(session.isNew, true)
    assert.equal(session.get('userId'), undefined)
    assert.deepEqual(dropped.reasons, ['bad-signature'])
    assert.deepEqual(result.setCookie, [], 'nothing is re-sealed for it')
  })
})
