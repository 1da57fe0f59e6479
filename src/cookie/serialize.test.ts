import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  parse as cookieParse,
  parseSetCookie as cookieParseSetCookie,
  serialize as cookieSerialize,
} from 'cookie'
import fc from 'fast-check'
import { Cookie as ToughCookie } from 'tough-cookie'
import { parseCookies } from './parse.js'
import { type CookieAttributes, isValidCookieName, isValidCookieValue, serializeCookie } from './serialize.js'

// The set-cookie-string grammar of RFC 6265bis §4.1.1, restricted to the attributes we emit.
const TOKEN = String.raw`[!#$%&'*+\-.^_\`|~0-9A-Za-z]+`
const COOKIE_OCTETS = String.raw`[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]*`
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
const IMF_FIXDATE = String.raw`(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT`
const COOKIE_AV = [
  // The grammar says non-zero-digit *DIGIT; "0" is the deletion idiom §5.6.2 defines (<= 0 expires now).
  'Max-Age=(?:0|[1-9][0-9]*)',
  `Expires=${IMF_FIXDATE}`,
  String.raw`Domain=\.?${LABEL}(?:\.${LABEL})*`,
  String.raw`Path=[\x20-\x3A\x3C-\x7E]*`,
  'Secure',
  'HttpOnly',
  'SameSite=(?:Strict|Lax|None)',
  'Partitioned',
  'Priority=(?:Low|Medium|High)',
].join('|')
const SET_COOKIE_STRING = new RegExp(
  `^${TOKEN}=(?:"${COOKIE_OCTETS}"|${COOKIE_OCTETS})(?:; (?:${COOKIE_AV}))*$`,
)
const ATTRIBUTE_ORDER = [
  'Max-Age',
  'Expires',
  'Domain',
  'Path',
  'Secure',
  'HttpOnly',
  'SameSite',
  'Partitioned',
  'Priority',
]

/** True when every character is printable US-ASCII: no CTL, CR, LF, DEL or non-ASCII. */
function isPrintableAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code < 0x20 || code > 0x7e) return false
  }
  return true
}

function attributeNames(header: string): string[] {
  return header
    .split('; ')
    .slice(1)
    .map((av) => av.split('=')[0] ?? '')
}

function assertInDocumentedOrder(header: string): void {
  const positions = attributeNames(header).map((name) => ATTRIBUTE_ORDER.indexOf(name))
  for (let i = 1; i < positions.length; i++) {
    assert.ok((positions[i - 1] ?? 0) < (positions[i] ?? 0), `attributes out of order in ${header}`)
  }
}

/** Asserts `run` throws a TypeError whose message mentions every given fragment. */
function assertRejects(run: () => unknown, ...fragments: string[]): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof TypeError, `expected a TypeError, got ${String(error)}`)
    for (const fragment of fragments)
      assert.ok(error.message.includes(fragment), `"${error.message}" lacks "${fragment}"`)
    return true
  })
}

/** Lets a test pass values the types forbid, as JavaScript callers and `as` casts can. */
function loose(attributes: Record<string, unknown>): CookieAttributes {
  return attributes as CookieAttributes
}

const identity = (text: string) => text

const tokenArb = fc.string({
  unit: fc.constantFrom(..."!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
  minLength: 1,
  maxLength: 12,
})
const cookieValueArb = fc
  .stringMatching(/^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]{0,16}$/)
  .chain((value) => fc.constantFrom(value, `"${value}"`))
const domainArb = fc
  .tuple(
    fc.boolean(),
    fc.array(fc.stringMatching(/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,8}[A-Za-z0-9])?$/), {
      minLength: 1,
      maxLength: 4,
    }),
  )
  .map(([dot, labels]) => `${dot ? '.' : ''}${labels.join('.')}`)
const pathArb = fc.stringMatching(/^\/(?:[\x20-\x3A\x3C-\x7E]{0,19}[\x21-\x3A\x3C-\x7E])?$/)
const codeUnitArb = fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code))
/** Arbitrary text: full Unicode, lone surrogates, near-misses of the grammar, and valid pieces. */
const anyStringArb = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 30, size: 'max' }),
  fc.string({ unit: codeUnitArb, maxLength: 30 }),
  fc.string({ unit: fc.constantFrom(...'aZ09-._/;=, "\\\r\n\t\0\x7f.é'), maxLength: 30, size: 'max' }),
  tokenArb,
  cookieValueArb,
  domainArb,
  pathArb,
)
/** Valid three times in four, arbitrary otherwise, so both outcomes of a property get exercised. */
function mostlyValid(valid: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.oneof({ arbitrary: valid, weight: 3 }, { arbitrary: anyStringArb, weight: 1 })
}
const validDateArb = fc.date({
  min: new Date('1601-01-01T00:00:00Z'),
  max: new Date('9999-12-31T23:59:59Z'),
  noInvalidDate: true,
})

describe('serializeCookie', () => {
  it('emits just name=value when there are no attributes', () => {
    assert.equal(serializeCookie('sid', 'abc'), 'sid=abc')
    assert.equal(serializeCookie('sid', ''), 'sid=')
    assert.equal(serializeCookie('sid', '"quoted"'), 'sid="quoted"')
  })

  it('emits attributes in the documented order: Max-Age, Expires, Domain, Path, Secure, HttpOnly, SameSite, Partitioned, Priority', () => {
    const header = serializeCookie('sid', 'abc', {
      priority: 'High',
      partitioned: true,
      sameSite: 'None',
      httpOnly: true,
      secure: true,
      path: '/app',
      domain: 'example.com',
      expires: new Date(Date.UTC(2030, 0, 2, 3, 4, 5)),
      maxAge: 3600,
    })
    assert.equal(
      header,
      'sid=abc; Max-Age=3600; Expires=Wed, 02 Jan 2030 03:04:05 GMT; Domain=example.com; Path=/app; Secure; HttpOnly; SameSite=None; Partitioned; Priority=High',
    )
  })

  it('leaves out false flags and undefined attributes', () => {
    const header = serializeCookie('a', 'b', {
      secure: false,
      httpOnly: false,
      partitioned: false,
    })
    assert.equal(header, 'a=b')
  })

  it('serializes a __Host- session cookie', () => {
    assert.equal(
      serializeCookie('__Host-sid', 'dGVzdA', { path: '/', secure: true, httpOnly: true, sameSite: 'Lax' }),
      '__Host-sid=dGVzdA; Path=/; Secure; HttpOnly; SameSite=Lax',
    )
  })

  describe('Max-Age', () => {
    it('emits Max-Age=0 for zero and negative values (delete the cookie)', () => {
      assert.equal(serializeCookie('a', '', { maxAge: 0 }), 'a=; Max-Age=0')
      assert.equal(serializeCookie('a', '', { maxAge: -0 }), 'a=; Max-Age=0')
      assert.equal(serializeCookie('a', '', { maxAge: -1 }), 'a=; Max-Age=0')
      assert.equal(serializeCookie('a', '', { maxAge: Number.MIN_SAFE_INTEGER }), 'a=; Max-Age=0')
    })

    it('caps Max-Age at 400 days (34560000 s), as RFC 6265bis §5.5 has user agents do', () => {
      assert.equal(serializeCookie('a', 'b', { maxAge: 34_560_000 }), 'a=b; Max-Age=34560000')
      assert.equal(serializeCookie('a', 'b', { maxAge: 34_560_001 }), 'a=b; Max-Age=34560000')
      assert.equal(serializeCookie('a', 'b', { maxAge: 1e21 }), 'a=b; Max-Age=34560000')
    })

    it('rejects NaN, Infinity, -Infinity, 1.5 and non-numbers', () => {
      for (const maxAge of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1.5, -0.5]) {
        assertRejects(() => serializeCookie('a', 'b', { maxAge }), 'Max-Age', 'integer')
      }
      assertRejects(() => serializeCookie('a', 'b', loose({ maxAge: '60' })), 'Max-Age', '"60"')
      assertRejects(() => serializeCookie('a', 'b', loose({ maxAge: 60n })), 'Max-Age', 'bigint')
    })
  })

  describe('Expires', () => {
    it('emits an IMF-fixdate via toUTCString()', () => {
      const expires = new Date(Date.UTC(2001, 8, 9, 1, 46, 40, 999))
      assert.equal(serializeCookie('a', 'b', { expires }), 'a=b; Expires=Sun, 09 Sep 2001 01:46:40 GMT')
    })

    it('rejects an invalid Date and anything that is not a Date', () => {
      assertRejects(
        () => serializeCookie('a', 'b', { expires: new Date(Number.NaN) }),
        'Expires',
        'valid Date',
      )
      for (const expires of [Date.now(), '2030-01-01', { getTime: () => 0 }, null]) {
        assertRejects(() => serializeCookie('a', 'b', loose({ expires })), 'Expires', 'valid Date')
      }
    })

    it('rejects years outside 1601-9999, which user agents cannot parse', () => {
      assertRejects(
        () => serializeCookie('a', 'b', { expires: new Date(Date.UTC(1600, 11, 31)) }),
        'Expires',
        '1601',
      )
      assertRejects(
        () => serializeCookie('a', 'b', { expires: new Date(Date.UTC(10_000, 0, 1)) }),
        'Expires',
        '9999',
      )
      assert.match(
        serializeCookie('a', 'b', { expires: new Date(Date.UTC(1601, 0, 1)) }),
        /Expires=Mon, 01 Jan 1601/,
      )
    })
  })

  describe('Domain', () => {
    it('accepts host names, a leading dot, digits and inner hyphens', () => {
      for (const domain of [
        'example.com',
        '.example.com',
        'a.b-c.example',
        'xn--bcher-kva.example',
        '127.0.0.1',
        'localhost',
      ]) {
        assert.equal(serializeCookie('a', 'b', { domain }), `a=b; Domain=${domain}`)
      }
    })

    it('rejects header injection such as x\\r\\nSet-Cookie: y', () => {
      assertRejects(
        () => serializeCookie('a', 'b', { domain: 'x\r\nSet-Cookie: y' }),
        'Domain',
        String.raw`"x\r\nSet-Cookie: y"`,
      )
    })

    it('rejects ";", whitespace, CTLs, non-ASCII, empty labels, edge hyphens, trailing dots and overlong names', () => {
      const bad = [
        '',
        '.',
        'example.com;Secure',
        'exa mple.com',
        'example.com\t',
        'exam\0ple.com',
        'ex\x7fample.com',
        'exämple.com',
        'a..com',
        '..example.com',
        'example.com.',
        '-a.com',
        'a-.com',
        'a_b.com',
        `${'a'.repeat(64)}.com`,
        Array(64).fill('abc').join('.'),
      ]
      for (const domain of bad) assertRejects(() => serializeCookie('a', 'b', { domain }), 'Domain')
    })
  })

  describe('Path', () => {
    it('accepts "/" and paths of printable ASCII, spaces and "=" included', () => {
      for (const path of ['/', '/app', '/a b', '/a=b', '/%2F', "/!$&'()*+,-.:@~"]) {
        assert.equal(serializeCookie('a', 'b', { path }), `a=b; Path=${path}`)
      }
    })

    it('rejects /;Domain=evil and other ";" injection', () => {
      assertRejects(() => serializeCookie('a', 'b', { path: '/;Domain=evil' }), 'Path', '"/;Domain=evil"')
    })

    it('rejects CTLs, CR/LF, DEL, non-ASCII, paths not starting with "/" and paths ending in a space', () => {
      for (const path of [
        '/a\nb',
        '/a\r\nSet-Cookie: x',
        '/\0',
        '/\t',
        '/\x7f',
        '/ä',
        '/\ud800',
        '',
        'app',
        ' /app',
        '/app ',
      ]) {
        assertRejects(() => serializeCookie('a', 'b', { path }), 'Path')
      }
    })

    it('rejects an attribute value over 1024 bytes and accepts one of exactly 1024', () => {
      const path = `/${'a'.repeat(1023)}`
      assert.equal(serializeCookie('a', 'b', { path }).length, 'a=b; Path='.length + 1024)
      assertRejects(() => serializeCookie('a', 'b', { path: `${path}a` }), 'Path', '1024 bytes')
      assertRejects(
        () => serializeCookie('a', 'b', { domain: `${'a.'.repeat(600)}com` }),
        'Domain',
        '1024 bytes',
      )
    })
  })

  describe('SameSite, Priority and flags', () => {
    it('rejects SameSite values other than exactly Strict, Lax or None, even through an `as` cast', () => {
      for (const sameSite of ['Lax; Secure', 'lax', 'LAX', 'strict', '', 'Default', true, 1]) {
        assertRejects(() => serializeCookie('a', 'b', loose({ sameSite, secure: true })), 'SameSite')
      }
    })

    it('rejects Priority values other than exactly Low, Medium or High', () => {
      for (const priority of ['high', 'Urgent', 'High; Secure', '', 2]) {
        assertRejects(() => serializeCookie('a', 'b', loose({ priority })), 'Priority')
      }
    })

    it('rejects non-boolean flags, so secure: "false" cannot turn Secure on by accident', () => {
      for (const key of ['secure', 'httpOnly', 'partitioned']) {
        assertRejects(() => serializeCookie('a', 'b', loose({ [key]: 'false' })), 'must be a boolean')
        assertRejects(() => serializeCookie('a', 'b', loose({ [key]: 1 })), 'must be a boolean')
      }
    })
  })

  describe('cookies browsers would drop', () => {
    it('requires Secure for SameSite=None and for Partitioned', () => {
      assertRejects(() => serializeCookie('a', 'b', { sameSite: 'None' }), 'SameSite', 'secure')
      assertRejects(() => serializeCookie('a', 'b', { partitioned: true }), 'Partitioned', 'secure')
      assert.equal(
        serializeCookie('a', 'b', { sameSite: 'None', secure: true }),
        'a=b; Secure; SameSite=None',
      )
    })

    it('enforces the __Secure- and __Host- prefix rules of RFC 6265bis §4.1.3, case-insensitively', () => {
      assertRejects(() => serializeCookie('__Secure-sid', 'x'), '__Secure-')
      assertRejects(() => serializeCookie('__secure-sid', 'x'), '__Secure-')
      assert.equal(
        serializeCookie('__Secure-sid', 'x', { secure: true, domain: 'example.com' }),
        '__Secure-sid=x; Domain=example.com; Secure',
      )
      assertRejects(() => serializeCookie('__Host-sid', 'x', { path: '/' }), '__Host-')
      assertRejects(() => serializeCookie('__Host-sid', 'x', { secure: true }), '__Host-')
      assertRejects(() => serializeCookie('__Host-sid', 'x', { secure: true, path: '/app' }), '__Host-')
      assertRejects(
        () => serializeCookie('__Host-sid', 'x', { secure: true, path: '/', domain: 'example.com' }),
        '__Host-',
      )
      assertRejects(() => serializeCookie('__HOST-sid', 'x', { secure: true }), '__Host-')
    })
  })

  describe('name and value', () => {
    it('rejects the name a=b; Max-Age=9 and every other non-token name', () => {
      const bad = [
        'a=b; Max-Age=9',
        '',
        'a b',
        'a;b',
        'a,b',
        'a"b',
        'a(b',
        'a/b',
        'a:b',
        'ä',
        'a\0',
        '\x7f',
        'a\r\nb',
        ' a',
      ]
      for (const name of bad) assertRejects(() => serializeCookie(name, 'v'), 'name', 'token')
    })

    it('rejects values with ";", ",", space, "\\", stray DQUOTEs, CTLs or non-ASCII', () => {
      const bad = [
        'a;b',
        'a,b',
        'a b',
        'a\\b',
        '"',
        '"a',
        'a"',
        'a"b',
        '""a""',
        'a\tb',
        'a\0',
        'a\r\nb',
        '\x7f',
        'é',
        '\ud800',
        ' ',
      ]
      for (const value of bad) assertRejects(() => serializeCookie('a', value), 'value', 'encode it first')
    })

    it('rejects a name plus value over 4096 bytes and accepts exactly 4096', () => {
      assert.equal(serializeCookie('a', 'b'.repeat(4095)).length, 4097)
      assertRejects(() => serializeCookie('a', 'b'.repeat(4096)), 'name and value', '4096 bytes')
      assertRejects(() => serializeCookie('a'.repeat(4000), 'b'.repeat(97)), '4096 bytes')
    })

    it('throws a TypeError for a non-string name or value', () => {
      assertRejects(() => serializeCookie(1 as unknown as string, 'v'), 'name', 'string')
      assertRejects(() => serializeCookie('a', undefined as unknown as string), 'value', 'string')
    })

    it('never echoes a huge value: messages show at most 40 characters, escaped', () => {
      const huge = `x\r\n${'y'.repeat(3000)}`
      for (const run of [
        () => serializeCookie('a', huge.slice(0, 4000)),
        () => serializeCookie('a', 'b', { path: huge }),
      ]) {
        assert.throws(run, (error: unknown) => {
          assert.ok(error instanceof TypeError)
          assert.ok(error.message.length < 400, error.message)
          assert.doesNotMatch(error.message, /[\r\n]/)
          assert.ok(!error.message.includes('y'.repeat(41)))
          return true
        })
      }
    })
  })

  it('for 3,000 arbitrary names, values, domains, paths and attributes either throws a TypeError or emits a grammar-valid set-cookie-string', () => {
    /** Picks `valid` three times in four and `invalid` otherwise. */
    const either = <T, U>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<U>) =>
      fc.oneof({ arbitrary: valid, weight: 3 }, { arbitrary: invalid, weight: 1 })
    const attributesArb = fc.record(
      {
        maxAge: either(
          fc.integer(),
          fc.oneof(fc.double(), fc.constantFrom(0, -0, 1e21, Number.NaN, Number.POSITIVE_INFINITY)),
        ),
        expires: either(validDateArb, fc.date({ noInvalidDate: false })),
        domain: mostlyValid(domainArb),
        path: mostlyValid(pathArb),
        secure: either(fc.boolean(), fc.constant('true')),
        httpOnly: fc.boolean(),
        sameSite: either(fc.constantFrom('Strict', 'Lax', 'None'), fc.constantFrom('lax', 'Lax; Secure', '')),
        partitioned: fc.boolean(),
        priority: either(fc.constantFrom('Low', 'Medium', 'High'), fc.constantFrom('high', 'High\r\nX: y')),
      },
      { requiredKeys: [] },
    )
    let emitted = 0
    fc.assert(
      fc.property(
        mostlyValid(tokenArb),
        mostlyValid(cookieValueArb),
        attributesArb,
        (name, value, attributes) => {
          let header: string
          try {
            header = serializeCookie(name, value, loose(attributes))
          } catch (error) {
            assert.ok(error instanceof TypeError, String(error))
            assert.doesNotMatch(error.message, /[\r\n]/)
            return
          }
          emitted++
          assert.match(header, SET_COOKIE_STRING)
          assert.ok(isPrintableAscii(header), header)
          assertInDocumentedOrder(header)
        },
      ),
      { numRuns: 3000 },
    )
    console.log('EMITTED', emitted)
    assert.ok(emitted > 150, `only ${emitted} inputs were accepted; the property barely ran`)
  })
})

describe('isValidCookieName and isValidCookieValue', () => {
  it('accept exactly the RFC 9110 tokens as names', () => {
    assert.equal(isValidCookieName('__Host-sid'), true)
    assert.equal(isValidCookieName("!#$%&'*+-.^_`|~09azAZ"), true)
    for (const name of ['', 'a b', 'a=b', 'a;b', '(', ')', '/', '@', '"', 'é', '\0']) {
      assert.equal(isValidCookieName(name), false, JSON.stringify(name))
    }
  })

  it('accept cookie-octets, optionally inside one pair of DQUOTEs, as values', () => {
    for (const value of ['', '""', '"abc"', 'dGVzdA', 'a-b_c.d~e', '%20', 'a=b']) {
      assert.equal(isValidCookieValue(value), true, value)
    }
    for (const value of ['"', '"a', 'a"', '"a"b"', 'a b', 'a;b', 'a,b', 'a\\b', '\t', 'é']) {
      assert.equal(isValidCookieValue(value), false, JSON.stringify(value))
    }
  })

  it('agree with serializeCookie on 2,000 arbitrary names and values', () => {
    fc.assert(
      fc.property(anyStringArb, anyStringArb, (name, value) => {
        let accepted = true
        try {
          serializeCookie(name, value)
        } catch {
          accepted = false
        }
        const prefixed = /^__(?:secure|host)-/i.test(name)
        assert.equal(accepted, isValidCookieName(name) && isValidCookieValue(value) && !prefixed)
      }),
      { numRuns: 2000 },
    )
  })
})

describe('agreement with the cookie package (cookie@1) and tough-cookie', () => {
  const validAttributesArb = fc
    .record(
      {
        maxAge: fc.integer({ min: -100, max: 50_000_000 }),
        expires: validDateArb,
        domain: domainArb,
        path: pathArb,
        secure: fc.boolean(),
        httpOnly: fc.boolean(),
        sameSite: fc.constantFrom('Strict', 'Lax', 'None'),
        partitioned: fc.boolean(),
        priority: fc.constantFrom('Low', 'Medium', 'High'),
      },
      { requiredKeys: [] },
    )
    .map((attributes): CookieAttributes => {
      const needsSecure = attributes.sameSite === 'None' || attributes.partitioned === true
      return needsSecure ? { ...attributes, secure: true } : attributes
    })
  const plainNameArb = tokenArb.filter((name) => !name.startsWith('__'))

  it('round-trips 1,000 valid cookies through cookie.parse, cookie.parseSetCookie, tough-cookie and parseCookies', () => {
    fc.assert(
      fc.property(plainNameArb, cookieValueArb, validAttributesArb, (name, value, attributes) => {
        const header = serializeCookie(name, value, attributes)

        assert.equal(cookieParse(header, { decode: identity })[name], value)
        assert.equal(parseCookies(header).get(name)?.[0], value)

        const parsed = cookieParseSetCookie(header, { decode: identity })
        assert.equal(parsed.name, name)
        assert.equal(parsed.value, value)
        const maxAge =
          attributes.maxAge === undefined ? undefined : Math.min(Math.max(attributes.maxAge, 0), 34_560_000)
        assert.equal(parsed.maxAge, maxAge)
        assert.equal(
          parsed.expires?.getTime(),
          attributes.expires && Math.floor(attributes.expires.getTime() / 1000) * 1000,
        )
        assert.equal(parsed.domain, attributes.domain)
        assert.equal(parsed.path, attributes.path)
        assert.equal(parsed.secure ?? false, attributes.secure ?? false)
        assert.equal(parsed.httpOnly ?? false, attributes.httpOnly ?? false)
        assert.equal(parsed.partitioned ?? false, attributes.partitioned ?? false)
        assert.equal(parsed.sameSite, attributes.sameSite?.toLowerCase())
        assert.equal(parsed.priority, attributes.priority?.toLowerCase())

        const tough = ToughCookie.parse(header)
        assert.ok(tough, `tough-cookie rejected ${header}`)
        assert.equal(tough.key, name)
        assert.equal(tough.value, value)
        assert.equal(tough.path ?? undefined, attributes.path)
        assert.equal(tough.domain ?? undefined, attributes.domain?.replace(/^\./, '').toLowerCase())
        assert.equal(tough.secure, attributes.secure ?? false)
        assert.equal(tough.httpOnly, attributes.httpOnly ?? false)
        if (maxAge !== undefined) assert.equal(tough.maxAge, maxAge)
      }),
      { numRuns: 1000 },
    )
  })

  it('prints name=value exactly like cookie.serialize (identity encode) for the 2,000 arbitrary names and values we accept', () => {
    let accepted = 0
    fc.assert(
      fc.property(anyStringArb, anyStringArb, (name, value) => {
        let ours: string
        try {
          ours = serializeCookie(name, value)
        } catch {
          return
        }
        accepted++
        assert.equal(cookieSerialize(name, value, { encode: identity }), ours)
      }),
      { numRuns: 2000 },
    )
    assert.ok(accepted > 100, `only ${accepted} inputs were accepted; the property barely ran`)
  })

  it('diverges on encoding: cookie.serialize percent-encodes values by default, we take them verbatim or throw', () => {
    assert.equal(cookieSerialize('a', 'b c'), 'a=b%20c')
    assertRejects(() => serializeCookie('a', 'b c'), 'value')
    assert.equal(serializeCookie('a', encodeURIComponent('b c')), 'a=b%20c')
  })

  it('diverges on names: cookie accepts any printable ASCII but "=" and ";", we require a token', () => {
    assert.equal(cookieSerialize('a(b)', 'x'), 'a(b)=x')
    assertRejects(() => serializeCookie('a(b)', 'x'), 'name', 'token')
  })

  it('diverges on values: cookie lets DQUOTE, comma and backslash through, we require cookie-octets', () => {
    assert.equal(cookieSerialize('a', 'x,"y\\', { encode: identity }), 'a=x,"y\\')
    assertRejects(() => serializeCookie('a', 'x,"y\\'), 'value')
  })

  it('diverges on SameSite and Priority: cookie accepts any case and sameSite: true, we accept only the exact spelling', () => {
    assert.equal(cookieSerialize('a', 'b', { sameSite: true, secure: true }), 'a=b; Secure; SameSite=Strict')
    assert.equal(cookieSerialize('a', 'b', { priority: 'high' }), 'a=b; Priority=High')
    assertRejects(() => serializeCookie('a', 'b', loose({ sameSite: true })), 'SameSite')
    assertRejects(() => serializeCookie('a', 'b', loose({ priority: 'high' })), 'Priority')
  })

  it('diverges on attribute order: cookie emits Domain, Path, then Expires, HttpOnly before Secure, and SameSite last', () => {
    const expires = new Date(Date.UTC(2030, 0, 1))
    const options = { maxAge: 60, expires, domain: 'example.com', path: '/', secure: true, httpOnly: true }
    assert.deepEqual(
      attributeNames(cookieSerialize('a', 'b', { ...options, sameSite: 'lax', priority: 'low' })),
      ['Max-Age', 'Domain', 'Path', 'Expires', 'HttpOnly', 'Secure', 'Priority', 'SameSite'],
    )
    assert.deepEqual(
      attributeNames(serializeCookie('a', 'b', { ...options, sameSite: 'Lax', priority: 'Low' })),
      ['Max-Age', 'Expires', 'Domain', 'Path', 'Secure', 'HttpOnly', 'SameSite', 'Priority'],
    )
  })

  it('diverges on Max-Age range: cookie prints negative and over-400-day values as given, we clamp to 0..34560000', () => {
    assert.equal(cookieSerialize('a', 'b', { maxAge: -1 }), 'a=b; Max-Age=-1')
    assert.equal(cookieSerialize('a', 'b', { maxAge: 50_000_000 }), 'a=b; Max-Age=50000000')
    assert.equal(serializeCookie('a', 'b', { maxAge: -1 }), 'a=b; Max-Age=0')
    assert.equal(serializeCookie('a', 'b', { maxAge: 50_000_000 }), 'a=b; Max-Age=34560000')
  })

  it('diverges on empty or relative paths and empty domains: cookie drops or prints them, we throw', () => {
    assert.equal(cookieSerialize('a', 'b', { path: '', domain: '' }), 'a=b')
    assert.equal(cookieSerialize('a', 'b', { path: 'app' }), 'a=b; Path=app')
    assertRejects(() => serializeCookie('a', 'b', { path: '' }), 'Path')
    assertRejects(() => serializeCookie('a', 'b', { path: 'app' }), 'Path')
    assertRejects(() => serializeCookie('a', 'b', { domain: '' }), 'Domain')
  })

  it('diverges on cookies browsers drop: cookie prints them, we throw', () => {
    assert.equal(cookieSerialize('__Host-sid', 'x', { path: '/app' }), '__Host-sid=x; Path=/app')
    assert.equal(cookieSerialize('a', 'b', { sameSite: 'none' }), 'a=b; SameSite=None')
    assert.equal(
      cookieSerialize('a', 'b', { expires: new Date(Date.UTC(1500, 0, 1)) }),
      'a=b; Expires=Mon, 01 Jan 1500 00:00:00 GMT',
    )
    assertRejects(() => serializeCookie('__Host-sid', 'x', { path: '/app' }), '__Host-')
    assertRejects(() => serializeCookie('a', 'b', { sameSite: 'None' }), 'SameSite')
    assertRejects(() => serializeCookie('a', 'b', { expires: new Date(Date.UTC(1500, 0, 1)) }), 'Expires')
  })
})
