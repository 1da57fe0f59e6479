// Manager-level fuzzing (checklist #17 and §2 of docs/security.md): arbitrary Cookie headers, Authorization
// headers, URL parameters and stored payloads go into manager.load() through every transport. For each one:
// no exception escapes, the result is a fresh session unless the input carried a token the manager issued,
// input the manager cannot verify costs no store read, and an untouched session writes nothing.
//
// Runs per property come from FUZZ_RUNS (default 10,000): `npm run fuzz` runs a million.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { sha256Hex } from '../../src/internal/crypto.js'
import { createSessionManager, type SessionRequest, type SessionTransport } from '../../src/manager.js'
import { FORBIDDEN_KEYS, serializePayload } from '../../src/payload.js'
import { CookieSigner } from '../../src/signer.js'
import type { Store, StoreRecord } from '../../src/store.js'
import { MemoryStore } from '../../src/stores/memory.js'
import { SECRET_A, SECRET_B, spyStore, T0 } from '../support.js'
import { bound } from './support.js'

const RUNS = fuzzRuns()
const NAME = '__Host-sid'
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

function fuzzRuns(): number {
  const raw = process.env.FUZZ_RUNS
  if (raw === undefined || raw === '') return 10_000
  const runs = Number(raw)
  if (!Number.isSafeInteger(runs) || runs < 1)
    throw new Error(`FUZZ_RUNS must be a positive integer, got ${raw}`)
  return runs
}

type Data = { visits?: number; fuzz?: number }

/** A manager on a fixed clock over a spied MemoryStore holding two live sessions, for one transport. */
async function world(transport: SessionTransport) {
  const memory = new MemoryStore({ cleanupIntervalMs: 0, maxSessions: 1_000 })
  const spy = spyStore(memory)
  const options = { store: spy.store, clock: () => T0, onWarning: () => {}, transport }
  // The newest secret signs; a token of the older one still verifies (and is re-issued).
  const manager = createSessionManager<Data>({ ...options, secrets: [SECRET_A, SECRET_B] })
  const older = createSessionManager<Data>({ ...options, secrets: [SECRET_B] })
  const tokens: string[] = []
  for (const [issuer, visits] of [
    [manager, 1],
    [manager, 2],
    [older, 3],
  ] as const) {
    const session = await issuer.load({ cookie: undefined })
    session.set('visits', visits)
    tokens.push(session.token())
    await issuer.commit(session)
  }
  spy.reset()
  // How the runs went: a fuzzer that never reaches a path proves nothing about it.
  const tally = { loaded: 0, refusedUnread: 0, refusedAfterRead: 0 }
  return { manager, memory, spy, tokens, tally }
}

/** Fails a property whose inputs missed the interesting paths: live sessions, and refusals with no read. */
function assertReached({ tally }: Awaited<ReturnType<typeof world>>): void {
  const runs = tally.loaded + tally.refusedUnread + tally.refusedAfterRead
  if (runs < 1000) return // too few runs to expect every path (FUZZ_RUNS set low by hand)
  assert.ok(tally.loaded >= runs * 0.02, `only ${tally.loaded} of ${runs} runs loaded a live session`)
  assert.ok(
    tally.refusedUnread >= runs * 0.3,
    `only ${tally.refusedUnread} of ${runs} runs were refused unread`,
  )
}

/** One code unit, lone surrogates included. */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code))
const anyText = (maxLength: number) =>
  fc.oneof(
    fc.string({ unit: codeUnit, maxLength }),
    fc.string({ unit: 'binary', maxLength }),
    fc.string({ unit: fc.constantFrom(...BASE64URL, '.', '=', ';', ' ', '"', '%', ','), maxLength }),
  )

/** Edits that keep a token almost valid: flips, insertions, deletions, truncations, case, quotes, escapes. */
const edit = fc.tuple(
  fc.constantFrom(
    'flip',
    'insert',
    'delete',
    'truncate',
    'append',
    'prepend',
    'case',
    'quote',
    'escape',
    'dot',
  ),
  fc.nat(),
  fc.oneof(fc.constantFrom(...BASE64URL), codeUnit, fc.constantFrom('.', '=', ' ', '\t', '%', '"', ';', ',')),
)
function mutate(token: string, edits: readonly (readonly [string, number, string])[]): string {
  let value = token
  for (const [kind, at, char] of edits) {
    const i = value.length === 0 ? 0 : at % value.length
    if (kind === 'flip') value = value.slice(0, i) + char + value.slice(i + 1)
    else if (kind === 'insert') value = value.slice(0, i) + char + value.slice(i)
    else if (kind === 'delete') value = value.slice(0, i) + value.slice(i + 1)
    else if (kind === 'truncate') value = value.slice(0, i)
    else if (kind === 'append') value += char
    else if (kind === 'prepend') value = char + value
    else if (kind === 'case') value = value.slice(0, i) + value.slice(i).toUpperCase()
    else if (kind === 'quote') value = `"${value}"`
    else if (kind === 'escape') value = value.slice(0, i) + encode(value.slice(i, i + 1)) + value.slice(i + 1)
    else value = `${value}.${value.slice(-43)}`
  }
  return value
}

/** `text` repeated `times` times, but never much past 40,000 characters: twice the 16 kB caps is enough. */
function repeat(text: string, times: number): string {
  return text.repeat(Math.max(1, Math.min(times, Math.ceil(40_000 / Math.max(1, text.length)))))
}

/** encodeURIComponent, or the text as is where it holds a lone surrogate (which cannot be encoded). */
function encode(text: string): string {
  try {
    return encodeURIComponent(text)
  } catch {
    return text
  }
}

/** A token: one the manager issued, an edited one, a forged one, or noise. */
const tokenArb = (tokens: readonly string[]) => {
  const issued = fc.constantFrom(...tokens)
  const forger = new CookieSigner([SECRET_A], 'flash')
  return fc.oneof(
    { weight: 2, arbitrary: issued },
    {
      weight: 6,
      arbitrary: fc
        .tuple(issued, fc.array(edit, { minLength: 1, maxLength: 4 }))
        .map(([t, e]) => mutate(t, e)),
    },
    {
      weight: 1,
      arbitrary: fc
        .string({ unit: fc.constantFrom(...BASE64URL), minLength: 43, maxLength: 43 })
        .map((id) => forger.sign(id)),
    },
    { weight: 2, arbitrary: anyText(120) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom('A', '.', '=', 'é', ';'), fc.integer({ min: 500, max: 20_000 }))
        .map(([c, n]) => c.repeat(n)),
    },
  )
}

/** Cookie headers: pairs joined in odd ways, look-alike names, duplicates, split lines, huge headers. */
const cookieArb = (tokens: readonly string[]) => {
  const name = fc.oneof(
    { weight: 6, arbitrary: fc.constant(NAME) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '__host-sid',
        '__Host-sid ',
        ' __Host-sid',
        '%5F%5FHost-sid',
        '',
        'sid',
        '__Host-sid.0',
        '__Host-sid-cache',
        '__proto__',
        'constructor',
      ),
    },
    { weight: 1, arbitrary: anyText(12) },
  )
  const pair = fc.oneof(
    { weight: 8, arbitrary: fc.tuple(name, tokenArb(tokens)).map(([n, v]) => `${n}=${v}`) },
    { weight: 1, arbitrary: anyText(40) },
  )
  const line = fc
    .tuple(fc.array(pair, { maxLength: 7 }), fc.constantFrom('; ', ';', ', ', ' ; ', ';;', '\t;'))
    .map(([pairs, separator]) => pairs.join(separator))
  return fc.oneof(
    { weight: 6, arbitrary: line },
    { weight: 2, arbitrary: fc.array(line, { maxLength: 4 }) },
    {
      weight: 1,
      arbitrary: fc.tuple(line, fc.integer({ min: 2, max: 3000 })).map(([l, n]) => repeat(`${l}; `, n)),
    },
    { weight: 1, arbitrary: anyText(300) },
  )
}

/** Authorization header values: Bearer and other schemes, any case and spacing, edited and huge tokens. */
const authorizationArb = (tokens: readonly string[]) =>
  fc.oneof(
    {
      weight: 6,
      arbitrary: fc
        .tuple(
          fc.constantFrom('Bearer ', 'bearer ', 'BEARER  ', ' Bearer\t', 'Bearer', 'Basic ', 'Token ', ''),
          tokenArb(tokens),
          fc.constantFrom('', ' ', '\t', ', Bearer x'),
        )
        .map((parts) => parts.join('')),
    },
    { weight: 1, arbitrary: anyText(200) },
    { weight: 1, arbitrary: fc.constant(undefined) },
  )

/** Request targets: the token parameter (repeated, escaped, edited) among others, fragments, huge URLs. */
const urlArb = (tokens: readonly string[]) => {
  const param = fc.oneof(
    { weight: 4, arbitrary: tokenArb(tokens).map((t) => `sid=${t}`) },
    { weight: 2, arbitrary: tokenArb(tokens).map((t) => `sid=${encode(t)}`) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom('SID', 'sid[]', 's%69d', 'sid ', ''), tokenArb(tokens))
        .map(([k, t]) => `${k}=${t}`),
    },
    { weight: 1, arbitrary: anyText(30) },
  )
  return fc.oneof(
    {
      weight: 8,
      arbitrary: fc
        .tuple(
          fc.constantFrom('/', '/a/b', ''),
          fc.array(param, { maxLength: 5 }),
          fc.constantFrom('', '#x', '#sid=1'),
        )
        .map(([path, params, hash]) => `${path}?${params.join('&')}${hash}`),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(param, fc.integer({ min: 100, max: 2000 }))
        .map(([p, n]) => `/?${repeat(`${p}&`, n)}`),
    },
    { weight: 1, arbitrary: fc.oneof(anyText(100), fc.constant(undefined)) },
  )
}

/** What a transport reads from the request, so the test can tell whether the input held an issued token. */
type Channel = 'cookie' | 'authorization' | 'x-session' | 'url'

/** Loads `request`; checks everything a load and an untouched or written commit must guarantee. */
async function check(
  env: Awaited<ReturnType<typeof world>>,
  request: SessionRequest,
  channel: Channel,
  input: unknown,
  write: boolean,
): Promise<void> {
  const { manager, spy, memory, tokens } = env
  spy.reset()
  const text = JSON.stringify(input) ?? ''
  // Percent-escapes decoded too, leniently: the URL transport decodes its parameter. (Tokens are ASCII.)
  const decoded = text.replace(/%([0-7][0-9a-fA-F])/g, (_, hex: string) =>
    String.fromCharCode(Number.parseInt(hex, 16)),
  )
  const carriesToken = tokens.some((token) => text.includes(token) || decoded.includes(token))
  const session = await manager.load(request)
  if (!session.isNew) env.tally.loaded++
  else if (spy.count('get') === 0) env.tally.refusedUnread++
  else env.tally.refusedAfterRead++
  if (!carriesToken) {
    assert.equal(spy.count('get'), 0, `store read for unverifiable ${channel} input`)
    assert.equal(session.isNew, true)
  }
  if (!session.isNew) assert.ok([1, 2, 3].includes(session.get('visits')!), 'a live session, not another')
  if (write) session.set('fuzz', 1)
  const before = spy.calls.length
  const result = await manager.commit(session)
  const writes = spy.calls.slice(before).filter(({ method }) => method === 'create' || method === 'update')
  if (!write && session.isNew) {
    assert.equal(writes.length, 0, 'an untouched session writes nothing')
    assert.deepEqual(result.setCookie, [])
    assert.equal(result.token, undefined)
  }
  if (write && session.isNew) {
    // A fresh session gets an ID of the server's choosing, never one the request presented.
    const issued = result.token ?? result.setCookie[0]!.slice(NAME.length + 1).split(';')[0]!
    const id = issued.split('.')[0]!
    assert.ok(!text.includes(id), 'a presented ID was adopted')
    await memory.destroy(sha256Hex(id)) // keep the store small over a million runs
  }
  if (Object.keys(Object.prototype).length > 0 || ({} as { x?: unknown }).x !== undefined) {
    assert.fail('Object.prototype was polluted')
  }
}

describe(`manager fuzzing, ${RUNS.toLocaleString('en')} runs per property`, () => {
  it(`cookie transport: ${RUNS} arbitrary Cookie headers (random bytes, edited tokens, look-alike names, duplicates, split and huge headers), with valid tokens in the URL and Authorization ignored`, async () => {
    const env = await world({ type: 'cookie' })
    const [valid] = env.tokens as [string]
    await fc.assert(
      fc.asyncProperty(cookieArb(env.tokens), fc.boolean(), async (cookie, write) => {
        const request: SessionRequest = {
          cookie,
          host: 'localhost',
          url: `/?sid=${valid}`,
          header: (name) => (name === 'authorization' ? `Bearer ${valid}` : valid),
        }
        await check(env, request, 'cookie', cookie, write)
      }),
      { numRuns: RUNS },
    )
    assertReached(env)
  })

  it(`header transport: ${RUNS} arbitrary Authorization headers, with a valid cookie and URL token ignored`, async () => {
    const env = await world({ type: 'header' })
    const [valid] = env.tokens as [string]
    await fc.assert(
      fc.asyncProperty(authorizationArb(env.tokens), fc.boolean(), async (authorization, write) => {
        const request: SessionRequest = {
          cookie: `${NAME}=${valid}`,
          host: 'localhost',
          url: `/?sid=${valid}`,
          header: (name) => (name === 'authorization' ? authorization : valid),
        }
        await check(env, request, 'authorization', authorization, write)
      }),
      { numRuns: RUNS },
    )
    assertReached(env)
  })

  it(`named header transport: ${RUNS} arbitrary raw header values`, async () => {
    const env = await world({ type: 'header', name: 'x-session' })
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(tokenArb(env.tokens), fc.constant(undefined)),
        fc.boolean(),
        async (value, write) => {
          const request: SessionRequest = {
            cookie: undefined,
            header: (name) => (name === 'x-session' ? value : env.tokens[0]),
          }
          await check(env, request, 'x-session', value, write)
        },
      ),
      { numRuns: RUNS },
    )
    assertReached(env)
  })

  it(`query transport: ${RUNS} arbitrary request targets, with a valid cookie and Authorization ignored`, async () => {
    const env = await world({ type: 'query' })
    const [valid] = env.tokens as [string]
    await fc.assert(
      fc.asyncProperty(urlArb(env.tokens), fc.boolean(), async (url, write) => {
        const request: SessionRequest = {
          cookie: `${NAME}=${valid}`,
          url,
          header: (name) => (name === 'authorization' ? `Bearer ${valid}` : valid),
        }
        await check(env, request, 'url', url, write)
      }),
      { numRuns: RUNS },
    )
    assertReached(env)
  })

  it(`store garbage: ${RUNS} arbitrary records and payload strings returned by get() for a validly signed cookie`, async () => {
    const valid = serializePayload({ createdAt: T0, absoluteExpiresAt: T0 + 3_600_000 }, { visits: 1 })
    const timestamp = fc.oneof(
      fc.integer({ min: T0 - 1_000_000, max: T0 + 10_000_000 }),
      fc.constantFrom(0, -1, 1e300, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, 9e15, T0 + 0.5),
    )
    const wire = fc.record(
      {
        v: fc.oneof(fc.constant(1), fc.jsonValue()),
        c: fc.oneof(timestamp, fc.jsonValue()),
        a: fc.oneof(timestamp, fc.jsonValue()),
        d: fc.oneof(
          fc.dictionary(fc.oneof(fc.string(), fc.constantFrom(...FORBIDDEN_KEYS)), fc.jsonValue()),
          fc.jsonValue(),
        ),
        u: fc.oneof(fc.string(), fc.jsonValue()),
        t: timestamp,
        k: fc.oneof(fc.string(), fc.jsonValue()),
        n: timestamp,
        s: fc.oneof(fc.stringMatching(/^[0-9a-f]{64}$/), fc.string()),
      },
      { requiredKeys: [] },
    )
    const payload = fc.oneof(
      fc.constant(valid),
      fc
        .tuple(fc.constant(valid), fc.array(edit, { minLength: 1, maxLength: 3 }))
        .map(([t, e]) => mutate(t, e)),
      wire.map((object) => JSON.stringify(object)),
      fc.jsonValue().map((value) => JSON.stringify(value)),
      fc.constantFrom(
        '{"v":1,"c":1,"a":1700003600000,"d":{"__proto__":{"polluted":1}}}',
        '{"v":1,"c":1,"a":1700003600000,"d":{"\\u005f_proto__":{"polluted":1}}}',
        '',
        ' ',
        'null',
      ),
      anyText(200),
    )
    const record = fc.oneof(
      { weight: 1, arbitrary: fc.constantFrom(undefined, null) },
      { weight: 1, arbitrary: fc.anything() },
      {
        weight: 8,
        arbitrary: fc.record(
          {
            data: fc.oneof({ weight: 9, arbitrary: payload }, { weight: 1, arbitrary: fc.anything() }),
            version: fc.oneof(fc.integer({ min: 1, max: 5 }), fc.anything()),
            expiresAt: fc.oneof(timestamp, fc.anything()),
            userId: fc.oneof(fc.constant(undefined), fc.string(), fc.anything()),
          },
          { requiredKeys: ['data', 'version', 'expiresAt'] },
        ),
      },
    )
    let current: unknown
    // Returns `current` for every key, and accepts every write: a store that lost its mind, not its connection.
    const accept = async () => true
    const garbage: Store = new Proxy(new MemoryStore({ cleanupIntervalMs: 0 }), {
      get: (target, property) =>
        property === 'get'
          ? async () => current
          : property === 'update' || property === 'touch' || property === 'create'
            ? accept
            : bound(target, property),
    })
    const spy = spyStore(garbage)
    const manager = createSessionManager<Data>({
      store: spy.store,
      secrets: [SECRET_A],
      clock: () => T0,
      onWarning: () => {},
    })
    const cookie = `${NAME}=${new CookieSigner([SECRET_A], NAME).sign('AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')}`
    await fc.assert(
      fc.asyncProperty(record, async (stored) => {
        current = stored
        spy.reset()
        const session = await manager.load({ cookie })
        // A record naming a successor (ID renewal's forwarding record) sends the manager on to read that one
        // too; this store answers every key with the same record, so such runs read more than once.
        const data: unknown =
          typeof stored === 'object' && stored !== null ? (stored as StoreRecord).data : undefined
        const forwards = typeof data === 'string' && data.includes('"s":')
        assert.ok(forwards ? spy.count('get') >= 1 : spy.count('get') === 1, `${spy.count('get')} reads`)
        if (session.isNew && !forwards) {
          const missing = stored === undefined || stored === null
          assert.equal(spy.count('destroy'), missing ? 0 : 1, 'garbage is deleted, a miss is not')
        } else if (!session.isNew) {
          const { expiresAt, version } = stored as StoreRecord
          assert.ok(Number.isSafeInteger(expiresAt) && expiresAt > T0, 'only a live record loads')
          assert.ok(Number.isSafeInteger(version))
          for (const date of [session.absoluteExpiresAt, session.createdAt, session.authenticatedAt]) {
            assert.ok(
              date === undefined || Number.isSafeInteger(date.getTime()),
              'every date is a real instant',
            )
          }
          assert.ok(session.absoluteExpiresAt.getTime() > T0, 'only a session within its deadline loads')
          assertNoForbiddenKey(Object.fromEntries(session.keys().map((key) => [key, session.get(key)])))
        }
        await manager.commit(session) // untouched: at most a touch, or a rewrite in our own serialization
        if (
          Object.keys(Object.prototype).length > 0 ||
          ({} as { polluted?: unknown }).polluted !== undefined
        ) {
          assert.fail('Object.prototype was polluted')
        }
      }),
      { numRuns: RUNS },
    )
  })
})

function assertNoForbiddenKey(value: unknown): void {
  if (typeof value !== 'object' || value === null) return
  for (const key of Object.keys(value)) {
    assert.ok(!FORBIDDEN_KEYS.has(key), `forbidden key ${key} loaded`)
    assertNoForbiddenKey((value as Record<string, unknown>)[key])
  }
}
