/**
 * `Set-Cookie` serialization that only ever emits strings matching the RFC 6265bis
 * (draft-ietf-httpbis-rfc6265bis) §4.1.1 grammar, and refuses cookies a conforming browser
 * would silently drop or alter. Every violation throws a `TypeError` naming the attribute and the rule.
 *
 * Runtime-neutral: no `node:` imports, no dependencies.
 *
 * @module
 */

/** The `samesite-value`s of RFC 6265bis §4.1.1, spelled as they are emitted. */
export type SameSite = 'Strict' | 'Lax' | 'None'

/** Attributes of a `Set-Cookie` header. An `undefined` attribute is left out. */
export interface CookieAttributes {
  /**
   * Seconds until the cookie expires; must be an integer. Zero or negative emits `Max-Age=0`,
   * which deletes the cookie: the §4.1.1 grammar only has positive numbers, but §5.6.2 defines
   * `<= 0` as "expire now" and `Max-Age=0` is the universal deletion idiom. Values above 400 days
   * are emitted as 34560000, the cap user agents apply anyway (RFC 6265bis §5.5).
   */
  maxAge?: number
  /**
   * Expiry date, emitted with `toUTCString()` (an IMF-fixdate). Its year must be within
   * 1601-9999: user agents fail to parse earlier years (§5.1.1) and IMF-fixdate has four digits.
   * User agents also cap it at 400 days ahead (§5.5). Prefer `maxAge`, which has no clock skew.
   */
  expires?: Date
  /**
   * Domain the cookie is also sent to, subdomains included: letters, digits and hyphens in
   * dot-separated labels of at most 63 characters, an optional leading dot, no trailing dot.
   * Leave it out for a host-only cookie, which is the safer default.
   */
  domain?: string
  /**
   * Path scope: must start with `/` (user agents replace anything else with the default path,
   * §5.6.4) and must not end with a space (they strip it, §5.6).
   */
  path?: string
  /** Send only over secure channels. Required by `SameSite=None`, `Partitioned` and name prefixes. */
  secure?: boolean
  /** Hide the cookie from non-HTTP APIs such as `document.cookie`. */
  httpOnly?: boolean
  /** Cross-site sending policy; exactly `'Strict'`, `'Lax'` or `'None'` (`'None'` needs `secure`). */
  sameSite?: SameSite
  /** CHIPS: key the cookie to the top-level site. Browsers require `secure` with it. */
  partitioned?: boolean
  /** Chromium's eviction priority, exactly `'Low'`, `'Medium'` or `'High'`. */
  priority?: 'Low' | 'Medium' | 'High'
}

/** RFC 6265bis §5.6: user agents ignore a cookie whose name and value exceed this many octets. */
const MAX_NAME_VALUE_BYTES = 4096
/** RFC 6265bis §5.6: user agents ignore an attribute whose value exceeds this many octets. */
const MAX_ATTRIBUTE_VALUE_BYTES = 1024
/** RFC 6265bis §5.5: user agents cap Max-Age at 400 days. */
const MAX_AGE_CAP_SECONDS = 34_560_000
/** RFC 1035 §2.3.4: 255 octets on the wire, 253 characters as text. */
const MAX_DOMAIN_LENGTH = 253
/** How much of an offending value an error message shows. */
const PREVIEW_LENGTH = 40

/** `token` of RFC 9110 §5.6.2: one or more tchar. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
/**
 * `cookie-value = *cookie-octet / ( DQUOTE *cookie-octet DQUOTE )`, where cookie-octet is
 * printable US-ASCII except space, DQUOTE, comma, semicolon and backslash.
 */
const COOKIE_VALUE =
  /^(?:"[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]*"|[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]*)$/
/** RFC 1034 §3.5 labels as relaxed by RFC 1123 §2.1, with the leading dot §5.6.3 tolerates. */
const DOMAIN =
  /^\.?[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/
/** `"/"` then `*av-octet`: any CHAR except CTLs or `;`. */
const PATH = /^\/[\x20-\x3A\x3C-\x7E]*$/
/** §4.1.3 name prefixes; matched case-insensitively, as current browsers and drafts do. */
const SECURE_PREFIX = /^__secure-/i
const HOST_PREFIX = /^__host-/i

const SAME_SITE_VALUES: readonly string[] = ['Strict', 'Lax', 'None']
const PRIORITY_VALUES: readonly string[] = ['Low', 'Medium', 'High']

/**
 * Whether `name` is a valid cookie-name: an RFC 9110 `token` (RFC 6265bis §4.1.1), that is
 * letters, digits and ``!#$%&'*+-.^_`|~``. The 4096-byte name-plus-value limit is checked
 * by {@link serializeCookie}, not here.
 *
 * @example
 * ```ts
 * isValidCookieName('__Host-sid') // true
 * isValidCookieName('a b') // false
 * ```
 */
export function isValidCookieName(name: string): boolean {
  return typeof name === 'string' && TOKEN.test(name)
}

/**
 * Whether `value` is a valid cookie-value (RFC 6265bis §4.1.1): cookie-octets (printable
 * US-ASCII except space, `"`, `,`, `;` and `\`), optionally inside one pair of DQUOTEs. The
 * empty string is valid. Encode arbitrary data (e.g. base64url) before using it as a value.
 *
 * @example
 * ```ts
 * isValidCookieValue('dGVzdA') // true
 * isValidCookieValue('"quoted"') // true
 * isValidCookieValue('a;b') // false
 * ```
 */
export function isValidCookieValue(value: string): boolean {
  return typeof value === 'string' && COOKIE_VALUE.test(value)
}

/**
 * Builds one `Set-Cookie` header value.
 *
 * Nothing is encoded: `name` must already be a token and `value` cookie-octets (see
 * {@link isValidCookieName} and {@link isValidCookieValue}); anything else throws instead of being
 * escaped, so what the browser stores is exactly what was passed. Attributes are emitted in this
 * order: `Max-Age`, `Expires`, `Domain`, `Path`, `Secure`, `HttpOnly`, `SameSite`, `Partitioned`,
 * `Priority`.
 *
 * Beyond the grammar, it refuses cookies that browsers would drop or alter without telling anyone:
 * `__Secure-` names without `secure`; `__Host-` names without `secure`, with a `domain`, or with
 * a `path` other than `/` (§4.1.3); `sameSite: 'None'` or `partitioned` without `secure`; an
 * `expires` outside the years 1601-9999; a `path` not starting with `/` or ending in a space.
 *
 * Compared with `serialize` in the `cookie` package (v1): it does not percent-encode values; its
 * name and value rules are the stricter RFC ones (cookie also allows e.g. `(` in names and `"`,
 * `,`, `\` in values); `sameSite` and `priority` must be spelled exactly (no `'lax'`, no `true`);
 * `Max-Age` is clamped to 0..34560000; an empty `domain` or `path` throws instead of being
 * skipped; and the attribute order differs.
 *
 * @throws {TypeError} When any part breaks a rule; the message names the attribute and the rule
 *   and shows at most the first 40 characters of the offending value.
 *
 * @example
 * ```ts
 * serializeCookie('__Host-sid', 'dGVzdA', { maxAge: 3600, path: '/', secure: true, httpOnly: true, sameSite: 'Lax' })
 * // '__Host-sid=dGVzdA; Max-Age=3600; Path=/; Secure; HttpOnly; SameSite=Lax'
 * serializeCookie('theme', '', { maxAge: 0 }) // 'theme=; Max-Age=0' (deletes the cookie)
 * ```
 */
export function serializeCookie(name: string, value: string, attributes: CookieAttributes = {}): string {
  if (typeof name !== 'string') throw invalid('name', 'must be a string', name)
  if (typeof value !== 'string') throw invalid('value', 'must be a string', value)
  // Size first, so an oversized input is rejected before any character is inspected.
  if (name.length + value.length > MAX_NAME_VALUE_BYTES) {
    throw new TypeError(
      `Invalid cookie name and value: together they must be at most ${MAX_NAME_VALUE_BYTES} bytes, got ${name.length + value.length} characters (RFC 6265bis §5.6)`,
    )
  }
  if (!TOKEN.test(name)) {
    throw invalid(
      'name',
      "must be a non-empty token of letters, digits and !#$%&'*+-.^_`|~ (RFC 9110 §5.6.2)",
      name,
    )
  }
  if (!COOKIE_VALUE.test(value)) {
    throw invalid(
      'value',
      'must be printable ASCII without space, DQUOTE, comma, semicolon or backslash, optionally inside one pair of DQUOTEs; encode it first, e.g. as base64url (RFC 6265bis §4.1.1)',
      value,
    )
  }

  // Read each attribute once, so a getter cannot return one value to the check and another to the output.
  const { maxAge, expires, domain, path, secure, httpOnly, sameSite, partitioned, priority } = attributes
  const isSecure = flag('Secure', secure)
  const isHttpOnly = flag('HttpOnly', httpOnly)
  const isPartitioned = flag('Partitioned', partitioned)

  let header = `${name}=${value}`

  if (maxAge !== undefined) {
    if (typeof maxAge !== 'number' || !Number.isInteger(maxAge)) {
      throw invalid('Max-Age', 'must be an integer number of seconds', maxAge)
    }
    // <= 0 means "expire now" to user agents (§5.6.2); the grammar has no negative numbers.
    header += `; Max-Age=${Math.min(Math.max(maxAge, 0), MAX_AGE_CAP_SECONDS)}`
  }

  if (expires !== undefined) {
    const time = timeOf(expires)
    if (Number.isNaN(time)) throw invalid('Expires', 'must be a valid Date', expires)
    const date = new Date(time)
    const year = date.getUTCFullYear()
    if (year < 1601 || year > 9999) {
      throw invalid('Expires', 'must fall in the years 1601 to 9999 (RFC 6265bis §5.1.1)', year)
    }
    header += `; Expires=${date.toUTCString()}`
  }

  if (domain !== undefined) {
    checkAttributeValue('Domain', domain)
    const hostLength = domain.startsWith('.') ? domain.length - 1 : domain.length
    if (hostLength > MAX_DOMAIN_LENGTH || !DOMAIN.test(domain)) {
      throw invalid(
        'Domain',
        'must be a host name: dot-separated labels of 1 to 63 letters, digits or inner hyphens, an optional leading dot, no trailing dot, at most 253 characters',
        domain,
      )
    }
    header += `; Domain=${domain}`
  }

  if (path !== undefined) {
    checkAttributeValue('Path', path)
    if (!PATH.test(path)) {
      throw invalid(
        'Path',
        'must start with "/" and hold only printable ASCII other than ";" (RFC 6265bis §4.1.1)',
        path,
      )
    }
    if (path.endsWith(' ')) {
      throw invalid('Path', 'must not end with a space, which user agents strip (RFC 6265bis §5.6)', path)
    }
    header += `; Path=${path}`
  }

  if (isSecure) header += '; Secure'
  if (isHttpOnly) header += '; HttpOnly'

  if (sameSite !== undefined) {
    if (!SAME_SITE_VALUES.includes(sameSite))
      throw invalid('SameSite', 'must be exactly "Strict", "Lax" or "None"', sameSite)
    if (sameSite === 'None' && !isSecure) {
      throw new TypeError(
        'Invalid cookie SameSite: "None" requires secure: true, or browsers reject the cookie',
      )
    }
    header += `; SameSite=${sameSite}`
  }

  if (isPartitioned) {
    if (!isSecure)
      throw new TypeError('Invalid cookie Partitioned: requires secure: true, or browsers reject the cookie')
    header += '; Partitioned'
  }

  if (priority !== undefined) {
    if (!PRIORITY_VALUES.includes(priority))
      throw invalid('Priority', 'must be exactly "Low", "Medium" or "High"', priority)
    header += `; Priority=${priority}`
  }

  checkNamePrefix(name, isSecure, domain, path)
  return header
}

/** RFC 6265bis §4.1.3: the guarantees `__Secure-` and `__Host-` names promise, or the browser drops the cookie. */
function checkNamePrefix(
  name: string,
  secure: boolean,
  domain: string | undefined,
  path: string | undefined,
): void {
  if (HOST_PREFIX.test(name)) {
    if (!secure || domain !== undefined || path !== '/') {
      throw invalid(
        'name',
        'with the __Host- prefix requires secure: true, path: "/" and no domain (RFC 6265bis §4.1.3)',
        name,
      )
    }
  } else if (SECURE_PREFIX.test(name) && !secure) {
    throw invalid('name', 'with the __Secure- prefix requires secure: true (RFC 6265bis §4.1.3)', name)
  }
}

/** A string of at most 1024 characters; the caller then checks the grammar. */
function checkAttributeValue(attribute: string, value: unknown): asserts value is string {
  if (typeof value !== 'string') throw invalid(attribute, 'must be a string', value)
  if (value.length > MAX_ATTRIBUTE_VALUE_BYTES) {
    throw invalid(attribute, `must be at most ${MAX_ATTRIBUTE_VALUE_BYTES} bytes (RFC 6265bis §5.6)`, value)
  }
}

/** Boolean attributes accept only booleans, so `secure: 'false'` cannot mean true by accident. */
function flag(attribute: string, value: unknown): boolean {
  if (value === undefined) return false
  if (typeof value !== 'boolean') throw invalid(attribute, 'must be a boolean', value)
  return value
}

/** The time of a genuine Date (also one from another realm), or NaN for anything else. */
function timeOf(value: unknown): number {
  try {
    return Date.prototype.getTime.call(value)
  } catch {
    return Number.NaN
  }
}

function invalid(attribute: string, rule: string, value: unknown): TypeError {
  return new TypeError(`Invalid cookie ${attribute}: ${rule}; got ${preview(value)}`)
}

/** A short, escaped rendering of a rejected value: never echoes a huge string or a raw CR/LF. */
function preview(value: unknown): string {
  if (typeof value === 'string') {
    if (value.length <= PREVIEW_LENGTH) return JSON.stringify(value)
    return `${JSON.stringify(value.slice(0, PREVIEW_LENGTH))}... (${value.length} characters)`
  }
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) {
    return String(value)
  }
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString()
  return `a value of type ${typeof value}`
}
