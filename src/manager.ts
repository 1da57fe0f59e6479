/**
 * The session engine: reads the session cookie of a request, loads the session it names, and turns what the
 * handler did into store writes and `Set-Cookie` headers. Adapters are thin shells around
 * {@link SessionManager.load} and {@link SessionManager.commit}.
 *
 * @module
 */

import { type BindingOptions, bindingChanges } from './binding.js'
import { getCookieValues, parseCookies } from './cookie/parse.js'
import {
  type CookieAttributes,
  isValidCookieName,
  type SameSite,
  serializeCookie,
} from './cookie/serialize.js'
import {
  SessionClosedError,
  SessionCommittedError,
  SessionConfigError,
  SessionConflictError,
  SessionDataError,
  SessionDestroyedError,
  SessionLimitError,
  SessionTooLargeError,
  StoreError,
} from './errors.js'
import {
  type RejectionReason,
  SessionEventEmitter,
  type SessionEventListener,
  type SessionEventName,
  sessionHandle,
} from './events.js'
import { assertStrongGenerator, generateSessionId, isWellFormedId } from './id.js'
import { setBounded } from './internal/bounded.js'
import { sha256Hex } from './internal/crypto.js'
import { attachLogger, type SessionLogger } from './logger.js'
import {
  FORBIDDEN_KEYS,
  nestedTooDeep,
  type Payload,
  parsePayload,
  type SessionMeta,
  serializePayload,
} from './payload.js'
import { type SessionMigration, type StandardSchemaV1, validateSessionData } from './schema.js'
import { Sealer } from './sealer.js'
import { Session, type SessionController, type SessionState, stateOf, type Transport } from './session.js'
import { CookieSigner, type Secret } from './signer.js'
import { getNow, readsNow, type Store, type StoreRecord, updateNow, updatesNow } from './store.js'
import { type CookieStore, isCookieStore } from './stores/cookie.js'

/** Cookie settings. Every default is the safe one; see the README's security section for why. */
export interface SessionCookieOptions {
  /** @default '__Host-sid' when `secure` is true and no `domain` is set, otherwise 'sid' */
  name?: string
  /**
   * `true` always marks the cookie Secure (browsers still accept it from http://localhost); `'auto'` follows
   * the request's protocol (see `trustProxy`); `false` never does, and must be chosen explicitly.
   * @default true
   */
  secure?: boolean | 'auto'
  /** @default 'Lax' */
  sameSite?: SameSite
  /** Only `false` when a script must read the cookie, which a session cookie never should. @default true */
  httpOnly?: boolean
  /** @default '/' */
  path?: string
  /** Leave unset so the cookie stays on the exact host (and can use the `__Host-` prefix). */
  domain?: string
  /** `true` sends Max-Age matching the session's expiry; `false` makes a browser-session cookie. @default true */
  persistent?: boolean
  /** CHIPS partitioned cookie, for sessions inside third-party iframes. Requires Secure. @default false */
  partitioned?: boolean
  priority?: 'Low' | 'Medium' | 'High'
}

/**
 * Where the session token travels. Exactly one is read: a token arriving any other way is ignored.
 * - `cookie` (default): the signed cookie described by `cookie`.
 * - `header`: `Authorization: Bearer <token>` (or the raw value of another header), for APIs and mobile
 *   clients. New tokens go out in the `Session-Token` response header and through `session.token()`.
 * - `query`: a URL parameter, for clients that can do nothing else. IDs in URLs leak through logs, history
 *   and `Referer`: responses get `Referrer-Policy: no-referrer`, tessera never rewrites your URLs, and the
 *   manager warns at startup.
 */
export type SessionTransport =
  | { readonly type: 'cookie' }
  | { readonly type: 'header'; readonly name?: string }
  | { readonly type: 'query'; readonly name?: string }

/** Options of {@link createSessionManager}. */
export interface SessionManagerOptions {
  /** Where sessions live: `MemoryStore` from 'tessera/memory', `SqliteStore` from 'tessera/sqlite', or your own. */
  store: Store | CookieStore
  /**
   * Signing secrets, newest first, each at least 32 random bytes. The first signs; all verify, so a secret can
   * be rotated in without logging anyone out, then dropped.
   */
  secrets: readonly Secret[]
  cookie?: SessionCookieOptions
  /**
   * Production checks: when true, an ephemeral store (MemoryStore), a cookie without Secure and the URL
   * transport are refused at startup unless listed in `allowInProduction`.
   * @default process.env.NODE_ENV === 'production'
   */
  production?: boolean
  /** What to allow in production anyway, each an explicit, reviewable decision. */
  allowInProduction?: { ephemeralStore?: boolean; insecureCookie?: boolean; urlTransport?: boolean }
  /**
   * Hijack signals, off by default: compare the browser family (and optionally the network) recorded at
   * login with each request's, and let `onMismatch` allow or reject. A signal, never the only check.
   */
  binding?: BindingOptions
  /**
   * Most live sessions one user may have. At `login()`, `'evict-oldest'` (default) ends the least recently
   * active ones beyond the limit; `'reject-new'` refuses the login with `SessionLimitError`. Best effort
   * under concurrent logins: a burst may exceed the limit until the next login settles it.
   */
  maxSessionsPerUser?: { readonly limit: number; readonly onLimit?: 'evict-oldest' | 'reject-new' }
  /**
   * Hybrid mode: besides the session cookie, send a short-lived sealed copy of the session in a second
   * cookie (`<name>-cache`), so requests within `revalidateAfter` of the last store read skip the store.
   * The store stays the source of truth: writes still go to it, and a destroyed or revoked session stops
   * working within `revalidateAfter` (default 60 s). Needs a server-side store and the cookie transport.
   */
  hybrid?: { readonly revalidateAfter?: number }
  /**
   * Validates the data of every loaded session against a Standard Schema (zod, valibot, arktype…). Data
   * that fails goes through `migrate` (and is validated again), or the request gets a fresh session: the
   * wrong shape never reaches your code. A migrated session is saved in its new shape.
   */
  schema?: StandardSchemaV1
  /** Repairs data that failed `schema`; return undefined to drop the session. */
  migrate?: SessionMigration
  /** How the token travels; see {@link SessionTransport}. @default { type: 'cookie' } */
  transport?: SessionTransport
  /** Milliseconds without a request after which the session ends. @default 1_800_000 (30 minutes) */
  idleTimeout?: number
  /** Milliseconds after creation after which the session ends, however active. @default 43_200_000 (12 hours) */
  absoluteTimeout?: number
  /** Refresh the idle deadline on activity (throttled by `touchInterval`), not only when data changes. @default true */
  rolling?: boolean
  /** At most one expiry refresh per this many milliseconds of a session's activity. @default 60_000 */
  touchInterval?: number
  /** Store and send a cookie for a new session even if nothing was written to it. @default false */
  saveUninitialized?: boolean
  /** Largest serialized session accepted, in bytes. @default 65_536 */
  maxDataBytes?: number
  /**
   * What to do when another request saved the session after this one loaded it. `'merge'` re-reads it and
   * re-applies this request's changes key by key (keys this request set or deleted win, the others keep the
   * other writer's values); when both changed the same key differently, the later save fails with a
   * `SessionConflictError` rather than drop the earlier one. `'last-write-wins'` overwrites the whole data
   * with this request's, as express-session does: the other request's changes are lost.
   * @default 'merge'
   */
  onConflict?: 'merge' | 'last-write-wins'
  /** How many times a conflicting write is re-read and retried (with a short random back-off) before failing. @default 10 */
  maxConflictRetries?: number
  /**
   * `Cache-Control` for every response that reads the session or sets its cookie, so no shared cache serves
   * one user's page (or cookie) to another; `Vary: Cookie` is added to the same responses. `false` leaves
   * caching headers to you.
   * @default 'no-store'
   */
  cacheControl?: string | false
  /**
   * Milliseconds a store call may take before the request fails with a `StoreError` (503), so a hung
   * backend never holds requests open.
   * @default 5_000
   */
  storeTimeout?: number
  /** Believe `X-Forwarded-Proto` from the proxy in front of this server. @default false */
  trustProxy?: boolean
  /** A custom ID generator; it must draw at least 128 bits from a CSPRNG (checked at construction). */
  generateId?: () => string
  /** Current time in epoch milliseconds; inject one in tests. @default Date.now */
  clock?: () => number
  /** Receives configuration warnings (each is given once). @default process.emitWarning, or `logger.warn` */
  onWarning?: (warning: SessionWarning) => void
  /**
   * Logs the session lifecycle (pino's `(object, message)` shape; see {@link SessionLogger}): created, saved
   * and touched at debug, login, regeneration, renewal, destruction and rejected cookies at info, suspected
   * tampering and hijacking at warn, store failures at error. Sessions appear as handles only, never an ID.
   */
  logger?: SessionLogger
  /**
   * When the store fails while loading, serve the request with an empty, read-only session instead of a 503:
   * for public pages that merely greet a logged-in user. Off by default, because a fresh session in place of
   * the real one is what logs users out. A degraded session (`session.degraded`) never sets or clears the
   * cookie, and a commit that would write anything fails with the `StoreError`. Pass a function to decide
   * per request (`request.url` holds the path).
   * @default false
   */
  failOpen?: boolean | ((request: SessionRequest) => boolean)
  /**
   * Renews the session ID while the session is in use: once the current ID is `after` ms old, the next
   * request's response carries a new ID. Requests already in flight with the old ID (parallel fetches, other
   * tabs) keep working for `grace` ms (default 30 s): they read and write the renewed session, and their
   * responses never hand the old ID back. Limits how long a stolen cookie stays useful.
   */
  renewal?: { readonly after: number; readonly grace?: number }
}

/** A configuration problem noticed at run time, with the fix in its message. */
export interface SessionWarning {
  readonly code:
    | 'TESSERA_SECURE_COOKIE_OVER_HTTP'
    | 'TESSERA_FORWARDED_PROTO_IGNORED'
    | 'TESSERA_LISTENER_ERROR'
    | 'TESSERA_URL_TRANSPORT'
  readonly message: string
}

/** What an adapter tells the manager about a request. */
export interface SessionRequest {
  /** The `Cookie` header: one string, or one per header line. */
  readonly cookie: string | readonly string[] | undefined
  /** True when the connection itself is TLS. */
  readonly encrypted?: boolean
  /** The `X-Forwarded-Proto` header, honoured only with `trustProxy`. */
  readonly forwardedProto?: string | readonly string[] | undefined
  /** The `Host` header, used to recognise localhost in warnings. */
  readonly host?: string | undefined
  /** The `User-Agent` header, recorded at login for "your devices" lists. */
  readonly userAgent?: string | undefined
  /** The peer's address, recorded at login. */
  readonly ip?: string | undefined
  /** The `X-Forwarded-For` header; its first address replaces `ip` only with `trustProxy`. */
  readonly forwardedFor?: string | readonly string[] | undefined
  /** Reads a request header by lower-case name: needed by the `header` transport. */
  readonly header?: ((name: string) => string | undefined) | undefined
  /** The request target (`/path?query`): needed by the `query` transport. */
  readonly url?: string | undefined
}

/** One of a user's live sessions, as {@link SessionManager.listSessions} describes it. Never the session ID. */
export interface UserSessionInfo {
  /** Identifies the session to {@link SessionManager.revokeSession}; it is the store key, useless as a cookie. */
  readonly handle: string
  readonly createdAt: Date
  readonly authenticatedAt: Date | undefined
  /** The last activity the server recorded; accurate to `touchInterval`. */
  readonly lastSeenAt: Date
  readonly expiresAt: Date
  readonly userAgent: string | undefined
  readonly ip: string | undefined
  /** True for the session passed as `current`. */
  readonly current: boolean
}

/** What an adapter must put on the response: each string is one `Set-Cookie` header. */
export interface CommitResult {
  readonly setCookie: readonly string[]
  /** Set as `Cache-Control` when the response depends on the session (it read it, or sets the cookie). */
  readonly cacheControl?: string | undefined
  /** Add to `Vary` for the same responses, so a shared cache keys them by the session cookie. */
  readonly vary?: string | undefined
  /** Header and query transports: the new token to send in `Session-Token` ('' when the session ended). */
  readonly token?: string | undefined
  /** Query transport: `Referrer-Policy` for every response, so the URL's token never leaks to other sites. */
  readonly referrerPolicy?: string | undefined
}

const DEFAULTS = {
  idleTimeout: 30 * 60_000,
  absoluteTimeout: 12 * 60 * 60_000,
  touchInterval: 60_000,
  maxDataBytes: 64 * 1024,
  maxConflictRetries: 10,
} as const

const MAX_TIMEOUT = 400 * 24 * 60 * 60_000 // browsers cap cookie lifetime at 400 days (RFC 6265bis §5.5)
const CHUNK_LENGTH = 3800 // a sealed chunk plus name and attributes stays under the 4096-byte cookie limit
const MAX_TOKEN_LENGTH = 512 // a signed token is at most 300 characters; anything longer is not ours
const MAX_CANDIDATES = 4 // distinct same-named session cookies examined per request; more is an attack
const MAX_DATE = 8.64e15 // the largest epoch milliseconds a Date can hold (ECMA-262 §21.4.1.1)
const SIGNED_SHAPE = /^[A-Za-z0-9_-]{22,256}\.[A-Za-z0-9_-]{43}$/
// Tokens whose signature checked out lately, each with its ID and store key, so that a returning client costs
// neither a MAC nor a hash. Only authenticity is remembered, and it cannot change while the secrets stay the
// same; whether the session still lives is asked of the store on every request. Oldest out first.
const VERIFIED_TOKENS = 4_096
// Records parsed or written lately, by store key, whose data is flat (no object values) and text short: the
// same text read again under the same key is not parsed again. Its metadata is never changed in place, and its
// data is handed out as a copy, which for flat data is a copy of values. Oldest out first; at most about
// 0.6 MB of heap (keys of sessions the store has since dropped stay until pushed out).
const PARSED_RECORDS = 1_024
const PARSED_TEXT_LIMIT = 1_024

interface ParsedRecord {
  readonly text: string
  readonly meta: SessionMeta
  readonly data: Readonly<Record<string, unknown>>
}

type ReadResult =
  | { readonly record: StoreRecord; readonly payload: Payload }
  | { readonly reason: 'unknown' | 'expired' | 'garbage' }

interface VerifiedToken {
  readonly id: string
  readonly renew: boolean
  readonly key: string
}

/** A presented ID whose signature holds, with the token to re-send unchanged when no renewal is due. */
interface Candidate {
  id: string
  renew: boolean
  key: string
  signedValue: string | undefined
}

/** The live record a request's session comes from. */
interface Found extends Candidate {
  record: StoreRecord
  payload: Payload
  followed?: true
}

/** The live record of a candidate's own ID. Spelled out: a spread here cost more than a MemoryStore read. */
function foundUnder(candidate: Candidate, live: { record: StoreRecord; payload: Payload }): Found {
  return {
    id: candidate.id,
    renew: candidate.renew,
    key: candidate.key,
    signedValue: candidate.signedValue,
    record: live.record,
    payload: live.payload,
  }
}

/**
 * The record a candidate's renewed ID continues as: never re-signed, since the response that renewed it may
 * already have given the client the new ID.
 */
function foundVia(
  candidate: Candidate,
  successor: { key: string; record: StoreRecord; payload: Payload },
): Found {
  return {
    id: candidate.id,
    renew: false,
    key: successor.key,
    signedValue: candidate.signedValue,
    record: successor.record,
    payload: successor.payload,
    followed: true,
  }
}

/** @internal The manager's {@link SessionManager.load} without a promise when nothing had to wait. */
export const loadNow: unique symbol = Symbol('tessera.loadNow')
/** @internal The manager's {@link SessionManager.commit} without a promise when nothing had to wait. */
export const commitNow: unique symbol = Symbol('tessera.commitNow')

/** Hybrid mode: a sealed copy of the record rides beside the session cookie. */
interface HybridMode {
  readonly revalidateAfter: number
  readonly sealer: Sealer
  readonly cookieName: string
}

/**
 * Creates a session manager. `Data` types what the session holds.
 *
 * @example
 * const sessions = createSessionManager<{ userId?: string }>({
 *   store: new MemoryStore(),
 *   secrets: [process.env.SESSION_SECRET!],
 * })
 * @throws {SessionConfigError} when an option is unsafe or inconsistent; the message says what to change.
 */
export function createSessionManager<Data extends object = Record<string, unknown>>(
  options: SessionManagerOptions,
): SessionManager<Data> {
  return new SessionManager<Data>(options)
}

/** Loads and commits sessions. Make one per application with {@link createSessionManager}. */
export class SessionManager<Data extends object = Record<string, unknown>> {
  /** The name of the session cookie. */
  readonly cookieName: string
  /** The store given in the options. */
  readonly store: Store | CookieStore
  readonly #store: Store
  /** Stateless mode: the session lives sealed in the cookie, and there is no server-side store. */
  readonly #sealed: { readonly store: CookieStore; readonly sealer: Sealer } | undefined
  readonly idleTimeout: number
  readonly absoluteTimeout: number
  readonly #signer: CookieSigner
  readonly #verifiedTokens = new Map<string, VerifiedToken>()
  readonly #parsedRecords = new Map<string, ParsedRecord>()
  #chunkNames: readonly string[] = []
  readonly #cookie: Required<
    Pick<SessionCookieOptions, 'secure' | 'sameSite' | 'httpOnly' | 'path' | 'persistent'>
  > &
    Pick<SessionCookieOptions, 'domain' | 'partitioned' | 'priority'>
  readonly #rolling: boolean
  readonly #touchInterval: number
  readonly #saveUninitialized: boolean
  readonly #maxDataBytes: number
  readonly #maxConflictRetries: number
  readonly #onConflict: 'merge' | 'last-write-wins'
  readonly #cacheControl: string | false
  readonly #storeTimeout: number
  readonly #schema:
    | { readonly schema: StandardSchemaV1; readonly migrate: SessionMigration | undefined }
    | undefined
  readonly #hybrid: HybridMode | undefined
  readonly #trustProxy: boolean
  readonly #generateId: () => string
  readonly #clock: () => number
  readonly #warn: (warning: SessionWarning) => void
  readonly #warned = new Set<SessionWarning['code']>()
  readonly #controller: SessionController
  readonly #events: SessionEventEmitter
  readonly #transportOption: SessionTransport
  readonly #binding: BindingOptions | undefined
  readonly #maxSessionsPerUser:
    | { readonly limit: number; readonly onLimit: 'evict-oldest' | 'reject-new' }
    | undefined
  readonly #failOpen: boolean | ((request: SessionRequest) => boolean)
  readonly #renewal: { readonly after: number; readonly grace: number } | undefined
  /** Set by close(): no new loads. */
  #closing: Promise<void> | undefined
  /** Sessions loaded and not yet committed, plus loads in progress: what close() waits for. */
  #active = 0
  #onIdle: (() => void) | undefined

  constructor(options: SessionManagerOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('options must be an object')
    if (!isStore(options.store) && !isCookieStore(options.store)) {
      throw new SessionConfigError(
        'store must implement the Store interface (get, create, update, touch, destroy…) or be a CookieStore',
      )
    }
    this.store = options.store
    this.#store = isCookieStore(options.store) ? NO_STORE : options.store
    this.idleTimeout = duration('idleTimeout', options.idleTimeout, DEFAULTS.idleTimeout)
    this.absoluteTimeout = duration('absoluteTimeout', options.absoluteTimeout, DEFAULTS.absoluteTimeout)
    this.#touchInterval = options.touchInterval ?? DEFAULTS.touchInterval
    if (
      !Number.isSafeInteger(this.#touchInterval) ||
      this.#touchInterval < 0 ||
      this.#touchInterval >= this.idleTimeout
    ) {
      throw new SessionConfigError(
        'touchInterval must be a whole number of milliseconds, at least 0 and below idleTimeout',
      )
    }
    this.#maxDataBytes = positiveInteger('maxDataBytes', options.maxDataBytes, DEFAULTS.maxDataBytes)
    this.#maxConflictRetries = options.maxConflictRetries ?? DEFAULTS.maxConflictRetries
    if (!Number.isSafeInteger(this.#maxConflictRetries) || this.#maxConflictRetries < 0) {
      throw new SessionConfigError('maxConflictRetries must be a whole number, at least 0')
    }
    this.#storeTimeout = positiveInteger('storeTimeout', options.storeTimeout, 5_000)
    if (options.schema !== undefined && typeof options.schema?.['~standard']?.validate !== 'function') {
      throw new SessionConfigError(
        'schema must be a Standard Schema validator (an object with ~standard.validate)',
      )
    }
    this.#schema =
      options.schema === undefined ? undefined : { schema: options.schema, migrate: options.migrate }
    this.#cacheControl = options.cacheControl ?? 'no-store'
    if (
      this.#cacheControl !== false &&
      (typeof this.#cacheControl !== 'string' || /[\r\n]/.test(this.#cacheControl))
    ) {
      throw new SessionConfigError(
        "cacheControl must be a header value such as 'no-store' or 'private', or false",
      )
    }
    this.#onConflict = options.onConflict ?? 'merge'
    if (this.#onConflict !== 'merge' && this.#onConflict !== 'last-write-wins') {
      throw new SessionConfigError("onConflict must be 'merge' or 'last-write-wins'")
    }
    this.#rolling = options.rolling ?? true
    this.#saveUninitialized = options.saveUninitialized ?? false
    this.#trustProxy = options.trustProxy ?? false
    this.#clock = options.clock ?? Date.now
    const logger = options.logger
    if (
      logger !== undefined &&
      !['info', 'warn', 'error'].every((level) => typeof logger[level as 'info'] === 'function')
    ) {
      throw new SessionConfigError('logger needs info, warn and error methods (pino, bunyan or console fit)')
    }
    this.#warn =
      options.onWarning ??
      (logger === undefined ? emitWarning : (warning) => logger.warn({ code: warning.code }, warning.message))
    this.#events = new SessionEventEmitter((error) =>
      this.#warn({
        code: 'TESSERA_LISTENER_ERROR',
        message: `tessera: an event listener threw: ${error instanceof Error ? error.message : String(error)}`,
      }),
    )
    if (logger !== undefined) attachLogger(this.#events, logger)
    this.#failOpen = options.failOpen ?? false
    if (typeof this.#failOpen !== 'boolean' && typeof this.#failOpen !== 'function') {
      throw new SessionConfigError('failOpen must be true, false or a function of the request')
    }
    if (options.renewal !== undefined) {
      if (isCookieStore(options.store)) {
        throw new SessionConfigError(
          'renewal needs a server-side store: a stateless session has no ID to renew (every response re-seals it)',
        )
      }
      const after = duration('renewal.after', options.renewal.after, 0)
      const grace = positiveInteger('renewal.grace', options.renewal.grace, 30_000)
      if (grace > 5 * 60_000 || grace >= after) {
        throw new SessionConfigError(
          'renewal.grace must be at most 5 minutes and shorter than renewal.after: it is only for requests already in flight',
        )
      }
      this.#renewal = { after, grace }
    } else {
      this.#renewal = undefined
    }
    if (options.generateId !== undefined) assertStrongGenerator(options.generateId)
    this.#generateId = options.generateId ?? generateSessionId

    this.#transportOption = validateTransport(options.transport ?? { type: 'cookie' })
    if (options.binding !== undefined && typeof options.binding.onMismatch !== 'function') {
      throw new SessionConfigError('binding.onMismatch must be a function returning "allow" or "reject"')
    }
    this.#binding = options.binding
    const perUser = options.maxSessionsPerUser
    if (perUser !== undefined) {
      const onLimit = perUser.onLimit ?? 'evict-oldest'
      if (
        !Number.isSafeInteger(perUser.limit) ||
        perUser.limit < 1 ||
        !['evict-oldest', 'reject-new'].includes(onLimit)
      ) {
        throw new SessionConfigError(
          "maxSessionsPerUser needs a limit of 1 or more and onLimit 'evict-oldest' or 'reject-new'",
        )
      }
      this.#maxSessionsPerUser = { limit: perUser.limit, onLimit }
    } else {
      this.#maxSessionsPerUser = undefined
    }
    if (this.#transportOption.type === 'query') {
      this.#warnOnce(
        'TESSERA_URL_TRANSPORT',
        'session tokens in URLs leak through server logs, browser history and shared links; tessera sets Referrer-Policy: no-referrer and never rewrites URLs, but prefer the cookie or header transport wherever the client allows it.',
      )
    }
    const cookie = options.cookie ?? {}
    this.#cookie = {
      secure: cookie.secure ?? true,
      sameSite: cookie.sameSite ?? 'Lax',
      httpOnly: cookie.httpOnly ?? true,
      path: cookie.path ?? '/',
      persistent: cookie.persistent ?? true,
      ...(cookie.domain !== undefined && { domain: cookie.domain }),
      ...(cookie.partitioned !== undefined && { partitioned: cookie.partitioned }),
      ...(cookie.priority !== undefined && { priority: cookie.priority }),
    }
    this.cookieName =
      cookie.name ??
      (this.#cookie.secure === true && cookie.domain === undefined && this.#cookie.path === '/'
        ? '__Host-sid'
        : 'sid')
    validateCookie(this.cookieName, this.#cookie)
    this.#signer = new CookieSigner(options.secrets, this.cookieName)
    if (isCookieStore(options.store)) {
      if (this.#transportOption.type !== 'cookie') {
        throw new SessionConfigError(
          'a CookieStore keeps the session in the cookie: it needs the cookie transport',
        )
      }
      const sealer = new Sealer(options.secrets, this.cookieName, options.store.signedOnly, this.#clock)
      this.#sealed = { store: options.store, sealer }
    } else {
      this.#sealed = undefined
    }
    if (options.hybrid !== undefined) {
      if (this.#sealed !== undefined || this.#transportOption.type !== 'cookie') {
        throw new SessionConfigError('hybrid mode needs a server-side store and the cookie transport')
      }
      const revalidateAfter = positiveInteger(
        'hybrid.revalidateAfter',
        options.hybrid.revalidateAfter,
        60_000,
      )
      const cookieName = `${this.cookieName}-cache`
      this.#hybrid = {
        revalidateAfter,
        cookieName,
        sealer: new Sealer(options.secrets, cookieName, false, this.#clock),
      }
    } else {
      this.#hybrid = undefined
    }
    if (options.production ?? globalThis.process?.env?.NODE_ENV === 'production') {
      checkProduction(this.store, this.#cookie.secure, this.#transportOption, options.allowInProduction ?? {})
    }
    this.#controller = {
      regenerate: (state) => this.#regenerate(state),
      destroy: (state) => this.#destroy(state),
      login: (state, userId) => this.#login(state, userId),
      now: () => this.#clock(),
      token: (state) => this.#token(state),
    }
  }

  /**
   * The session of a request. A missing, malformed, forged, unknown, expired or destroyed cookie gives a fresh
   * empty session: the presented ID is never adopted, and a cookie that fails its signature costs no store call.
   *
   * @throws {StoreError} when the store fails: the request must fail (5xx), never carry on with a fresh
   * session that would log the user out.
   */
  load(request: SessionRequest): Promise<Session<Data>> {
    const loading = this[loadNow](request)
    return loading instanceof Promise ? loading : Promise.resolve(loading)
  }

  /**
   * @internal {@link load} for tessera's adapters: the session itself when no step had to wait (a store that
   * answers at once, such as MemoryStore), so the request goes on without a turn of the microtask queue.
   */
  [loadNow](request: SessionRequest): Session<Data> | Promise<Session<Data>> {
    if (this.#closing !== undefined) {
      return Promise.reject(
        new SessionClosedError('the session manager is closed; the server is shutting down'),
      )
    }
    this.#active++
    let loading: Session<Data> | Promise<Session<Data>>
    try {
      loading = this.#load(request)
    } catch (error) {
      loading = Promise.reject(error)
    }
    if (!(loading instanceof Promise)) return loading
    return loading.catch((error: unknown) => {
      this.#release()
      if (error instanceof StoreError && this.#failsOpen(request)) return this.#degraded(request)
      throw error
    })
  }

  #failsOpen(request: SessionRequest): boolean {
    const failOpen = this.#failOpen
    if (typeof failOpen === 'boolean') return failOpen
    try {
      return failOpen(request) === true
    } catch {
      return false // a broken policy must not turn an outage into something worse
    }
  }

  // failOpen: an empty session that may be read but not written, and that leaves the client's cookie alone.
  #degraded(request: SessionRequest): Session<Data> {
    const session = this.#fresh(this.#clock(), this.#transport(request), false)
    stateOf(session).degraded = true
    this.#active++
    return session
  }

  // Synchronous as long as every step is: a store that answers at once (MemoryStore), no schema, no hijack
  // signal. The first step that needs to wait hands the rest to a promise.
  #load(request: SessionRequest): Session<Data> | Promise<Session<Data>> {
    const now = this.#clock()
    const transport = this.#transport(request)
    if (this.#sealed !== undefined) return this.#loadSealed(this.#sealed, request, now, transport)
    const candidates = this.#candidates(request)
    if (candidates.length === 0) return this.#fresh(now, transport, false)

    // Several cookies of one name happen (an old Path, cookie tossing from a sibling subdomain): only verified
    // ones count, and if more than one verified ID is live the request gets nothing (fail closed).
    // Distinct values only, and fail closed past a small number: browsers send at most a few same-named
    // cookies (one per Path/Domain); a long list is an attempt to push a valid one out of view.
    const distinct = candidates.length === 1 ? candidates : [...new Set(candidates)]
    if (distinct.length > MAX_CANDIDATES) {
      this.#events.emit('rejected', { reason: 'duplicate' })
      return this.#fresh(now, transport, true)
    }
    // Each verified ID once, with the presented value signed by the newest secret: re-sending it spares a MAC.
    const verified: Candidate[] = []
    let reason: RejectionReason = 'malformed'
    for (let index = 0; index < distinct.length; index++) {
      const candidate = distinct[index]!
      const token = this.#verifyToken(candidate)
      if (token === undefined) {
        if (SIGNED_SHAPE.test(candidate)) reason = 'bad-signature'
        continue
      }
      const signedValue = token.renew ? undefined : candidate
      const seen = verified.find((entry) => entry.id === token.id)
      // Spelled out: an object spread here cost more than the MAC it replaces.
      if (seen === undefined) verified.push({ id: token.id, renew: token.renew, key: token.key, signedValue })
      else {
        seen.renew ||= token.renew
        seen.signedValue ??= signedValue
      }
    }
    if (verified.length === 0) {
      this.#events.emit('rejected', { reason })
      return this.#fresh(now, transport, true)
    }
    if (verified.length > 1) return this.#loadAmong(verified, now, transport)
    const only = verified[0]!
    if (this.#hybrid !== undefined) return this.#loadViaCopy(this.#hybrid, request, only, now, transport)
    const read = this.#read(only.key, now)
    return read instanceof Promise
      ? read.then((live) => this.#loadRead(only, live, now, transport))
      : this.#loadRead(only, read, now, transport)
  }

  // The one verified candidate, once its record is read.
  #loadRead(
    candidate: Candidate,
    live: ReadResult,
    now: number,
    transport: Transport,
  ): Session<Data> | Promise<Session<Data>> {
    if ('reason' in live) {
      this.#events.emit('rejected', { reason: live.reason, session: sessionHandle(candidate.key) })
      return this.#fresh(now, transport, true)
    }
    if (live.payload.meta.successor !== undefined) return this.#loadFollowing(candidate, live, now, transport)
    return this.#loadFound(foundUnder(candidate, live), now, transport)
  }

  // A record renewed under another ID: the session continues as its successor (renewal's grace window).
  async #loadFollowing(
    candidate: Candidate,
    live: { record: StoreRecord; payload: Payload },
    now: number,
    transport: Transport,
  ): Promise<Session<Data>> {
    const current = await this.#follow(live, now)
    if (current === null) {
      this.#events.emit('rejected', { reason: 'unknown', session: sessionHandle(candidate.key) })
      return this.#fresh(now, transport, true)
    }
    return this.#loadFound(foundVia(candidate, current), now, transport)
  }

  // Several verified IDs: at most one of them may be live.
  async #loadAmong(verified: Candidate[], now: number, transport: Transport): Promise<Session<Data>> {
    let found: Found | undefined
    for (let index = 0; index < verified.length; index++) {
      const candidate = verified[index]!
      const live = await this.#read(candidate.key, now)
      if ('reason' in live) {
        this.#events.emit('rejected', { reason: live.reason, session: sessionHandle(candidate.key) })
        continue
      }
      if (found !== undefined) {
        this.#events.emit('rejected', { reason: 'duplicate', session: sessionHandle(candidate.key) })
        return this.#fresh(now, transport, true)
      }
      const current = live.payload.meta.successor === undefined ? undefined : await this.#follow(live, now)
      if (current === null) {
        this.#events.emit('rejected', { reason: 'unknown', session: sessionHandle(candidate.key) })
        continue
      }
      found = current === undefined ? foundUnder(candidate, live) : foundVia(candidate, current)
    }
    return found === undefined ? this.#fresh(now, transport, true) : this.#loadFound(found, now, transport)
  }

  // Hybrid mode: the sealed copy stands in for the store read while it is fresh.
  async #loadViaCopy(
    hybrid: HybridMode,
    request: SessionRequest,
    candidate: Candidate,
    now: number,
    transport: Transport,
  ): Promise<Session<Data>> {
    const cached = await this.#fromCache(hybrid, request, candidate, now, transport)
    if (cached === undefined) {
      const live = await this.#read(candidate.key, now)
      return this.#loadRead(candidate, live, now, transport)
    }
    const [session, meta] = cached
    if (!(await this.#bindingHolds(meta.meta, transport, meta.key))) return this.#fresh(now, transport, true)
    const cachedState = stateOf(session)
    const data =
      this.#schema === undefined ? cachedState.data : await this.#validData(cachedState.data, meta.key)
    if (data === undefined) return this.#fresh(now, transport, true)
    if (data !== cachedState.data) cachedState.dataExposed = true // migrated: save the new shape
    cachedState.data = data
    cachedState.loadedMeta = cachedState.meta
    return session
  }

  // The live record found for this request: checks the hijack signals and the schema, then the session.
  #loadFound(found: Found, now: number, transport: Transport): Session<Data> | Promise<Session<Data>> {
    const { meta } = found.payload
    const binding = this.#binding
    if (
      binding !== undefined &&
      meta.userId !== undefined &&
      bindingChanges(binding, meta, transport).length > 0
    ) {
      return this.#bindingHolds(meta, transport, found.key).then((holds) =>
        holds ? this.#loadValid(found, now, transport) : this.#fresh(now, transport, true),
      )
    }
    return this.#loadValid(found, now, transport)
  }

  #loadValid(found: Found, now: number, transport: Transport): Session<Data> | Promise<Session<Data>> {
    // Without a schema there is nothing to wait for: no promise, no extra turn of the microtask queue.
    if (this.#schema === undefined) return this.#loaded(found, found.payload.data, now, transport)
    return this.#validData(found.payload.data, found.key).then((data) =>
      data === undefined ? this.#fresh(now, transport, true) : this.#loaded(found, data, now, transport),
    )
  }

  #loaded(found: Found, data: Record<string, unknown>, now: number, transport: Transport): Session<Data> {
    const loaded = {
      key: found.key,
      raw: found.record.data,
      version: found.record.version,
      expiresAt: found.record.expiresAt,
    }
    const session = this.#fresh(now, transport, true)
    const state = stateOf(session)
    state.id = found.id
    state.loaded = loaded
    state.validated = loaded // just read from the store
    state.meta = found.payload.meta
    state.loadedMeta = found.payload.meta
    state.data = data
    state.dataExposed = data !== found.payload.data // migrated by the schema: save the new shape
    state.renewCookie = found.renew
    state.signedValue = found.signedValue
    state.followed = found.followed === true
    return session
  }

  // The ID and store key of a token whose signature holds, or undefined.
  #verifyToken(candidate: string): VerifiedToken | undefined {
    const known = this.#verifiedTokens.get(candidate)
    if (known !== undefined) return known
    const unsigned = this.#signer.unsign(candidate)
    if (unsigned === undefined || !isWellFormedId(unsigned.value)) return undefined
    // Joined anew rather than kept as presented: a slice of the Cookie header would keep the whole header alive.
    const token = `${unsigned.value}.${candidate.slice(unsigned.value.length + 1)}`
    const id = token.slice(0, unsigned.value.length)
    const verified: VerifiedToken = { id, renew: unsigned.renew, key: sha256Hex(id) }
    setBounded(this.#verifiedTokens, token, verified, VERIFIED_TOKENS)
    return verified
  }

  // The record a renewed ID continues as (renewal's grace window), or null when that session has ended too.
  async #follow(
    live: { record: StoreRecord; payload: Payload },
    now: number,
  ): Promise<{ key: string; record: StoreRecord; payload: Payload } | null> {
    let current = live
    // Two hops at most: a session renewed twice within one grace window; a longer chain is not ours.
    for (let hop = 0; hop < 2; hop++) {
      const key = current.payload.meta.successor
      if (key === undefined) break
      const next = await this.#read(key, now)
      if ('reason' in next) return null
      if (next.payload.meta.successor === undefined)
        return { key, record: next.record, payload: next.payload }
      current = next
    }
    return null
  }

  /**
   * Writes what the handler changed and returns the `Set-Cookie` headers for the response. Call it once,
   * before the response headers go out (the adapters do).
   *
   * @throws {SessionCommittedError} when called twice for one session.
   * @throws {StoreError} when the store fails; no cookie is returned for an unsaved session.
   * @throws {SessionTooLargeError | SessionDataError} when the data cannot be stored; nothing was written.
   * @throws {SessionConflictError} when concurrent writers kept changing this session past the retry bound.
   * @throws {SessionDestroyedError} when another request destroyed this session while this one changed it.
   */
  commit(session: Session<Data>): Promise<CommitResult> {
    const committing = this[commitNow](session)
    return committing instanceof Promise ? committing : Promise.resolve(committing)
  }

  /** @internal {@link commit} for tessera's adapters: the result itself when nothing had to wait. */
  [commitNow](session: Session<Data>): CommitResult | Promise<CommitResult> {
    const state = stateOf(session)
    if (state.committed) return Promise.reject(new SessionCommittedError('the session was already committed'))
    state.committed = true
    let committing: CommitResult | Promise<CommitResult>
    try {
      committing = this.#commit(state)
    } catch (error) {
      this.#release()
      return Promise.reject(error)
    }
    if (committing instanceof Promise) return committing.finally(() => this.#release())
    this.#release()
    return committing
  }

  #commit(state: SessionState): CommitResult | Promise<CommitResult> {
    const now = this.#clock()
    if (state.degraded) return this.#commitDegraded(state)
    if (this.#sealed !== undefined) return this.#commitSealed(this.#sealed, state, now)
    const { loaded } = state
    if (loaded === undefined) return this.#commitNew(state, now)
    const saved = this.#save(state, loaded, now)
    if (typeof saved === 'number' && this.#hybrid === undefined && !this.#renewalDue(state, now)) {
      return this.#result(state, this.#issueAfterSave(state, loaded, saved), now)
    }
    return this.#commitLoaded(state, loaded, saved, now)
  }

  // A session that had no record: stored if there is anything worth keeping (or saveUninitialized).
  #commitNew(state: SessionState, now: number): CommitResult | Promise<CommitResult> {
    const { userId, csrfSecret } = state.meta
    const worthKeeping =
      Object.keys(state.data).length > 0 ||
      userId !== undefined ||
      csrfSecret !== undefined ||
      state.tokenIssued
    if (worthKeeping || this.#saveUninitialized) return this.#commitCreated(state, now)
    const issue = state.clearCookie && state.cookiePresented ? 'end' : undefined
    return this.#hybrid === undefined ? this.#result(state, issue, now) : this.#withCopy(state, issue, now)
  }

  async #commitCreated(state: SessionState, now: number): Promise<CommitResult> {
    const issue = await this.#create(state, now)
    const { userId } = state.meta
    if (userId !== undefined && this.#maxSessionsPerUser?.onLimit === 'evict-oldest') {
      const loggedInAt = state.meta.authenticatedAt ?? now
      await this.#evictBeyondLimit(userId, sha256Hex(issue.id), this.#maxSessionsPerUser.limit, loggedInAt)
    }
    return this.#withCopy(state, issue, now)
  }

  async #commitLoaded(
    state: SessionState,
    loaded: NonNullable<SessionState['loaded']>,
    saved: number | Promise<number>,
    now: number,
  ): Promise<CommitResult> {
    const expiresAt = await saved
    const renewed = this.#renewalDue(state, now)
      ? await this.#renew(state, this.#renewal!.grace, now)
      : undefined
    return this.#withCopy(state, renewed ?? this.#issueAfterSave(state, loaded, expiresAt), now)
  }

  #renewalDue(state: SessionState, now: number): boolean {
    const renewal = this.#renewal
    return (
      renewal !== undefined &&
      !state.followed &&
      now - (state.meta.issuedAt ?? state.meta.createdAt) >= renewal.after
    )
  }

  // After a save: a token when the cookie's Max-Age moved or its signature is due for the newest secret.
  // A request that reached the session through a renewed ID never hands that ID back: the response that
  // renewed it may already have given the client the new one.
  #issueAfterSave(
    state: SessionState,
    loaded: NonNullable<SessionState['loaded']>,
    expiresAt: number,
  ): { id: string; expiresAt: number } | undefined {
    const refreshed = expiresAt !== loaded.expiresAt && this.#cookie.persistent
    return (refreshed || state.renewCookie) && !state.followed ? { id: state.id!, expiresAt } : undefined
  }

  // What to tell the client (a token, an ended session, or nothing), with hybrid mode's sealed copy beside the
  // session cookie (sealing is asynchronous on Web Crypto).
  async #withCopy(
    state: SessionState,
    issue: { id: string; expiresAt: number } | 'end' | undefined,
    now: number,
  ): Promise<CommitResult> {
    const copy =
      this.#hybrid === undefined ? undefined : await this.#cacheCookie(this.#hybrid, state, issue, now)
    return this.#result(state, issue, now, copy)
  }

  // failOpen: nothing may be written while the store is down; a read-only request passes without a cookie.
  #commitDegraded(state: SessionState): CommitResult {
    const { userId, csrfSecret } = state.meta
    const changed =
      Object.keys(state.data).length > 0 ||
      userId !== undefined ||
      csrfSecret !== undefined ||
      state.tokenIssued ||
      state.clearCookie
    if (changed) {
      throw new StoreError(
        'the session store was unavailable when this request began, so its session cannot be changed',
      )
    }
    return this.#result(state, undefined, this.#clock())
  }

  // renewal: moves the session to a new ID, leaving behind a record that forwards the old ID to the new one
  // until the grace window closes. Resolves undefined (renew on a later request) when another request wrote
  // the session meanwhile, so that no write can land on the old record unseen.
  async #renew(
    state: SessionState,
    grace: number,
    now: number,
  ): Promise<{ id: string; expiresAt: number } | undefined> {
    const current = state.validated ?? state.loaded
    const payload = current === undefined ? undefined : parsePayload(current.raw, Number.POSITIVE_INFINITY)
    if (current === undefined || payload === undefined) return undefined
    const id = this.#generateId()
    const key = sha256Hex(id)
    const meta: SessionMeta = { ...payload.meta, issuedAt: now }
    const text = this.#serialize(meta, payload.data, true, key)
    const expiresAt = this.#expiryAt(now, meta)
    const { userId } = meta
    const created = await this.#call('create', () =>
      this.#store.create(key, { data: text, expiresAt, version: 1, userId }, now),
    )
    if (!created) return undefined
    // The forwarding record holds no data (nothing is ever served from it) and dies with the grace window
    // even if a late touch moves its store expiry.
    const forwardMeta: SessionMeta = {
      ...payload.meta,
      absoluteExpiresAt: Math.min(payload.meta.absoluteExpiresAt, now + grace),
      successor: key,
    }
    const forward: StoreRecord = {
      data: serializePayload(forwardMeta, {}, current.key),
      expiresAt: Math.min(current.expiresAt, now + grace),
      version: current.version + 1,
      userId,
    }
    const forwarded = await this.#call('update', () =>
      this.#store.update(current.key, forward, current.version, now),
    )
    if (!forwarded) {
      await this.#call('destroy', () => this.#store.destroy(key)).catch(() => undefined)
      return undefined
    }
    state.id = id
    state.meta = meta
    state.loaded = { key, raw: text, version: 1, expiresAt }
    state.validated = state.loaded
    state.signedValue = undefined
    state.renewCookie = false
    this.#events.emit('renewed', { session: sessionHandle(current.key), successor: sessionHandle(key) })
    return { id, expiresAt }
  }

  #result(
    state: SessionState,
    issue: { id: string; expiresAt: number } | 'end' | undefined,
    now: number,
    copy?: string,
  ): CommitResult {
    const setCookie: string[] = []
    let token: string | undefined
    if (this.#transportOption.type === 'cookie') {
      if (issue === 'end') setCookie.push(this.#clearingCookie(state.transport))
      else if (issue !== undefined) {
        const signed = issue.id === state.id ? state.signedValue : undefined
        setCookie.push(this.#cookieFor(issue.id, issue.expiresAt, now, state.transport, signed))
      }
    } else if (issue !== undefined) {
      token = issue === 'end' ? '' : this.#signer.sign(issue.id)
    }
    if (copy !== undefined) setCookie.push(copy)
    const result: { -readonly [K in keyof CommitResult]: CommitResult[K] } = { setCookie }
    if (token !== undefined) result.token = token
    if (this.#transportOption.type === 'query') result.referrerPolicy = 'no-referrer'
    const personal = state.accessed || setCookie.length > 0 || token !== undefined
    if (this.#cacheControl !== false && personal) {
      result.cacheControl = this.#cacheControl
      const { type } = this.#transportOption
      if (type !== 'query') result.vary = type === 'cookie' ? 'Cookie' : headerName(this.#transportOption)
    }
    return result
  }

  /** The signed token of `session`, issuing its ID now if it has none yet (the session is then stored). */
  tokenOf(session: Session<Data>): string {
    return this.#token(stateOf(session))
  }

  #token(state: SessionState): string {
    if (state.id === undefined) {
      state.id = this.#generateId()
      state.tokenIssued = true
    }
    return this.#signer.sign(state.id)
  }

  // Writes a loaded session back if its data changed, or touches it if its idle deadline is due for a refresh.
  // Resolves the expiry the record now has.
  #save(
    state: SessionState,
    loaded: NonNullable<SessionState['loaded']>,
    now: number,
  ): number | Promise<number> {
    // Unchecked for size until it is known to be a write: a session stored under a larger maxDataBytes must
    // still be readable after the limit is lowered.
    // Nothing written and no object handed out: the stored text stands, and serializing it again is waste.
    const text = this.#unchanged(state)
      ? loaded.raw
      : this.#serialize(state.meta, state.data, false, loaded.key)
    const expiresAt = this.#expiryAt(now, state.meta)
    if (text === loaded.raw) {
      const due = state.forceTouch || expiresAt - loaded.expiresAt >= this.#touchInterval
      // Nothing to write and no touch due, the usual read-only request: answered without a promise.
      if (!this.#rolling || !due || expiresAt <= loaded.expiresAt) return loaded.expiresAt
      return this.#touch(loaded.key, expiresAt, loaded.expiresAt, now)
    }
    this.#refuseTooDeep(state.data)
    this.#refuseTooLarge(text)
    return this.#write(state, loaded, text, expiresAt, now)
  }

  // Moves the idle deadline of an unchanged record; resolves the expiry it now has.
  async #touch(key: string, expiresAt: number, previous: number, now: number): Promise<number> {
    const live = await this.#call('touch', () => this.#store.touch(key, expiresAt, now))
    if (!live) return previous
    this.#events.emit('touched', { session: sessionHandle(key), expiresAt })
    return expiresAt
  }

  // Writes changed data, compare-and-set on the version; at once when the store answers at once and nobody
  // else wrote meanwhile.
  #write(
    state: SessionState,
    loaded: NonNullable<SessionState['loaded']>,
    text: string,
    expiresAt: number,
    now: number,
  ): number | Promise<number> {
    // A data write extends the idle deadline (`rolling` only decides whether reads do too), in the same steps of
    // at least touchInterval as a touch: the cookie's Max-Age is re-sent only when the deadline moved, so a busy
    // session does not cost a Set-Cookie (and a MAC) on every response.
    const written =
      state.forceTouch || expiresAt - loaded.expiresAt >= this.#touchInterval ? expiresAt : loaded.expiresAt
    const record: StoreRecord = {
      data: text,
      expiresAt: written,
      version: loaded.version + 1,
      userId: state.meta.userId,
    }
    const stored = this.#update(loaded.key, record, loaded.version, now)
    if (stored === true) {
      // `text` is this very data and meta serialized, so the next read of it need not parse it.
      this.#rememberParsed(loaded.key, text, state.meta, state.data)
      return this.#written(state, loaded.key, record)
    }
    return this.#writeRetrying(state, loaded, record, stored, now)
  }

  #written(state: SessionState, key: string, record: StoreRecord): number {
    state.validated = { key, raw: record.data, version: record.version, expiresAt: record.expiresAt }
    this.#events.emit('saved', { session: sessionHandle(key), version: record.version })
    return record.expiresAt
  }

  // Waits for the first write, and while others keep writing the session, retries on the record as it now
  // stands (merging), up to the retry bound.
  async #writeRetrying(
    state: SessionState,
    loaded: NonNullable<SessionState['loaded']>,
    first: StoreRecord,
    firstStored: boolean | Promise<boolean>,
    now: number,
  ): Promise<number> {
    let key = loaded.key
    let record = first
    let stored = firstStored
    for (let attempt = 0; ; attempt++) {
      if (await stored) return this.#written(state, key, record)
      this.#events.emit('conflict', { session: sessionHandle(key), attempt: attempt + 1 })
      if (attempt >= this.#maxConflictRetries) {
        throw new SessionConflictError(
          `the session kept changing under concurrent requests; gave up after ${attempt + 1} attempts without overwriting`,
        )
      }
      // Spread the retries of many writers racing on one session, so each round lets someone through.
      await sleep(Math.random() * Math.min(500, 2 ** (attempt + 1)))
      let current = await this.#read(key, now)
      if (!('reason' in current) && current.payload.meta.successor !== undefined) {
        // Renewed since this request loaded it: the change belongs to the session under its new ID.
        const next = await this.#follow(current, now)
        current = next ?? { reason: 'unknown' }
        if (next !== null) {
          key = next.key
          state.followed = true
        }
      }
      if ('reason' in current) {
        throw new SessionDestroyedError(
          'the session was destroyed by another request; its changes were dropped',
        )
      }
      const data =
        this.#onConflict === 'merge' ? mergeChanges(loaded.raw, state.data, current.payload.data) : state.data
      record = {
        data: this.#serialize(current.payload.meta, data, true, key),
        expiresAt: first.expiresAt,
        version: current.record.version + 1,
        userId: state.meta.userId,
      }
      stored = this.#update(key, record, current.record.version, now)
    }
  }

  async #create(state: SessionState, now: number): Promise<{ id: string; expiresAt: number }> {
    // renewal counts an ID's age from its issue; a session's first ID is issued at its creation.
    if (this.#renewal !== undefined && state.meta.createdAt !== now)
      state.meta = { ...state.meta, issuedAt: now }
    this.#refuseTooDeep(state.data)
    const expiresAt = this.#expiryAt(now, state.meta)
    // Insert-if-absent: a colliding ID (astronomically unlikely with 256 bits) gets a new one, never an overwrite.
    for (let attempt = 0; attempt < 3; attempt++) {
      const id = state.id ?? this.#generateId()
      state.id = id
      const key = sha256Hex(id)
      const text = this.#serialize(state.meta, state.data, true, key)
      const record: StoreRecord = { data: text, expiresAt, version: 1, userId: state.meta.userId }
      if (await this.#call('create', () => this.#store.create(key, record, now))) {
        state.validated = { key, raw: text, version: 1, expiresAt }
        this.#events.emit('created', { session: sessionHandle(key) })
        return { id, expiresAt }
      }
      state.id = undefined
    }
    throw new StoreError(
      'the store refused three new session IDs in a row; is create() reporting collisions wrongly?',
    )
  }

  async #regenerate(state: SessionState): Promise<void> {
    const retired = await this.#retire(state)
    this.#events.emit('regenerated', { session: retired })
  }

  // Deletes the record under the current ID at once and arranges for a new ID; resolves the retired handle.
  async #retire(state: SessionState): Promise<string | undefined> {
    const loaded = state.loaded
    if (loaded !== undefined && this.#sealed === undefined) {
      await this.#call('destroy', () => this.#store.destroy(loaded.key))
      // Reached through a renewed ID: end the forwarding record too, so the old ID stops at once.
      const forwarding = state.followed && state.id !== undefined ? sha256Hex(state.id) : undefined
      if (forwarding !== undefined) await this.#call('destroy', () => this.#store.destroy(forwarding))
    }
    state.followed = false
    state.loaded = undefined
    state.validated = undefined
    state.signedValue = undefined
    state.id = undefined
    state.clearCookie = true
    // CSRF tokens handed out under the old ID must not work under the new one (a planted pre-login token).
    const { csrfSecret: _retired, ...meta } = state.meta
    state.meta = meta
    return loaded === undefined ? undefined : sessionHandle(loaded.key)
  }

  async #login(state: SessionState, userId: string): Promise<void> {
    const perUser = this.#maxSessionsPerUser
    if (perUser?.onLimit === 'reject-new' && this.#sealed === undefined) {
      const others = (await this.listSessions(userId)).filter(
        (session) => session.handle !== state.loaded?.key,
      )
      if (others.length >= perUser.limit) {
        throw new SessionLimitError(
          `${userId} already has ${others.length} sessions, the most allowed; log out elsewhere first`,
        )
      }
    }
    const retired = await this.#retire(state)
    this.#events.emit('loggedIn', { session: retired, userId })
    const now = this.#clock()
    const { userAgent, ip } = state.transport
    state.meta = {
      createdAt: state.meta.createdAt,
      absoluteExpiresAt: now + this.absoluteTimeout,
      userId,
      authenticatedAt: now,
      ...(userAgent !== undefined && { userAgent }),
      ...(ip !== undefined && { ip }),
    }
  }

  /**
   * The live sessions of `userId` ("your devices"), most recently active first. Pass the request's session as
   * `current` to have it marked.
   *
   * @throws {StoreError} when the store fails.
   */
  async listSessions(userId: string, options: { current?: Session<Data> } = {}): Promise<UserSessionInfo[]> {
    this.#needStore('listSessions')
    const now = this.#clock()
    const currentKey = options.current === undefined ? undefined : stateOf(options.current).loaded?.key
    const sessions: UserSessionInfo[] = []
    for (const { key, record } of await this.#call('listByUser', () => this.#store.listByUser(userId, now))) {
      const payload = parsePayload(record.data, this.#maxDataBytes * 4)
      // A record whose payload names another user is not this user's, whatever the index says.
      if (payload === undefined || payload.meta.userId !== userId || record.expiresAt <= now) continue
      if (payload.meta.successor !== undefined) continue // an old ID in its renewal grace window
      const { meta } = payload
      sessions.push({
        handle: key,
        createdAt: new Date(meta.createdAt),
        authenticatedAt: meta.authenticatedAt === undefined ? undefined : new Date(meta.authenticatedAt),
        lastSeenAt: new Date(
          Math.max(meta.authenticatedAt ?? meta.createdAt, record.expiresAt - this.idleTimeout),
        ),
        expiresAt: new Date(record.expiresAt),
        userAgent: meta.userAgent,
        ip: meta.ip,
        current: key === currentKey,
      })
    }
    return sessions.sort((a, b) => b.lastSeenAt.getTime() - a.lastSeenAt.getTime())
  }

  /**
   * Ends every session of `userId` ("log out everywhere"), except `except` when given ("…everywhere else").
   * Resolves how many records were deleted, which may include expired ones that cleanup had not reached.
   *
   * @throws {StoreError} when the store fails.
   */
  async revokeSessions(userId: string, options: { except?: Session<Data> } = {}): Promise<number> {
    this.#needStore('revokeSessions')
    const exceptKey = options.except === undefined ? undefined : stateOf(options.except).loaded?.key
    // Audit logs want each ended session: list them first, but only when someone listens.
    const ending = this.#events.has('revoked')
      ? (await this.#call('listByUser', () => this.#store.listByUser(userId, this.#clock()))).filter(
          // A renewed ID's forwarding record is not a session of its own.
          ({ key, record }) =>
            key !== exceptKey &&
            parsePayload(record.data, Number.POSITIVE_INFINITY)?.meta.successor === undefined,
        )
      : []
    const count = await this.#call('destroyByUser', () => this.#store.destroyByUser(userId, { exceptKey }))
    for (const { key } of ending) this.#events.emit('revoked', { session: sessionHandle(key), userId })
    return count
  }

  /**
   * Ends the session `handle` (from {@link listSessions}) if it belongs to `userId`. Resolves whether it did,
   * so a user can never end another user's session by guessing handles.
   *
   * @throws {StoreError} when the store fails.
   */
  async revokeSession(userId: string, handle: string): Promise<boolean> {
    this.#needStore('revokeSession')
    if (!/^[0-9a-f]{64}$/.test(handle)) return false
    const live = await this.#read(handle, this.#clock())
    if ('reason' in live || live.payload.meta.userId !== userId) return false
    await this.#call('destroy', () => this.#store.destroy(handle))
    this.#events.emit('revoked', { session: sessionHandle(handle), userId })
    return true
  }

  async #destroy(state: SessionState): Promise<void> {
    const retired = await this.#retire(state)
    this.#events.emit('destroyed', { session: retired })
    state.data = {}
    const now = this.#clock()
    state.meta = { createdAt: now, absoluteExpiresAt: now + this.absoluteTimeout }
  }

  // The data as the schema accepts it (migrated if need be), or undefined when the session must be dropped.
  async #validData(data: Record<string, unknown>, key: string): Promise<Record<string, unknown> | undefined> {
    if (this.#schema === undefined) return data
    const valid = await validateSessionData(this.#schema.schema, this.#schema.migrate, data)
    if (valid === undefined)
      this.#events.emit('rejected', {
        reason: 'invalid',
        session: key === 'stateless' ? undefined : sessionHandle(key),
      })
    return valid
  }

  // Hybrid mode: a session loaded from the sealed copy, when the copy is for this ID, fresh and alive.
  async #fromCache(
    hybrid: HybridMode,
    request: SessionRequest,
    { id, renew, key }: VerifiedToken,
    now: number,
    transport: Transport,
  ): Promise<[Session<Data>, { meta: SessionMeta; key: string }] | undefined> {
    const values = getCookieValues(request.cookie, hybrid.cookieName)
    const opened = values.length === 1 ? await hybrid.sealer.open(values[0]!) : undefined
    if (opened === undefined) return undefined
    let copy: { k?: unknown; v?: unknown; e?: unknown; t?: unknown; p?: unknown }
    try {
      copy = JSON.parse(opened.plaintext)
    } catch {
      return undefined
    }
    const { k, v, e, t, p } = copy
    if (k !== key || typeof v !== 'number' || typeof e !== 'number' || typeof t !== 'number') return undefined
    if (e <= now || t > now || now - t >= hybrid.revalidateAfter) return undefined
    const payload = parsePayload(p, this.#maxDataBytes * 4, false) // sealed by us
    if (payload === undefined || payload.meta.absoluteExpiresAt <= now) return undefined
    const session = this.#fresh(now, transport, true)
    const state = stateOf(session)
    state.id = id
    state.loaded = { key, raw: p as string, version: v, expiresAt: e }
    state.meta = payload.meta
    state.data = payload.data
    state.renewCookie = renew
    return [session, { meta: payload.meta, key }]
  }

  // Hybrid mode: re-issue the sealed copy whenever this request confirmed the record against the store (a
  // read or a successful write); clear it when the session ended.
  // The Set-Cookie header for the copy, or undefined when the copy stays as it is.
  async #cacheCookie(
    hybrid: HybridMode,
    state: SessionState,
    issue: { id: string; expiresAt: number } | 'end' | undefined,
    now: number,
  ): Promise<string | undefined> {
    const current = state.validated
    const ended = issue === 'end' || state.id === undefined
    if (ended) {
      return state.transport.copyPresented || issue === 'end'
        ? this.#clearingCookie(state.transport, hybrid.cookieName)
        : undefined
    }
    // Served from the copy and nothing confirmed against the store: the copy stands until it is due.
    if (current === undefined || current.key !== sha256Hex(state.id!)) return undefined
    const value = await hybrid.sealer.seal(
      JSON.stringify({ k: current.key, v: current.version, e: current.expiresAt, t: now, p: current.raw }),
    )
    if (value.length > CHUNK_LENGTH) {
      // Too big for one cookie: this session is simply served from the store.
      return state.transport.copyPresented
        ? this.#clearingCookie(state.transport, hybrid.cookieName)
        : undefined
    }
    const attributes = this.#attributes(state.transport)
    attributes.maxAge = Math.max(
      1,
      Math.ceil(Math.min(hybrid.revalidateAfter, current.expiresAt - now) / 1000),
    )
    return serializeCookie(hybrid.cookieName, value, attributes)
  }

  // Hijack signals: compares the client recorded at login with this request's; the app's hook decides.
  async #bindingHolds(meta: SessionMeta, transport: Transport, key: string): Promise<boolean> {
    const binding = this.#binding
    if (binding === undefined || meta.userId === undefined) return true
    const recorded = { userAgent: meta.userAgent, ip: meta.ip }
    const current = { userAgent: transport.userAgent, ip: transport.ip }
    const changed = bindingChanges(binding, recorded, current)
    if (changed.length === 0) return true
    const verdict = await binding.onMismatch({ userId: meta.userId, changed, recorded, current })
    this.#events.emit('hijackSuspected', { session: sessionHandle(key), changed, verdict })
    return verdict !== 'reject'
  }

  // Ends the least recently active sessions of `userId` beyond `limit`, never the one just created.
  async #evictBeyondLimit(userId: string, newKey: string, limit: number, loggedInAt: number): Promise<void> {
    const sessions = await this.listSessions(userId) // most recently active first
    const others = sessions.filter((session) => session.handle !== newKey)
    for (const session of others.slice(Math.max(0, limit - 1))) {
      // Only sessions logged in before this one: a login racing this one is not "older", and must not be
      // ended by it (parallel logins would otherwise log each other out).
      if ((session.authenticatedAt ?? session.createdAt).getTime() >= loggedInAt) continue
      await this.#call('destroy', () => this.#store.destroy(session.handle))
      this.#events.emit('destroyed', { session: sessionHandle(session.handle) })
    }
  }

  #needStore(operation: string): void {
    if (this.#sealed !== undefined) {
      throw new SessionConfigError(
        `${operation}() needs a server-side store: stateless sessions live only in their cookies, so the server can neither list nor end them (use CookieStore's validAfter hook to revoke a user's sessions)`,
      )
    }
  }

  // Stateless mode: the session is the cookie, split over `name.0`, `name.1`… when it does not fit in one.
  async #loadSealed(
    sealed: { store: CookieStore; sealer: Sealer },
    request: SessionRequest,
    now: number,
    transport: Transport,
  ): Promise<Session<Data>> {
    const { value, presented } = this.#readChunks(request.cookie, sealed.store.maxCookies)
    if (value === undefined) return this.#fresh(now, transport, presented.length > 0, presented)
    const opened =
      value.length > sealed.store.maxCookies * CHUNK_LENGTH ? undefined : await sealed.sealer.open(value)
    const dot = opened?.plaintext.indexOf('.') ?? -1
    const expiresAt = opened === undefined ? Number.NaN : Number(opened.plaintext.slice(0, dot))
    const payload =
      opened === undefined
        ? undefined
        : parsePayload(opened.plaintext.slice(dot + 1), this.#maxDataBytes * 4, false) // sealed by us
    let reason: RejectionReason | undefined
    if (opened === undefined) reason = 'bad-signature'
    else if (payload === undefined || !Number.isSafeInteger(expiresAt)) reason = 'garbage'
    else if (expiresAt <= now || payload.meta.absoluteExpiresAt <= now) reason = 'expired'
    else if (payload.meta.createdAt > now + sealed.store.maxClockSkew) reason = 'garbage'
    else if (payload.meta.userId !== undefined && sealed.store.validAfter !== undefined) {
      const validAfter = await sealed.store.validAfter(payload.meta.userId)
      if (validAfter !== undefined && (payload.meta.authenticatedAt ?? payload.meta.createdAt) < validAfter)
        reason = 'unknown'
    }
    if (reason !== undefined || opened === undefined || payload === undefined) {
      this.#events.emit('rejected', { reason: reason ?? 'garbage' })
      return this.#fresh(now, transport, true, presented)
    }
    const state = this.#fresh(now, transport, true, presented)
    const fresh = stateOf(state)
    fresh.loaded = { key: '', raw: opened.plaintext.slice(dot + 1), version: 0, expiresAt }
    const data = this.#schema === undefined ? payload.data : await this.#validData(payload.data, 'stateless')
    if (data === undefined) return this.#fresh(now, transport, true, presented)
    fresh.meta = payload.meta
    fresh.loadedMeta = payload.meta
    fresh.data = data
    fresh.dataExposed = data !== payload.data
    fresh.renewCookie = opened.renew
    return state
  }

  // The sealed value from `name`, or from `name.0`, `name.1`… in order; and every chunk name presented.
  #readChunks(
    header: SessionRequest['cookie'],
    maxCookies: number,
  ): { value: string | undefined; presented: string[] } {
    const cookies = parseCookies(header)
    // The names a sealed session may use, built once: `name`, then `name.0` … for the chunks.
    if (this.#chunkNames.length !== maxCookies + 1) {
      this.#chunkNames = [
        this.cookieName,
        ...Array.from({ length: maxCookies }, (_, i) => `${this.cookieName}.${i}`),
      ]
    }
    const names = this.#chunkNames
    const presented = names.filter((name) => cookies.has(name))
    const whole = cookies.get(this.cookieName)
    if (whole !== undefined) return { value: whole.length === 1 ? whole[0] : undefined, presented }
    const parts: string[] = []
    for (let i = 0; i < maxCookies; i++) {
      const part = cookies.get(names[i + 1]!)
      if (part === undefined) break
      if (part.length !== 1) return { value: undefined, presented } // duplicates: fail closed
      parts.push(part[0]!)
    }
    return { value: parts.length === 0 ? undefined : parts.join(''), presented }
  }

  async #commitSealed(
    sealed: { store: CookieStore; sealer: Sealer },
    state: SessionState,
    now: number,
  ): Promise<CommitResult> {
    const text =
      state.loaded !== undefined && this.#unchanged(state)
        ? state.loaded.raw
        : this.#serialize(state.meta, state.data, false)
    const { userId, csrfSecret } = state.meta
    const keep = Object.keys(state.data).length > 0 || userId !== undefined || csrfSecret !== undefined
    const loaded = state.loaded
    const expiresAt = this.#expiryAt(now, state.meta)
    let write: boolean
    if (loaded === undefined) write = keep || this.#saveUninitialized
    else if (text !== loaded.raw || state.renewCookie) write = true
    else {
      const due = state.forceTouch || expiresAt - loaded.expiresAt >= this.#touchInterval
      write = this.#rolling && due && expiresAt > loaded.expiresAt
    }
    const setCookie: string[] = []
    const keepNames = new Set<string>()
    if (write) {
      if (text !== loaded?.raw) {
        this.#refuseTooDeep(state.data)
        this.#refuseTooLarge(text)
      }
      const value = await sealed.sealer.seal(`${expiresAt}.${text}`)
      const chunks = Math.ceil(value.length / CHUNK_LENGTH)
      if (chunks > sealed.store.maxCookies) {
        throw new SessionTooLargeError(
          `the sealed session needs ${chunks} cookies of about 4 KB; CookieStore allows ${sealed.store.maxCookies}: store less, or use a server-side store`,
        )
      }
      const attributes = this.#attributes(state.transport)
      if (this.#cookie.persistent) attributes.maxAge = Math.max(1, Math.ceil((expiresAt - now) / 1000))
      for (let i = 0; i < chunks; i++) {
        const name = chunks === 1 ? this.cookieName : `${this.cookieName}.${i}`
        keepNames.add(name)
        setCookie.push(
          serializeCookie(name, value.slice(i * CHUNK_LENGTH, (i + 1) * CHUNK_LENGTH), attributes),
        )
      }
      if (loaded === undefined) this.#events.emit('created', { session: 'stateless' })
      else this.#events.emit('saved', { session: 'stateless', version: 0 })
    }
    // Clear what the browser holds and this response does not replace: stale chunks, or all after destroy().
    if (write || (state.clearCookie && loaded === undefined)) {
      for (const name of state.presentedChunks) {
        if (!keepNames.has(name)) setCookie.push(this.#clearingCookie(state.transport, name))
      }
    }
    const result: { -readonly [K in keyof CommitResult]: CommitResult[K] } = { setCookie }
    if (this.#cacheControl !== false && (state.accessed || setCookie.length > 0)) {
      result.cacheControl = this.#cacheControl
      result.vary = 'Cookie'
    }
    return result
  }

  // The tokens the request presents through the configured transport, and only through it.
  #candidates(request: SessionRequest): string[] {
    const transport = this.#transportOption
    if (transport.type === 'cookie') {
      // Sized before any HMAC: a signed token is at most 300 characters, so a longer value is not ours.
      return getCookieValues(request.cookie, this.cookieName).filter(
        (value) => value.length <= MAX_TOKEN_LENGTH,
      )
    }
    if (transport.type === 'header') {
      const name = transport.name ?? 'authorization'
      let value = request.header?.(name)?.trim()
      if (value !== undefined && name === 'authorization') {
        value = /^bearer /i.test(value) ? value.slice(7).trim() : undefined
      }
      return value === undefined || value === '' || value.length > MAX_TOKEN_LENGTH ? [] : [value]
    }
    const query = request.url === undefined ? -1 : request.url.indexOf('?')
    if (query === -1 || request.url!.length > 16_384) return []
    const values = new URLSearchParams(request.url!.slice(query + 1)).getAll(transport.name ?? 'sid')
    return values.filter((value) => value !== '' && value.length <= MAX_TOKEN_LENGTH)
  }

  // A live, well-formed record under `key`, or why not. Garbage and expired records are deleted on the way.
  // A store that reads at once (MemoryStore) is answered without a promise: `load` is then one promise deep.
  #read(key: string, now: number): ReadResult | Promise<ReadResult> {
    // Asked on every read: an app or a test may replace `get` on the store at any time.
    const store = this.#store
    if (readsNow(store)) {
      let record: StoreRecord | undefined
      try {
        record = this.#callNow('get', () => store[getNow](key, now))
      } catch (error) {
        return Promise.reject(error)
      }
      return this.#checkRead(key, now, record)
    }
    return this.#call('get', () => this.#store.get(key, now)).then((record) =>
      this.#checkRead(key, now, record),
    )
  }

  #checkRead(
    key: string,
    now: number,
    record: StoreRecord | undefined | null,
  ): ReadResult | Promise<ReadResult> {
    if (record === undefined || record === null) return { reason: 'unknown' }
    const payload = this.#parseRecord(key, record.data)
    let reason: 'expired' | 'garbage' | undefined
    if (
      payload === undefined ||
      !Number.isSafeInteger(record.version) ||
      !Number.isSafeInteger(record.expiresAt) ||
      record.expiresAt > MAX_DATE
    ) {
      reason = 'garbage'
    } else if (payload.meta.keyCheck !== undefined && !key.startsWith(payload.meta.keyCheck)) {
      reason = 'garbage' // written under another key: never someone else's session
    } else if (record.expiresAt <= now || payload.meta.absoluteExpiresAt <= now) {
      reason = 'expired'
    } else {
      return { record, payload }
    }
    // Best effort: the session is dead either way, and a failed cleanup must not fail the request.
    const dead = { reason }
    return this.#call('destroy', () => this.#store.destroy(key)).then(
      () => dead,
      () => dead,
    )
  }

  // parsePayload, skipped when the same text under the same key was parsed or written lately (PARSED_RECORDS).
  #parseRecord(key: string, text: unknown): Payload | undefined {
    const known = this.#parsedRecords.get(key)
    if (known !== undefined && known.text === text) return { meta: known.meta, data: copyOfFlat(known.data) }
    const payload = parsePayload(text, this.#maxDataBytes * 4)
    if (payload !== undefined) this.#rememberParsed(key, text as string, payload.meta, payload.data)
    return payload
  }

  // Keeps what `text` parses to, when its data is flat and its text short; `data` is copied, never kept.
  #rememberParsed(key: string, text: string, meta: SessionMeta, data: Record<string, unknown>): void {
    if (text.length > PARSED_TEXT_LIMIT || text.length > this.#maxDataBytes * 4 || !isFlat(data)) return
    setBounded(this.#parsedRecords, key, { text, meta, data: copyOfFlat(data) }, PARSED_RECORDS)
  }

  #fresh(
    now: number,
    transport: Transport,
    cookiePresented: boolean,
    presentedChunks: string[] = [],
  ): Session<Data> {
    const state: SessionState = {
      validated: undefined,
      presentedChunks,
      id: undefined,
      loaded: undefined,
      meta: { createdAt: now, absoluteExpiresAt: now + this.absoluteTimeout },
      data: {},
      cookiePresented,
      renewCookie: false,
      clearCookie: false,
      forceTouch: false,
      tokenIssued: false,
      accessed: false,
      committed: false,
      transport,
      degraded: false,
      followed: false,
      dataExposed: false,
      loadedMeta: undefined,
    }
    return new Session<Data>(state, this.#controller)
  }

  #serialize(meta: SessionMeta, data: Record<string, unknown>, checkSize = true, key?: string): string {
    let text: string
    try {
      text = serializePayload(meta, data, key)
    } catch (error) {
      throw new SessionDataError('the session data cannot be serialized as JSON (a BigInt or a cycle?)', {
        cause: error,
      })
    }
    if (checkSize) this.#refuseTooLarge(text)
    return text
  }

  #unchanged(state: SessionState): boolean {
    return !state.dataExposed && state.meta === state.loadedMeta
  }

  #refuseTooLarge(text: string): void {
    // Length in UTF-16 units bounds the UTF-8 size from below, and three times it bounds it from above.
    if (text.length * 3 > this.#maxDataBytes && new TextEncoder().encode(text).length > this.#maxDataBytes) {
      throw new SessionTooLargeError(
        `the session data is larger than maxDataBytes (${this.#maxDataBytes} bytes)`,
      )
    }
  }

  // Loading drops data nested deeper than the cap as garbage; storing it would log the user out next request.
  #refuseTooDeep(data: Record<string, unknown>): void {
    if (nestedTooDeep(data)) {
      throw new SessionDataError('the session data is nested more than 64 levels deep; nothing was saved')
    }
  }

  #expiryAt(now: number, meta: SessionMeta): number {
    return Math.min(now + this.idleTimeout, meta.absoluteExpiresAt)
  }

  #cookieFor(id: string, expiresAt: number, now: number, transport: Transport, signed?: string): string {
    const attributes = this.#attributes(transport)
    if (this.#cookie.persistent) attributes.maxAge = Math.max(1, Math.ceil((expiresAt - now) / 1000))
    return serializeCookie(this.cookieName, signed ?? this.#signer.sign(id), attributes)
  }

  #clearingCookie(transport: Transport, name = this.cookieName): string {
    return serializeCookie(name, '', {
      ...this.#attributes(transport),
      maxAge: 0,
      expires: new Date(0),
    })
  }

  #attributes(transport: Transport): CookieAttributes {
    const { secure, sameSite, httpOnly, path, domain, partitioned, priority } = this.#cookie
    const isSecure = secure === 'auto' ? transport.https : secure
    if (isSecure && !transport.https && !isLocalhost(transport.host)) {
      this.#warnOnce(
        'TESSERA_SECURE_COOKIE_OVER_HTTP',
        `the session cookie is Secure but a request for host ${JSON.stringify(transport.host ?? '')} came over plain HTTP, so browsers will drop the cookie and every request will look logged out. If TLS ends at a proxy, set trustProxy: true and have the proxy send X-Forwarded-Proto: https; for HTTP-only development on another host, set cookie.secure: 'auto'.`,
      )
    }
    return {
      path,
      httpOnly,
      sameSite,
      secure: isSecure,
      ...(domain !== undefined && { domain }),
      ...(partitioned !== undefined && { partitioned }),
      ...(priority !== undefined && { priority }),
    }
  }

  #transport(request: SessionRequest): Transport {
    const forwarded = firstValue(request.forwardedProto)?.split(',')[0]?.trim().toLowerCase()
    if (forwarded !== undefined && !this.#trustProxy && forwarded === 'https' && request.encrypted !== true) {
      this.#warnOnce(
        'TESSERA_FORWARDED_PROTO_IGNORED',
        'a request carried X-Forwarded-Proto: https, which is ignored because trustProxy is false. If this server sits behind a TLS-terminating proxy that sets the header, set trustProxy: true.',
      )
    }
    const https = request.encrypted === true || (this.#trustProxy && forwarded === 'https')
    const forwardedFor = this.#trustProxy
      ? firstValue(request.forwardedFor)?.split(',')[0]?.trim()
      : undefined
    return {
      https,
      copyPresented:
        this.#hybrid !== undefined && getCookieValues(request.cookie, this.#hybrid.cookieName).length > 0,
      host: request.host,
      userAgent: request.userAgent?.slice(0, 256),
      ip: (forwardedFor || request.ip)?.slice(0, 64),
    }
  }

  #warnOnce(code: SessionWarning['code'], message: string): void {
    if (this.#warned.has(code)) return
    this.#warned.add(code)
    this.#warn({ code, message: `tessera: ${message}` })
  }

  // A compare-and-set, at once where the store allows it (see #read).
  #update(
    key: string,
    record: StoreRecord,
    expectedVersion: number,
    now: number,
  ): boolean | Promise<boolean> {
    const store = this.#store
    if (updatesNow(store))
      return this.#callNow('update', () => store[updateNow](key, record, expectedVersion, now))
    return this.#call('update', () => store.update(key, record, expectedVersion, now))
  }

  // #call for a store answering at once: no timer (it cannot hang), the same events and errors.
  #callNow<T>(operation: string, run: () => T): T {
    const started = this.#callStarted()
    try {
      const result = run()
      this.#callEnded(operation, started, true)
      return result
    } catch (cause) {
      this.#callEnded(operation, started, false)
      throw this.#storeFailure(operation, cause)
    }
  }

  // Every store failure reaches the caller as a StoreError carrying the driver's error.
  async #call<T>(operation: string, run: () => Promise<T>): Promise<T> {
    const started = this.#callStarted()
    let timer: ReturnType<typeof setTimeout> | undefined
    try {
      // An in-process store cannot hang on a network: spare it a timer and a race. A hung backend must fail
      // the request, not hold it (and its socket) forever.
      const result =
        this.#store.ephemeral === true
          ? await run()
          : await Promise.race([
              run(),
              new Promise<never>((_, reject) => {
                timer = setTimeout(
                  () =>
                    reject(
                      new StoreError(
                        `the session store did not answer ${operation} within ${this.#storeTimeout} ms`,
                      ),
                    ),
                  this.#storeTimeout,
                )
              }),
            ])
      this.#callEnded(operation, started, true)
      return result
    } catch (cause) {
      this.#callEnded(operation, started, false)
      throw this.#storeFailure(operation, cause)
    } finally {
      clearTimeout(timer)
    }
  }

  // When a store call started, for the storeCall event; undefined when nobody listens.
  #callStarted(): number | undefined {
    return this.#events.has('storeCall') ? performance.now() : undefined
  }

  #callEnded(operation: string, started: number | undefined, ok: boolean): void {
    if (started !== undefined)
      this.#events.emit('storeCall', { operation, ms: performance.now() - started, ok })
  }

  // What a failed store call gives the caller: a StoreError carrying the driver's error, reported as an event.
  #storeFailure(operation: string, cause: unknown): StoreError {
    const error =
      cause instanceof StoreError
        ? cause
        : new StoreError(`the session store failed (${operation})`, { cause })
    this.#events.emit('storeError', { operation, error })
    return error
  }

  /**
   * Shuts down gracefully: loads no new sessions (`load()` rejects with `SessionClosedError`, a 503), waits up
   * to `timeout` ms for the sessions already loaded to be committed and for saves in flight to finish, then
   * closes the store. A store closes only what it opened itself, never a client you passed to it; pass
   * `closeStore: false` to keep a store that something else still uses. Idempotent.
   *
   * @example
   * process.once('SIGTERM', () => server.close(() => sessions.close()))
   */
  close(options: { readonly timeout?: number; readonly closeStore?: boolean } = {}): Promise<void> {
    this.#closing ??= this.#shutdown(options.timeout ?? 10_000, options.closeStore ?? true)
    return this.#closing
  }

  async #shutdown(timeout: number, closeStore: boolean): Promise<void> {
    if (this.#active > 0) {
      await new Promise<void>((resolve) => {
        // Bounded: a handler that never commits its session must not hold the shutdown forever.
        const timer = setTimeout(resolve, timeout)
        this.#onIdle = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      this.#onIdle = undefined
    }
    if (closeStore) await this.store.close()
  }

  #release(): void {
    if (this.#active > 0) this.#active--
    if (this.#active === 0) this.#onIdle?.()
  }

  /**
   * Subscribes to an event (`created`, `saved`, `touched`, `regenerated`, `loggedIn`, `renewed`, `destroyed`, `rejected`,
   * `conflict`, `storeError`); returns a function that unsubscribes. Listeners run synchronously and must not
   * throw (an error is reported as a warning and otherwise ignored).
   *
   * @example
   * sessions.on('rejected', ({ reason }) => metrics.increment(`session_rejected_${reason}`))
   */
  on<E extends SessionEventName>(event: E, listener: SessionEventListener<E>): () => void {
    return this.#events.on(event, listener)
  }
}

// Re-applies this request's changes (keys it set or deleted, compared with what it loaded) onto the data
// another writer saved meanwhile; keys this request did not touch keep the other writer's values. A key both
// changed, to different values, is a true conflict: neither change may be dropped silently.
function mergeChanges(
  baseText: string,
  mine: Record<string, unknown>,
  theirs: Record<string, unknown>,
): Record<string, unknown> {
  const base = parsePayload(baseText, Number.POSITIVE_INFINITY)?.data ?? {}
  const merged = { ...theirs }
  for (const key of new Set([...Object.keys(base), ...Object.keys(mine)])) {
    const before = JSON.stringify(base[key])
    const after = JSON.stringify(mine[key])
    if (before === after) continue
    const other = JSON.stringify(theirs[key])
    if (other !== before && other !== after) {
      throw new SessionConflictError(
        `another request changed "${key}" in this session at the same time; this request's change was not saved`,
      )
    }
    if (Object.hasOwn(mine, key)) merged[key] = mine[key]
    else delete merged[key]
  }
  return merged
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function checkProduction(
  store: Store | CookieStore,
  secure: boolean | 'auto',
  transport: SessionTransport,
  allow: NonNullable<SessionManagerOptions['allowInProduction']>,
): void {
  if ('ephemeral' in store && store.ephemeral === true && allow.ephemeralStore !== true) {
    throw new SessionConfigError(
      'in production, sessions in an ephemeral store (MemoryStore) are lost on every restart and not shared between instances: use SqliteStore, PostgresStore or RedisStore, or set allowInProduction.ephemeralStore',
    )
  }
  if (transport.type === 'cookie' && secure === false && allow.insecureCookie !== true) {
    throw new SessionConfigError(
      "in production, cookie.secure: false sends session cookies over plain HTTP: use true (or 'auto' behind a proxy with trustProxy), or set allowInProduction.insecureCookie",
    )
  }
  if (transport.type === 'query' && allow.urlTransport !== true) {
    throw new SessionConfigError(
      'in production, the URL transport needs allowInProduction.urlTransport: tokens in URLs leak',
    )
  }
}

function headerName(transport: SessionTransport): string {
  return transport.type === 'header' ? (transport.name ?? 'authorization') : 'cookie'
}

function validateTransport(transport: SessionTransport): SessionTransport {
  const valid =
    transport !== null &&
    typeof transport === 'object' &&
    ['cookie', 'header', 'query'].includes(transport.type) &&
    (transport.type === 'cookie' ||
      transport.name === undefined ||
      /^[a-z0-9!#$%&'*+.^_`|~-]{1,64}$/.test(transport.name))
  if (!valid) {
    throw new SessionConfigError(
      "transport must be { type: 'cookie' }, { type: 'header', name?: lower-case header name } or { type: 'query', name?: parameter }",
    )
  }
  if (transport.type === 'header' && transport.name === 'cookie') {
    throw new SessionConfigError("the header transport cannot read the Cookie header; use { type: 'cookie' }")
  }
  return transport
}

function validateCookie(name: string, cookie: SessionCookieOptions): void {
  const fail = (message: string): never => {
    throw new SessionConfigError(`cookie: ${message}`)
  }
  if (!isValidCookieName(name))
    fail(`name ${JSON.stringify(name)} is not a valid cookie name (RFC 6265bis token)`)
  if (cookie.secure !== true && cookie.secure !== false && cookie.secure !== 'auto')
    fail("secure must be true, false or 'auto'")
  if (!['Strict', 'Lax', 'None'].includes(cookie.sameSite ?? ''))
    fail("sameSite must be 'Strict', 'Lax' or 'None'")
  if (name.startsWith('__Host-')) {
    if (cookie.secure !== true)
      fail('a __Host- cookie must be Secure: set secure: true, or pick a name without the prefix')
    if (cookie.domain !== undefined)
      fail('a __Host- cookie cannot have a Domain: remove domain, or pick a name without the prefix')
    if (cookie.path !== '/')
      fail("a __Host- cookie must have Path=/: set path: '/', or pick a name without the prefix")
  }
  if (name.startsWith('__Secure-') && cookie.secure !== true)
    fail('a __Secure- cookie must be Secure: set secure: true')
  if (cookie.sameSite === 'None' && cookie.secure !== true) {
    fail(
      "SameSite=None requires Secure (browsers reject it otherwise): set secure: true, or use sameSite: 'Lax'",
    )
  }
  if (cookie.partitioned === true && cookie.secure !== true)
    fail('a Partitioned cookie must be Secure: set secure: true')
  try {
    serializeCookie(name, 'x', {
      ...(cookie as CookieAttributes),
      secure: cookie.secure === true,
      maxAge: 60,
    })
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error))
  }
}

function duration(name: string, value: number | undefined, fallback: number): number {
  const result = value ?? fallback
  if (!Number.isSafeInteger(result) || result <= 0 || result > MAX_TIMEOUT) {
    throw new SessionConfigError(
      `${name} must be a whole number of milliseconds between 1 and ${MAX_TIMEOUT} (400 days); sessions that never expire are not offered`,
    )
  }
  return result
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  const result = value ?? fallback
  if (!Number.isSafeInteger(result) || result <= 0)
    throw new SessionConfigError(`${name} must be a positive whole number`)
  return result
}

// Stateless mode has no store; reaching one of these is a bug in the manager, never a user's doing.
const NO_STORE: Store = new Proxy({} as Store, {
  get: (_target, property) =>
    property === 'ephemeral'
      ? false
      : () => Promise.reject(new Error(`no server-side store: ${String(property)}`)),
})

function isStore(value: unknown): value is Store {
  if (typeof value !== 'object' || value === null) return false
  const store = value as Record<string, unknown>
  return ['get', 'create', 'update', 'touch', 'destroy'].every(
    (method) => typeof store[method] === 'function',
  )
}

function firstValue(value: string | readonly string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : value?.[0]
}

function isLocalhost(host: string | undefined): boolean {
  if (host === undefined) return false
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '')
  return name === 'localhost' || name.endsWith('.localhost') || name === '[::1]' || name.startsWith('127.')
}

function emitWarning(warning: SessionWarning): void {
  if (typeof process !== 'undefined' && typeof process.emitWarning === 'function') {
    process.emitWarning(warning.message, { code: warning.code })
  } else {
    console.warn(warning.message)
  }
}

// True when every value of `data` reads back from JSON as it is (a string, a boolean, null or a finite number
// other than -0) under a key JSON parsing keeps: a copy of its values is then a copy of the data.
function isFlat(data: Record<string, unknown>): boolean {
  for (const key in data) {
    const value = data[key]
    if (FORBIDDEN_KEYS.has(key)) return false
    if (typeof value === 'string' || typeof value === 'boolean' || value === null) continue
    if (typeof value !== 'number' || !Number.isFinite(value) || Object.is(value, -0)) return false
  }
  return true
}

// A property-by-property copy: no object spread on this path (a spread here measured slower than the parse).
function copyOfFlat(data: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const copy: Record<string, unknown> = {}
  for (const key in data) copy[key] = data[key]
  return copy
}
