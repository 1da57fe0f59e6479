import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { FORBIDDEN_KEYS, parsePayload, type SessionMeta, serializePayload } from './payload.js'

const RUNS = Number(process.env.FUZZ_RUNS ?? 2_000)

// The stored form as the first version wrote it: JSON.stringify of an object built field by field.
function reference(meta: SessionMeta, data: Record<string, unknown>, key?: string): string {
  const wire: Record<string, unknown> = { v: 1, c: meta.createdAt, a: meta.absoluteExpiresAt, d: data }
  if (key !== undefined) wire.h = key.slice(0, 8)
  if (meta.userId !== undefined) {
    wire.u = meta.userId
    if (meta.authenticatedAt !== undefined) wire.t = meta.authenticatedAt
    if (meta.userAgent !== undefined) wire.ua = meta.userAgent
    if (meta.ip !== undefined) wire.ip = meta.ip
  }
  if (meta.csrfSecret !== undefined) wire.k = meta.csrfSecret
  if (meta.issuedAt !== undefined) wire.n = meta.issuedAt
  if (meta.successor !== undefined) wire.s = meta.successor
  return JSON.stringify(wire)
}

const time = fc.integer({ min: 0, max: 8.64e15 })
const meta: fc.Arbitrary<SessionMeta> = fc.record(
  {
    createdAt: time,
    absoluteExpiresAt: time,
    userId: fc.string(),
    authenticatedAt: time,
    userAgent: fc.string(),
    ip: fc.string(),
    csrfSecret: fc.string(),
    issuedAt: time,
    successor: fc.stringMatching(/^[0-9a-f]{64}$/),
  },
  { requiredKeys: ['createdAt', 'absoluteExpiresAt'] },
)
const data = fc.dictionary(fc.string(), fc.jsonValue()) as fc.Arbitrary<Record<string, unknown>>
const key = fc.option(fc.stringMatching(/^[0-9a-f]{64}$/), { nil: undefined })

describe('stored payloads', () => {
  it('writes byte for byte what JSON.stringify of the whole record wrote, so stored sessions compare equal', () => {
    fc.assert(
      fc.property(meta, data, key, (m, d, k) => assert.equal(serializePayload(m, d, k), reference(m, d, k))),
      { numRuns: RUNS },
    )
    const odd = { createdAt: Number.NaN, absoluteExpiresAt: Number.POSITIVE_INFINITY }
    assert.equal(serializePayload(odd, {}), reference(odd, {}))
  })

  it('reads back what it wrote: metadata and data, quotes, escapes and non-ASCII text included, prototype keys dropped', () => {
    fc.assert(
      fc.property(meta, data, key, (m, d, k) => {
        const parsed = parsePayload(serializePayload(m, d, k), Number.POSITIVE_INFINITY)
        assert.ok(parsed !== undefined)
        // Prototype keys are dropped on the way in, at any depth.
        const withoutForbidden = JSON.parse(JSON.stringify(d), (name, value) =>
          FORBIDDEN_KEYS.has(name) ? undefined : value,
        )
        assert.deepEqual(parsed.data, withoutForbidden)
        const expected: Record<string, unknown> = { ...m }
        if (m.userId === undefined) {
          delete expected.authenticatedAt
          delete expected.userAgent
          delete expected.ip
        }
        if (k !== undefined) expected.keyCheck = k.slice(0, 8)
        assert.deepEqual({ ...parsed.meta }, expected)
      }),
      { numRuns: RUNS },
    )
  })

  it('refuses data nested deeper than 64 levels, unless told the text was sealed by this process', () => {
    let deep: Record<string, unknown> = {}
    for (let i = 0; i < 70; i++) deep = { next: deep }
    const text = serializePayload({ createdAt: 1, absoluteExpiresAt: 2 }, deep)
    assert.equal(parsePayload(text, Number.POSITIVE_INFINITY), undefined)
    assert.ok(parsePayload(text, Number.POSITIVE_INFINITY, false) !== undefined)
  })
})
