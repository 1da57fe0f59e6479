// The stored form of a session: user data and the manager's metadata, kept apart so that no user key can
// alter a deadline (checklist #40). JSON only: nothing here can execute or revive code (checklist #39).

/** Metadata the manager keeps beside the user's data. */
export interface SessionMeta {
  /** Epoch ms the session was created. */
  readonly createdAt: number
  /** Epoch ms after which the session is dead whatever its activity. Only a new login moves it. */
  readonly absoluteExpiresAt: number
  /** The user bound by `login()`: the key of the per-user index. */
  readonly userId?: string
  /** Epoch ms of the last `login()`. */
  readonly authenticatedAt?: number
  /** The client as seen at login, for "your devices" lists. Coarse facts only, never used for authentication. */
  readonly userAgent?: string
  readonly ip?: string
  /** Per-session secret behind the CSRF tokens; replaced whenever the session ID is. */
  readonly csrfSecret?: string
  /** Epoch ms the current ID was issued, when `renewal` is on and it differs from `createdAt`. */
  readonly issuedAt?: number
  /**
   * Set only on the record an ID renewal left behind: the store key of the session it continues as. Requests
   * still carrying the old ID during the grace window are served (and write) there.
   */
  readonly successor?: string
  /**
   * The first 8 hex characters of the store key the record was written under. A record read under another
   * key (a store's key-mapping bug, a cache collision) is garbage, never another user's session.
   */
  readonly keyCheck?: string
}

export interface Payload {
  readonly meta: SessionMeta
  readonly data: Record<string, unknown>
}

/** Keys that could reach an object's prototype through a careless merge downstream. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype'])

const MAX_DEPTH = 64
const STORE_KEY = /^[0-9a-f]{64}$/
const KEY_CHECK_LENGTH = 8 // 32 bits: enough to catch a mix-up, short enough to cost 15 bytes a record
const KEY_CHECK = /^[0-9a-f]{8}$/

/**
 * The stored text of a session; `key` (the store key it is written under) is checked again on every read.
 * The fields, in this order: `v` format 1, `c` createdAt, `a` absoluteExpiresAt, `d` data, `h` key check,
 * `u` userId, `t` authenticatedAt, `ua` userAgent, `ip`, `k` csrfSecret, `n` issuedAt, `s` successor.
 * Written field by field around one `JSON.stringify` of the data: the same text as `JSON.stringify` of an
 * object of these fields, without building that object on every write.
 */
export function serializePayload(meta: SessionMeta, data: Record<string, unknown>, key?: string): string {
  const body: string | undefined = JSON.stringify(data) // undefined only through a toJSON that returns it
  let text = `{"v":1,"c":${number(meta.createdAt)},"a":${number(meta.absoluteExpiresAt)}`
  if (body !== undefined) text += `,"d":${body}`
  if (key !== undefined) text += `,"h":${JSON.stringify(key.slice(0, KEY_CHECK_LENGTH))}`
  if (meta.userId !== undefined) {
    text += `,"u":${JSON.stringify(meta.userId)}`
    if (meta.authenticatedAt !== undefined) text += `,"t":${number(meta.authenticatedAt)}`
    if (meta.userAgent !== undefined) text += `,"ua":${JSON.stringify(meta.userAgent)}`
    if (meta.ip !== undefined) text += `,"ip":${JSON.stringify(meta.ip)}`
  }
  if (meta.csrfSecret !== undefined) text += `,"k":${JSON.stringify(meta.csrfSecret)}`
  if (meta.issuedAt !== undefined) text += `,"n":${number(meta.issuedAt)}`
  if (meta.successor !== undefined) text += `,"s":${JSON.stringify(meta.successor)}`
  return `${text}}`
}

// A number as JSON writes it: NaN and the infinities become null.
function number(value: number): string {
  return Number.isFinite(value) ? String(value) : 'null'
}

/**
 * Parses stored text back into a payload, or undefined when it is not one of ours (garbage is treated as a
 * missing session, never as data). Prototype keys are dropped at every depth; nesting is capped unless
 * `checkDepth` is false, for text this process authenticated as its own (a sealed cookie: every commit refuses
 * data nested too deep before it seals, and walking a large session costs a third of its `JSON.parse`).
 */
export function parsePayload(text: unknown, maxBytes: number, checkDepth = true): Payload | undefined {
  if (typeof text !== 'string' || text.length === 0 || text.length > maxBytes) return undefined
  let wire: unknown
  try {
    // The reviver costs a call per value, so only pay for it when a dangerous key could be present.
    wire = mayHoldForbiddenKey(text) ? JSON.parse(text, dropForbiddenKeys) : JSON.parse(text)
  } catch {
    return undefined
  }
  if (!isPlainObject(wire) || wire.v !== 1) return undefined
  const { c, a, d, u, t, ua, ip, k, n, s, h } = wire
  if (!isTimestamp(c) || !isTimestamp(a) || !isPlainObject(d) || (checkDepth && depthExceeds(d, MAX_DEPTH))) {
    return undefined
  }
  if (
    !isOptional(u, 'string') ||
    !isOptional(ua, 'string') ||
    !isOptional(ip, 'string') ||
    !isOptional(k, 'string')
  ) {
    return undefined
  }
  if (t !== undefined && !isTimestamp(t)) return undefined
  if (n !== undefined && !isTimestamp(n)) return undefined
  if (s !== undefined && !(typeof s === 'string' && STORE_KEY.test(s))) return undefined
  if (h !== undefined && !(typeof h === 'string' && KEY_CHECK.test(h))) return undefined
  // Built field by field rather than with conditional spreads: no temporary object per field.
  const meta: { -readonly [K in keyof SessionMeta]: SessionMeta[K] } = { createdAt: c, absoluteExpiresAt: a }
  if (typeof u === 'string') meta.userId = u
  if (typeof t === 'number') meta.authenticatedAt = t
  if (typeof ua === 'string') meta.userAgent = ua
  if (typeof ip === 'string') meta.ip = ip
  if (typeof k === 'string') meta.csrfSecret = k
  if (typeof n === 'number') meta.issuedAt = n
  if (typeof s === 'string') meta.successor = s
  if (typeof h === 'string') meta.keyCheck = h
  return { meta, data: d }
}

// A key can also be spelled with JSON escapes ("__proto\u005f_"), so any escape sends the text the slow way.
function mayHoldForbiddenKey(text: string): boolean {
  return (
    text.includes('\\u') ||
    text.includes('__proto__') ||
    text.includes('constructor') ||
    text.includes('prototype')
  )
}

function dropForbiddenKeys(key: string, value: unknown): unknown {
  return FORBIDDEN_KEYS.has(key) ? undefined : value
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isOptional(value: unknown, type: 'string'): boolean {
  return value === undefined || typeof value === type
}

// Within the range a Date can hold (ECMA-262 §21.4.1.1), so every deadline is a real instant.
function isTimestamp(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= 8.64e15
}

/** True when `data` nests deeper than a loaded session may: such data must be refused before it is stored. */
export function nestedTooDeep(data: Record<string, unknown>): boolean {
  return depthExceeds(data, MAX_DEPTH)
}

function depthExceeds(value: unknown, limit: number): boolean {
  if (typeof value !== 'object' || value === null) return false
  if (limit === 0) return true
  // for…in rather than Object.values: no array per object on every load. JSON gives own keys only.
  const object = value as Record<string, unknown>
  for (const key in object) {
    const child = object[key]
    // Only objects nest: no call for the (usual) scalar values.
    if (typeof child === 'object' && child !== null && depthExceeds(child, limit - 1)) return true
  }
  return false
}
