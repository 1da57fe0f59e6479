/**
 * `Cookie` request-header parsing, following the name/value steps of the RFC 6265bis
 * (draft-ietf-httpbis-rfc6265bis) §5.6 algorithm, applied to each `;`-separated pair.
 *
 * Runtime-neutral: no `node:` imports, no dependencies. Every function here is linear in the
 * header length, never throws for any string input, and never builds an object keyed by
 * cookie names, so names such as `__proto__` are inert.
 *
 * @module
 */

/** Options shared by {@link getCookieValues} and {@link parseCookies}. */
export interface ParseOptions {
  /**
   * Largest header accepted, counted in UTF-16 code units. Node and Fetch hand header values
   * over one character per octet, so for real headers this is the size in bytes. For an array of
   * lines the count includes the `'; '` that would join them, so a flood of empty lines cannot
   * slip under the cap. A larger header is treated as absent (no cookies) before any parsing.
   * Must be a non-negative safe integer.
   *
   * @defaultValue 16384
   */
  maxHeaderBytes?: number
}

/** A `Cookie` header as Node or Fetch deliver it; an array holds HTTP/2 split lines. */
type CookieHeader = string | readonly string[] | undefined | null

/** Receives the trimmed bounds of one named pair inside `line`; the name is never empty. */
type PairVisitor = (
  line: string,
  nameStart: number,
  nameEnd: number,
  valueStart: number,
  valueEnd: number,
) => void

const DEFAULT_MAX_HEADER_BYTES = 16_384
const SP = 0x20
const HTAB = 0x09

/**
 * Every value of the cookie named exactly `name`, in header order, duplicates included.
 *
 * The name comparison is exact and case-sensitive, with no decoding: `__host-sid` and
 * `%5F%5FHost-sid` do not match `__Host-sid`. Per RFC 6265bis §5.6, spaces and tabs around a
 * name and a value are removed (so `__Host-sid =x` matches), and a pair without `=` or with an
 * empty name (`=__Host-sid=x`) is a nameless cookie, which never matches. Values are returned
 * raw: no percent-decoding, and surrounding DQUOTEs are kept as part of the value.
 *
 * Duplicates are normal (the same name set with different Path or Domain attributes, or a
 * cookie tossed by a sibling subdomain), and §4.2.2 tells servers not to rely on their order,
 * so the caller gets all of them and decides.
 *
 * @param header - The `Cookie` header: a string, HTTP/2 split lines (read as if joined with
 *   `'; '`), or nothing.
 * @param name - The exact cookie-name to look for.
 * @returns The raw values, or `[]` when the header is absent, holds no such cookie, or is larger
 *   than `options.maxHeaderBytes`.
 * @throws {TypeError} Only when `options.maxHeaderBytes` is not a non-negative safe integer.
 *
 * @example
 * ```ts
 * getCookieValues('theme=dark; __Host-sid=a1; __Host-sid=b2', '__Host-sid') // ['a1', 'b2']
 * getCookieValues(['a=1', 'b=2'], 'b') // ['2']
 * getCookieValues('=__Host-sid=x', '__Host-sid') // []
 * ```
 */
export function getCookieValues(header: CookieHeader, name: string, options?: ParseOptions): string[] {
  // Runs on every request: the scan is written out here (see collectValues) rather than driven through
  // scanHeader's visitor, so the hot path allocates nothing but the array and the values it returns.
  const max = maxHeaderBytes(options)
  const values: string[] = []
  if (header === undefined || header === null) return values
  if (typeof header === 'string') {
    if (header.length <= max) collectValues(header, name, values)
    return values
  }
  if (!linesWithinCap(header, max)) return values
  for (let i = 0; i < header.length; i++) {
    const line = header[i]
    if (typeof line === 'string') collectValues(line, name, values)
  }
  return values
}

/**
 * Every named cookie in the header, each name mapped to all of its values in header order.
 *
 * Names and values are trimmed and split exactly as in {@link getCookieValues}. With
 * `decode: true`, a value containing `%` is passed through `decodeURIComponent`, and kept raw
 * when that throws (the `cookie` package's default decoder). Names are never decoded.
 *
 * Where this deliberately differs from `parse` in the `cookie` package (v1):
 * - **Duplicates**: `cookie` keeps only the first value of a name; this keeps every value, in order.
 * - **Result type**: `cookie` returns a null-prototype object; this returns a `Map`, which
 *   cannot be polluted through names such as `__proto__` and keeps insertion order.
 * - **Nameless cookies**: `cookie` maps `=v` to the key `''`; this omits nameless pairs, since no
 *   cookie-name is empty and an entry under `''` invites misuse.
 * - **Decoding**: `cookie` percent-decodes by default; this returns raw values unless
 *   `decode: true`.
 * - **Input**: this also accepts an array of header lines and `undefined`/`null`, and treats a
 *   header above `maxHeaderBytes` as empty; `cookie` parses any single string of any size.
 *
 * Both agree on the rest: only spaces and tabs are trimmed around names and values,
 * DQUOTE-wrapped values keep their quotes, a pair without `=` is skipped, and `=` inside a value
 * is kept.
 *
 * @param header - The `Cookie` header: a string, HTTP/2 split lines, or nothing.
 * @returns A new `Map` from cookie-name to its values; empty when the header is absent or larger
 *   than `options.maxHeaderBytes`.
 * @throws {TypeError} Only when `options.maxHeaderBytes` is not a non-negative safe integer.
 *
 * @example
 * ```ts
 * const cookies = parseCookies('a=1; b=x%20y; a=2', { decode: true })
 * cookies.get('a') // ['1', '2']
 * cookies.get('b') // ['x y']
 * ```
 */
export function parseCookies(
  header: CookieHeader,
  options?: ParseOptions & { decode?: boolean },
): Map<string, string[]> {
  const cookies = new Map<string, string[]>()
  const decode = options?.decode === true
  scanHeader(header, options, (line, nameStart, nameEnd, valueStart, valueEnd) => {
    const name = line.slice(nameStart, nameEnd)
    const raw = line.slice(valueStart, valueEnd)
    const value = decode ? decodeValue(raw) : raw
    const values = cookies.get(name)
    if (values === undefined) cookies.set(name, [value])
    else values.push(value)
  })
  return cookies
}

/** Applies the size cap, then visits every named pair of every line. */
function scanHeader(header: CookieHeader, options: ParseOptions | undefined, visit: PairVisitor): void {
  const max = maxHeaderBytes(options)
  if (header === undefined || header === null) return
  if (typeof header === 'string') {
    if (header.length <= max) scanLine(header, visit)
    return
  }
  if (!linesWithinCap(header, max)) return
  // Lines joined with '; ' split into the same pairs as lines read one by one, so no join is needed.
  for (let i = 0; i < header.length; i++) {
    const line = header[i]
    if (typeof line === 'string') scanLine(line, visit)
  }
}

function maxHeaderBytes(options: ParseOptions | undefined): number {
  const max = options?.maxHeaderBytes
  if (max === undefined) return DEFAULT_MAX_HEADER_BYTES
  if (!Number.isSafeInteger(max) || max < 0) {
    throw new TypeError(`maxHeaderBytes must be a non-negative safe integer, got ${String(max)}`)
  }
  return max
}

/** Sums line lengths plus the `'; '` joins, stopping as soon as the cap is passed. */
function linesWithinCap(lines: readonly string[], max: number): boolean {
  let total = -2 // n lines need n - 1 joins
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]
    total += 2 + (typeof line === 'string' ? line.length : 0)
    if (total > max) return false
  }
  return true
}

/**
 * Splits one line on `;` and visits each pair that has a non-empty name (RFC 6265bis §5.6
 * steps 2 and 3, applied per pair). Linear: the `;` and `=` searches only move forward, and the
 * trims stay inside the current pair.
 */
function scanLine(line: string, visit: PairVisitor): void {
  const length = line.length
  let start = 0
  let eq = line.indexOf('=')
  // With no '=' left, every remaining pair is nameless and can be skipped.
  while (eq !== -1) {
    let end = line.indexOf(';', start)
    if (end === -1) end = length
    if (eq < end) {
      let nameStart = start
      let nameEnd = eq
      while (nameStart < nameEnd && isWsp(line.charCodeAt(nameStart))) nameStart++
      while (nameEnd > nameStart && isWsp(line.charCodeAt(nameEnd - 1))) nameEnd--
      if (nameEnd > nameStart) {
        let valueStart = eq + 1
        let valueEnd = end
        while (valueStart < valueEnd && isWsp(line.charCodeAt(valueStart))) valueStart++
        while (valueEnd > valueStart && isWsp(line.charCodeAt(valueEnd - 1))) valueEnd--
        visit(line, nameStart, nameEnd, valueStart, valueEnd)
      }
    }
    start = end + 1
    // A pair without '=' leaves `eq` ahead of `start`, still pointing at a later pair's '='.
    if (eq < start) eq = line.indexOf('=', start)
  }
}

/**
 * {@link scanLine} with the visitor of {@link getCookieValues} written in: pushes the value of every pair of
 * `line` named exactly `name`. Keep the two loops identical; the tests check that they agree.
 */
function collectValues(line: string, name: string, values: string[]): void {
  const length = line.length
  let start = 0
  let eq = line.indexOf('=')
  while (eq !== -1) {
    let end = line.indexOf(';', start)
    if (end === -1) end = length
    if (eq < end) {
      let nameStart = start
      let nameEnd = eq
      while (nameStart < nameEnd && isWsp(line.charCodeAt(nameStart))) nameStart++
      while (nameEnd > nameStart && isWsp(line.charCodeAt(nameEnd - 1))) nameEnd--
      // Compare in place: only the values returned are allocated.
      if (nameEnd > nameStart && nameEnd - nameStart === name.length && line.startsWith(name, nameStart)) {
        let valueStart = eq + 1
        let valueEnd = end
        while (valueStart < valueEnd && isWsp(line.charCodeAt(valueStart))) valueStart++
        while (valueEnd > valueStart && isWsp(line.charCodeAt(valueEnd - 1))) valueEnd--
        values.push(line.slice(valueStart, valueEnd))
      }
    }
    start = end + 1
    if (eq < start) eq = line.indexOf('=', start)
  }
}

/** WSP as RFC 6265bis §5.6 trims it: space and horizontal tab only. */
function isWsp(code: number): boolean {
  return code === SP || code === HTAB
}

/** Percent-decodes like the `cookie` package: only when there is a `%`, raw when malformed. */
function decodeValue(value: string): string {
  if (!value.includes('%')) return value
  try {
    return decodeURIComponent(value)
  } catch {
    return value
  }
}
