import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parse as cookieParse } from 'cookie'
import fc from 'fast-check'
import { getCookieValues, type ParseOptions, parseCookies } from './parse.js'

const TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

/** A valid cookie-name (RFC 9110 token). */
const tokenArb = fc.string({ unit: fc.constantFrom(...TOKEN_CHARS), minLength: 1, maxLength: 12 })

/** A valid cookie-value: cookie-octets, percent-encoded text, or either inside DQUOTEs. */
const cookieValueArb = fc
  .oneof(
    fc.stringMatching(/^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]{0,16}$/),
    fc.string({ unit: 'grapheme', maxLength: 8 }).map(encodeURIComponent),
  )
  .chain((value) => fc.constantFrom(value, `"${value}"`))

/** Optional whitespace as RFC 6265bis §5.6 trims it. */
const owsArb = fc.constantFrom('', '', ' ', '\t', ' \t ')

/** Characters that drive the parser through every branch, plus a few it must treat as data. */
const headerCharArb = fc.constantFrom(
  ...'aAb_-.=;=; \t%2E0"\\,\r\n\0\u00a0é😀',
  '\ud800',
  '\udfff',
  '__Host-sid',
  '%ZZ',
  '%E0%A4%A',
)
const headerishArb = fc.string({ unit: headerCharArb, maxLength: 60, size: 'max' })

/** Any UTF-16 code unit, lone surrogates included. */
const codeUnitArb = fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code))

/** The `cookie` package's result, normalised to our shape's first values, minus nameless cookies. */
function cookiePackageView(header: string): Map<string, string> {
  const view = new Map<string, string>()
  for (const [name, value] of Object.entries(cookieParse(header))) {
    if (name !== '' && value !== undefined) view.set(name, value)
  }
  return view
}

function firstValues(cookies: Map<string, string[]>): Map<string, string> {
  return new Map([...cookies].map(([name, values]) => [name, values[0] ?? '']))
}

function assertStringArray(value: unknown): void {
  assert.ok(Array.isArray(value))
  for (const item of value) assert.equal(typeof item, 'string')
}

describe('getCookieValues', () => {
  it('returns the value of the cookie whose name matches exactly', () => {
    assert.deepEqual(getCookieValues('theme=dark; __Host-sid=abc; lang=en', '__Host-sid'), ['abc'])
  })

  it('returns every duplicate in header order (a=1; a=2 gives both)', () => {
    assert.deepEqual(getCookieValues('a=1; a=2', 'a'), ['1', '2'])
    assert.deepEqual(getCookieValues('a=1; b=0; a=2; a=3', 'a'), ['1', '2', '3'])
  })

  it('never matches a nameless pair such as =__Host-sid=x', () => {
    assert.deepEqual(getCookieValues('=__Host-sid=x', '__Host-sid'), [])
    assert.deepEqual(getCookieValues(' =__Host-sid=x; \t=__Host-sid=y', '__Host-sid'), [])
  })

  it('never matches a pair without "=", which RFC 6265bis §5.6 makes a nameless value', () => {
    assert.deepEqual(getCookieValues('__Host-sid', '__Host-sid'), [])
    assert.deepEqual(getCookieValues('__Host-sid; a=1', '__Host-sid'), [])
  })

  it('matches names case-sensitively (__host-sid and __HOST-SID are other cookies)', () => {
    assert.deepEqual(getCookieValues('__host-sid=x; __HOST-SID=y; __Host-Sid=z', '__Host-sid'), [])
  })

  it('does not match look-alike or percent-encoded names (..Host-sid, _[Host-sid, %5F%5FHost-sid)', () => {
    const header = '..Host-sid=x; _[Host-sid=x; %5F%5FHost-sid=x; __Host-sid2=x; _Host-sid=x; Host-sid=x'
    assert.deepEqual(getCookieValues(header, '__Host-sid'), [])
    assert.deepEqual(getCookieValues(header, '%5F%5FHost-sid'), ['x'])
  })

  it('trims spaces and tabs around name and value per RFC 6265bis §5.6, so `__Host-sid =x` matches', () => {
    assert.deepEqual(getCookieValues('__Host-sid =x', '__Host-sid'), ['x'])
    assert.deepEqual(getCookieValues('\t __Host-sid\t = \tx y \t; a=1', '__Host-sid'), ['x y'])
  })

  it('trims no other whitespace: NBSP, vertical tab, CR and LF stay part of the name', () => {
    for (const ws of ['\u00a0', '\v', '\r', '\n', '\r\n', '\f']) {
      assert.deepEqual(getCookieValues(`${ws}__Host-sid=x`, '__Host-sid'), [], JSON.stringify(ws))
      assert.deepEqual(getCookieValues(`__Host-sid${ws}=x`, '__Host-sid'), [], JSON.stringify(ws))
    }
  })

  it('returns values raw: DQUOTEs, percent-escapes and inner "=" are kept', () => {
    assert.deepEqual(getCookieValues('a="x y"; a=%20; a==b; a=b=c; a=', 'a'), [
      '"x y"',
      '%20',
      '=b',
      'b=c',
      '',
    ])
  })

  it('reads every header line, as if HTTP/2 split lines were joined with "; "', () => {
    assert.deepEqual(getCookieValues(['a=1; sid=x', 'sid=y', '', ' sid = z '], 'sid'), ['x', 'y', 'z'])
    // A pair never spans two lines: the line end is a pair boundary.
    assert.deepEqual(getCookieValues(['sid', '=x'], 'sid'), [])
  })

  it('gives nothing for absent, empty, ";;;;" or whitespace-only headers', () => {
    for (const header of [undefined, null, '', ';;;;', ' ', ' \t ; \t ;', '=', '==;=', [], ['', ';']]) {
      assert.deepEqual(getCookieValues(header, 'a'), [], JSON.stringify(header))
      assert.equal(parseCookies(header).size, 0, JSON.stringify(header))
    }
  })

  it('never matches the empty name', () => {
    assert.deepEqual(getCookieValues('=x; =; a=1', ''), [])
  })
})

describe('maxHeaderBytes', () => {
  it('returns [] for a header one byte over the cap, and parses one exactly at the cap', () => {
    const atCap = `sid=${'x'.repeat(100 - 4)}`
    assert.equal(atCap.length, 100)
    assert.equal(getCookieValues(atCap, 'sid', { maxHeaderBytes: 100 }).length, 1)
    assert.deepEqual(getCookieValues(`${atCap}y`, 'sid', { maxHeaderBytes: 100 }), [])
    assert.equal(parseCookies(`${atCap}y`, { maxHeaderBytes: 100 }).size, 0)
  })

  it('defaults to 16384 bytes', () => {
    const atCap = `sid=${'x'.repeat(16_384 - 4)}`
    assert.equal(getCookieValues(atCap, 'sid').length, 1)
    assert.deepEqual(getCookieValues(`${atCap}y`, 'sid'), [])
  })

  it('counts header lines together, including the "; " that joins them', () => {
    assert.equal(getCookieValues(['sid=1', 'a=23'], 'sid', { maxHeaderBytes: 11 }).length, 1)
    assert.deepEqual(getCookieValues(['sid=1', 'a=234'], 'sid', { maxHeaderBytes: 11 }), [])
    // A flood of empty lines cannot slip under the cap.
    assert.deepEqual(getCookieValues(['sid=1', ...Array<string>(10_000).fill('')], 'sid'), [])
  })

  it('rejects a 1 MB header before scanning it (1,000 capped calls beat 10 uncapped scans)', () => {
    const header = `${'a=1; '.repeat(200_000)}sid=x`
    const calls = (count: number, options?: ParseOptions) => {
      const start = performance.now()
      for (let i = 0; i < count; i++) getCookieValues(header, 'sid', options)
      return performance.now() - start
    }
    assert.deepEqual(getCookieValues(header, 'sid'), [])
    assert.deepEqual(getCookieValues(header, 'sid', { maxHeaderBytes: 2_000_000 }), ['x'])
    const capped = calls(1000)
    const scanned = calls(10, { maxHeaderBytes: 2_000_000 })
    assert.ok(capped < scanned, `1000 capped calls took ${capped} ms, 10 full scans ${scanned} ms`)
  })

  it('stops reading header lines as soon as the running total passes the cap', () => {
    const lines = ['x'.repeat(1_000_000), 'sid=x', 'sid=y']
    const read: PropertyKey[] = []
    const spy = new Proxy(lines, {
      get(target, key, receiver) {
        if (typeof key === 'string' && /^\d+$/.test(key)) read.push(key)
        return Reflect.get(target, key, receiver)
      },
    })
    assert.deepEqual(getCookieValues(spy, 'sid'), [])
    assert.deepEqual(read, ['0'])
  })

  it('throws a TypeError for a cap that is not a non-negative safe integer', () => {
    for (const maxHeaderBytes of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
      assert.throws(() => getCookieValues('a=1', 'a', { maxHeaderBytes }), TypeError, String(maxHeaderBytes))
      assert.throws(() => parseCookies('a=1', { maxHeaderBytes }), TypeError, String(maxHeaderBytes))
    }
    assert.deepEqual(getCookieValues('a=1', 'a', { maxHeaderBytes: 0 }), [])
  })
})

describe('parseCookies', () => {
  it('maps every name to all of its values in header order', () => {
    assert.deepEqual(
      parseCookies('a=1; b=2; a=3'),
      new Map([
        ['a', ['1', '3']],
        ['b', ['2']],
      ]),
    )
    assert.deepEqual([...parseCookies('z=1; a=2; 1=3').keys()], ['z', 'a', '1'])
  })

  it('omits nameless pairs (=v) and bare values (v)', () => {
    assert.deepEqual([...parseCookies('=v; bare; =; a=1').keys()], ['a'])
  })

  it('returns values raw unless decode is true', () => {
    assert.deepEqual(parseCookies('a=x%20y').get('a'), ['x%20y'])
    assert.deepEqual(parseCookies('a=x%20y', { decode: true }).get('a'), ['x y'])
  })

  it('leaves invalid percent-encoding (%E0%A4%A, %ZZ, lone %) raw when decoding', () => {
    const cookies = parseCookies('a=%E0%A4%A; b=%ZZ; c=100%; d=%E0%A4%A4', { decode: true })
    assert.deepEqual(
      firstValues(cookies),
      new Map(Object.entries({ a: '%E0%A4%A', b: '%ZZ', c: '100%', d: 'त' })),
    )
  })

  it('never decodes names', () => {
    assert.deepEqual([...parseCookies('%5F%5FHost-sid=x', { decode: true }).keys()], ['%5F%5FHost-sid'])
  })

  it('keeps __proto__=%7B%22x%22%3A1%7D; constructor=1; toString=1 inert, leaving Object.prototype unchanged', () => {
    const before = Object.getOwnPropertyNames(Object.prototype)
    const header = '__proto__=%7B%22x%22%3A1%7D; constructor=1; toString=1; hasOwnProperty=1; valueOf=1'
    const cookies = parseCookies(header, { decode: true })
    assert.ok(cookies instanceof Map)
    assert.deepEqual(cookies.get('__proto__'), ['{"x":1}'])
    assert.deepEqual(cookies.get('constructor'), ['1'])
    assert.deepEqual(cookies.get('toString'), ['1'])
    assert.deepEqual(getCookieValues(header, '__proto__'), ['%7B%22x%22%3A1%7D'])
    assert.deepEqual(Object.getOwnPropertyNames(Object.prototype), before)
    assert.equal(Object.getPrototypeOf({}), Object.prototype)
    assert.equal(({} as Record<string, unknown>).x, undefined)
    assert.equal(typeof ({} as { toString: unknown }).toString, 'function')
  })

  it('agrees with getCookieValues for every name it finds', () => {
    const header = 'a=1; b=%20; a = 2 ; =c; d; "q"=r; a=3'
    for (const [name, values] of parseCookies(header)) assert.deepEqual(getCookieValues(header, name), values)
  })
})

describe('agreement with the cookie package (cookie@1 parse)', () => {
  it('agrees on headers of unique token names and cookie-octet values, with any OWS (500 runs)', () => {
    const headerArb = fc
      .uniqueArray(fc.tuple(tokenArb, cookieValueArb, owsArb, owsArb), {
        selector: ([name]) => name,
        minLength: 1,
        maxLength: 8,
      })
      .map((pairs) =>
        pairs.map(([name, value, before, after]) => `${before}${name}=${value}${after}`).join('; '),
      )
    fc.assert(
      fc.property(headerArb, (header) => {
        assert.deepEqual(firstValues(parseCookies(header, { decode: true })), cookiePackageView(header))
      }),
      { numRuns: 500 },
    )
  })

  it('agrees on arbitrary headers once duplicates keep their first value and nameless pairs are dropped (2,000 runs)', () => {
    fc.assert(
      fc.property(headerishArb, (header) => {
        assert.deepEqual(firstValues(parseCookies(header, { decode: true })), cookiePackageView(header))
      }),
      { numRuns: 2000 },
    )
  })

  it('agrees that DQUOTE-wrapped values keep their quotes', () => {
    assert.equal(cookieParse('a="x"').a, '"x"')
    assert.deepEqual(parseCookies('a="x"', { decode: true }).get('a'), ['"x"'])
  })

  it('agrees on whitespace: both trim only spaces and tabs, and keep inner spaces', () => {
    const header = ' \ta b \t=\t x y \t; \u00a0c=1'
    assert.deepEqual(firstValues(parseCookies(header, { decode: true })), cookiePackageView(header))
    assert.deepEqual([...parseCookies(header).keys()], ['a b', '\u00a0c'])
  })

  it('diverges on duplicates: cookie keeps the first value, we keep all in order', () => {
    assert.equal(cookieParse('a=1; a=2').a, '1')
    assert.deepEqual(parseCookies('a=1; a=2').get('a'), ['1', '2'])
  })

  it('diverges on nameless pairs: cookie maps =v to the empty name, we drop it', () => {
    assert.equal(cookieParse('=v; a=1')[''], 'v')
    assert.equal(parseCookies('=v; a=1').has(''), false)
  })

  it('diverges on the result type: cookie returns an object with no Object.prototype, we return a Map', () => {
    const parsed = cookieParse('a=1')
    assert.equal(Object.getPrototypeOf(Object.getPrototypeOf(parsed)), null)
    assert.equal('toString' in parsed, false)
    assert.ok(parseCookies('a=1') instanceof Map)
  })

  it('diverges on decoding: cookie percent-decodes by default, we only with decode: true', () => {
    assert.equal(cookieParse('a=x%20y').a, 'x y')
    assert.deepEqual(parseCookies('a=x%20y').get('a'), ['x%20y'])
  })

  it('diverges on size: cookie parses a header of any size, we treat one over the cap as empty', () => {
    const header = `a=${'x'.repeat(20_000)}`
    assert.equal(cookieParse(header).a?.length, 20_000)
    assert.equal(parseCookies(header).size, 0)
  })

  it('extends cookie to header lines: an array parses like its lines joined with "; "', () => {
    const lines = ['a=1; b=2', 'c=3']
    assert.deepEqual(firstValues(parseCookies(lines, { decode: true })), cookiePackageView(lines.join('; ')))
  })
})

describe('robustness', () => {
  it('stays linear on adversarial headers (1 MB of ";", "a;", spaces or "=")', { timeout: 5000 }, () => {
    const options = { maxHeaderBytes: 2_000_000 }
    const n = 1_000_000
    assert.deepEqual(getCookieValues(`${'a;'.repeat(n / 2)}sid=x`, 'sid', options), ['x'])
    assert.deepEqual(getCookieValues(`${';'.repeat(n)}sid=x`, 'sid', options), ['x'])
    assert.deepEqual(getCookieValues(`sid${' '.repeat(n)}=${' '.repeat(n / 2)}x`, 'sid', options), ['x'])
    assert.deepEqual(getCookieValues(`sid=${'='.repeat(n)}`, 'sid', options).length, 1)
    assert.equal(parseCookies(`${'a=1;'.repeat(n / 4)}`, options).get('a')?.length, n / 4)
  })

  it('never throws and returns arrays of strings for 10,000 arbitrary headers (4,000 full-Unicode strings, lone surrogates included, 3,000 cookie-like strings, 2,000 multi-line arrays, 1,000 huge strings)', () => {
    const optionsArb = fc.constantFrom<ParseOptions | undefined>(
      undefined,
      { maxHeaderBytes: 0 },
      { maxHeaderBytes: 64 },
      { maxHeaderBytes: 1_000_000 },
    )
    const nameArb = fc.oneof(fc.constantFrom('a', '__Host-sid', '', '__proto__', ' a'), headerishArb)
    const check = (header: string | readonly string[], name: string, options: ParseOptions | undefined) => {
      const values = getCookieValues(header, name, options)
      assertStringArray(values)
      for (const decode of [false, true]) {
        const cookies = parseCookies(header, { ...options, decode })
        assert.ok(cookies instanceof Map)
        for (const [key, list] of cookies) {
          assert.equal(typeof key, 'string')
          assert.notEqual(key, '')
          assertStringArray(list)
        }
        if (!decode) assert.deepEqual(cookies.get(name) ?? [], values)
      }
    }
    // `npm run fuzz` scales these counts by FUZZ_RUNS / 10,000 (FUZZ_RUNS defaults to 10,000: the counts named).
    const scale = Number(process.env.FUZZ_RUNS || 10_000) / 10_000
    const run = (header: fc.Arbitrary<string | string[]>, numRuns: number) =>
      fc.assert(fc.property(header, nameArb, optionsArb, check), {
        numRuns: Math.max(1, Math.round(numRuns * scale)),
      })

    run(fc.string({ unit: codeUnitArb, maxLength: 200, size: 'max' }), 2000)
    run(fc.string({ unit: 'binary', maxLength: 200, size: 'max' }), 2000)
    run(headerishArb, 3000)
    run(fc.array(fc.oneof(headerishArb, fc.string({ unit: codeUnitArb })), { maxLength: 6 }), 2000)
    run(
      fc
        .tuple(
          fc.oneof(
            fc.string({ unit: headerCharArb, minLength: 1, maxLength: 40, size: 'max' }),
            fc.string({ unit: codeUnitArb, minLength: 1, maxLength: 40, size: 'max' }),
          ),
          fc.integer({ min: 100, max: 2000 }),
        )
        .map(([chunk, times]) => chunk.repeat(times)),
      1000,
    )
  })
})
