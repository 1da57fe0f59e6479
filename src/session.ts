/**
 * The session a request sees: typed data, plus the lifecycle calls (regenerate, destroy) that the manager
 * turns into store operations and cookies when the response is committed.
 *
 * @module
 */
import { SessionCommittedError, SessionDataError } from './errors.js'
import { hmacSha256, randomToken, safeEqual } from './internal/crypto.js'
import { FORBIDDEN_KEYS, type SessionMeta } from './payload.js'

/** The record a session was loaded from, as the manager needs it for a conditional write. */
export interface LoadedRecord {
  readonly key: string
  /** The stored payload text, byte for byte: the baseline for change detection and conflict merges. */
  readonly raw: string
  readonly version: number
  readonly expiresAt: number
}

/** Request facts the manager needs: cookie attributes depend on the transport; login records the client. */
export interface Transport {
  /** True when the request reached us over TLS, or through a trusted proxy that says it did. */
  readonly https: boolean
  /** Hybrid mode: the request carried the sealed copy, so ending the session must clear it. */
  readonly copyPresented: boolean
  readonly host: string | undefined
  readonly userAgent: string | undefined
  readonly ip: string | undefined
}

/** Mutable state shared between a {@link Session} and its manager. Not part of the public API. */
export interface SessionState {
  /** Raw ID: known for loaded sessions, generated lazily for new ones when first persisted. */
  id: string | undefined
  loaded: LoadedRecord | undefined
  meta: SessionMeta
  data: Record<string, unknown>
  /** A session cookie was presented, so clearing it means something to the browser. */
  cookiePresented: boolean
  /** The presented token, when the newest secret signed it: re-sent as is when only Max-Age changes. */
  signedValue?: string | undefined
  /** The presented cookie verified under an older secret: re-issue it under the newest one. */
  renewCookie: boolean
  /** The cookie must be cleared unless a new session is persisted in this response (after destroy/regenerate). */
  clearCookie: boolean
  /** Force an expiry refresh on commit, whatever the touch interval says. */
  forceTouch: boolean
  /** Hybrid mode: the record as last confirmed against the store in this request, to seal into the copy. */
  validated: LoadedRecord | undefined
  /** Stateless mode: the session cookies (`name`, `name.0`…) the request carried, to clear stale ones. */
  readonly presentedChunks: readonly string[]
  /** The app asked for this new session's token, so it must be stored even if empty. */
  tokenIssued: boolean
  /** The handler read the session, so the response depends on it and must not be cached for others. */
  accessed: boolean
  committed: boolean
  readonly transport: Transport
  /** `failOpen`: the store failed at load, so this empty session may be read but never written. */
  degraded: boolean
  /**
   * Loaded through an ID that `renewal` has replaced (a request in flight during the grace window): reads and
   * writes go to the renewed record, and the response never hands the old ID back.
   */
  followed: boolean
  /**
   * The data may differ from what was loaded: something was written, or an object was handed out by get()
   * (it may be changed in place). Until then a commit need not serialize the data to find out.
   */
  dataExposed: boolean
  /** The metadata as loaded; state.meta is replaced, never changed in place, so identity means unchanged. */
  loadedMeta: SessionMeta | undefined
}

/** What a session needs from its manager to act on the store right away. */
export interface SessionController {
  regenerate(state: SessionState): Promise<void>
  destroy(state: SessionState): Promise<void>
  login(state: SessionState, userId: string): Promise<void>
  now(): number
  token(state: SessionState): string
}

// Set by Session's static block, which alone can read the private field: a field rather than a WeakMap entry
// per session, which costs every request an insertion and the garbage collector an ephemeron.
let stateOfSession: (session: object) => SessionState

/** The manager's view of a session's state. Internal. */
export function stateOf(session: object): SessionState {
  return stateOfSession(session)
}

/**
 * A user's session. Data is typed by `Data`; every value must survive JSON (strings, numbers, booleans,
 * null, arrays and plain objects).
 *
 * Changes are detected by comparing the serialized data with what was loaded, so in-place changes to an
 * object you got from `get()` are saved too, and nothing is written when nothing changed.
 *
 * @example
 * const cart = session.get('cart') ?? []
 * session.set('cart', [...cart, item])
 */
export class Session<Data extends object = Record<string, unknown>> {
  readonly #state: SessionState
  readonly #controller: SessionController

  static {
    stateOfSession = (session) => {
      if (!(#state in session)) throw new TypeError('not a tessera session')
      return session.#state
    }
  }

  /** @internal Sessions are made by a {@link SessionManager}; see `manager.load()`. */
  constructor(state: SessionState, controller: SessionController) {
    this.#state = state
    this.#controller = controller
  }

  /** True when no stored session was found for this request (first visit, expired, destroyed or forged). */
  get isNew(): boolean {
    return this.#read().loaded === undefined
  }

  /**
   * True when the store was down at load and `failOpen` served this request an empty, read-only session.
   * Show a "sessions are briefly unavailable" notice rather than a logged-out page.
   */
  get degraded(): boolean {
    return this.#read().degraded
  }

  /** When the session was first created. */
  get createdAt(): Date {
    return new Date(this.#read().meta.createdAt)
  }

  /** The absolute deadline: the session ends then however active it is. */
  get absoluteExpiresAt(): Date {
    return new Date(this.#read().meta.absoluteExpiresAt)
  }

  /** The user bound by {@link login}, or undefined for an anonymous session. */
  get userId(): string | undefined {
    return this.#read().meta.userId
  }

  /** When the user last logged in on this session, or undefined. */
  get authenticatedAt(): Date | undefined {
    const at = this.#read().meta.authenticatedAt
    return at === undefined ? undefined : new Date(at)
  }

  /**
   * True when the user logged in on this session within the last `ms` milliseconds: gate sensitive actions
   * (changing a password, paying) on a recent login, and ask for the password again otherwise.
   *
   * @example
   * if (!session.authenticatedWithin(15 * 60_000)) return res.redirect('/reauthenticate')
   */
  authenticatedWithin(ms: number): boolean {
    const at = this.#read().meta.authenticatedAt
    return at !== undefined && this.#controller.now() - at <= ms
  }

  /** The value under `key`, or undefined. */
  get<K extends keyof Data & string>(key: K): Data[K] | undefined {
    const state = this.#read()
    if (!Object.hasOwn(state.data, key)) return undefined
    const value = state.data[key]
    if (typeof value === 'object' && value !== null) state.dataExposed = true
    return value as Data[K]
  }

  /** True when `key` holds a value. */
  has(key: keyof Data & string): boolean {
    return Object.hasOwn(this.#read().data, key)
  }

  /**
   * Reads `key` and deletes it: a value shown once, such as a flash message set before a redirect.
   *
   * @example
   * session.set('notice', 'Welcome back!') // in POST /login
   * const notice = session.take('notice')  // in GET /profile: shown once, then gone
   */
  take<K extends keyof Data & string>(key: K): Data[K] | undefined {
    const value = this.get(key)
    if (value !== undefined) this.delete(key)
    return value
  }

  /**
   * Stores `value` under `key`. Setting `undefined` deletes the key, as JSON would.
   *
   * @throws {SessionDataError} for a reserved key or a value JSON cannot hold (function, symbol, BigInt).
   * @throws {SessionCommittedError} after the response was committed.
   */
  set<K extends keyof Data & string>(key: K, value: Data[K]): this {
    const state = this.#writable()
    if (FORBIDDEN_KEYS.has(key)) throw new SessionDataError(`"${key}" cannot be used as a session key`)
    if (value === undefined) {
      delete state.data[key]
      return this
    }
    const kind = typeof value
    if (kind === 'function' || kind === 'symbol' || kind === 'bigint') {
      throw new SessionDataError(`session.set("${key}") got a ${kind}, which JSON cannot store`)
    }
    state.data[key] = value
    return this
  }

  /** Removes `key`. */
  delete(key: keyof Data & string): this {
    delete this.#writable().data[key]
    return this
  }

  /** Removes every key. The session itself, and its ID, live on; use {@link destroy} to end it. */
  clear(): this {
    this.#writable().data = {}
    return this
  }

  /** The keys that hold values. */
  keys(): (keyof Data & string)[] {
    return Object.keys(this.#read().data) as (keyof Data & string)[]
  }

  /**
   * Issues a new session ID, keeps the data, and deletes the record under the old ID now, so the old ID is
   * dead before the response goes out. Call it whenever privilege changes (log in, log out, sudo) to defeat
   * session fixation.
   *
   * @throws {StoreError} when the old record cannot be deleted.
   */
  async regenerate(): Promise<void> {
    await this.#controller.regenerate(this.#writable())
  }

  /**
   * Logs `userId` in on this session: {@link regenerate} (a new ID, so a planted pre-login ID is worthless),
   * then binds the user for the per-user index (`manager.listSessions`, `manager.revokeSessions`), records
   * the login time and the client's user agent and IP, and starts a new absolute deadline (re-authentication
   * restarts both timeouts, NIST SP 800-63B §5.2). The data is kept.
   *
   * @throws {StoreError} when the old record cannot be deleted.
   */
  async login(userId: string): Promise<void> {
    if (typeof userId !== 'string' || userId.length === 0 || userId.length > 256) {
      throw new SessionDataError('login() needs a user ID of 1 to 256 characters')
    }
    await this.#controller.login(this.#writable(), userId)
  }

  /**
   * Deletes the session from the store now and clears its cookie in this response. The object stays usable
   * as a fresh, empty session: writing to it afterwards starts a new session with a new ID.
   *
   * @throws {StoreError} when the record cannot be deleted.
   */
  async destroy(): Promise<void> {
    await this.#controller.destroy(this.#writable())
  }

  /**
   * A token to put in every form (`<input type="hidden" name="_csrf">`) or `X-CSRF-Token` header of a
   * state-changing request, checked by {@link verifyCsrfToken} or the adapters' CSRF middleware. Each call
   * gives a different string (a fresh random mask, against BREACH-style compression attacks); all of them
   * stay valid until the session's ID changes (`regenerate()`, `login()`, `destroy()`).
   *
   * The first call on a new session stores it, so an anonymous login form is protected too.
   */
  csrfToken(): string {
    const state = this.#writable()
    let secret = state.meta.csrfSecret
    if (secret === undefined) {
      secret = randomToken(32)
      state.meta = { ...state.meta, csrfSecret: secret }
    }
    const nonce = randomToken(16)
    return `${nonce}.${hmacSha256(new TextEncoder().encode(secret), `csrf:${nonce}`)}`
  }

  /** True when `token` came from {@link csrfToken} on this session (under its current ID). Constant-time. */
  verifyCsrfToken(token: unknown): boolean {
    const secret = this.#state.meta.csrfSecret
    if (secret === undefined || typeof token !== 'string' || token.length !== 66) return false
    const [nonce, mac] = token.split('.')
    if (nonce === undefined || mac === undefined || nonce.length !== 22) return false
    return safeEqual(hmacSha256(new TextEncoder().encode(secret), `csrf:${nonce}`), mac)
  }

  /**
   * This session's signed token, for the header and query transports: return it from your login endpoint,
   * or put it in the links you render. A new session is given its ID now, and is stored at commit.
   */
  token(): string {
    return this.#controller.token(this.#writable())
  }

  /** Refreshes the idle deadline in this response even if the touch interval has not passed. */
  touch(): this {
    this.#writable().forceTouch = true
    return this
  }

  #read(): SessionState {
    const state = this.#state
    state.accessed = true
    return state
  }

  #writable(): SessionState {
    const state = this.#state
    if (state.committed) {
      throw new SessionCommittedError(
        'the session was already committed with its response; changes would be lost',
      )
    }
    state.accessed = true
    state.dataExposed = true
    return state
  }
}
