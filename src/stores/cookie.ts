/**
 * Stateless sessions: the whole session sealed (AES-256-GCM) into the cookie itself, with no server-side
 * store: the choice for serverless and edge deployments, and what Flask and iron-session do by default.
 * Give it to `createSessionManager` as the `store`; the Session API stays the same.
 *
 * What a stateless session cannot do, by its nature: end one session on the server before it expires (a
 * copied cookie keeps working until its sealed deadline), list a user's devices, or hold more than a few
 * kilobytes. `destroy()` only clears the browser's copy. The `validAfter` hook gives revocation per user:
 * every session of that user sealed before the time it returns is refused.
 *
 * Subpath: `tessera/cookie`.
 *
 * @module
 */
import { SessionConfigError } from '../errors.js'

/** Options of {@link CookieStore}. */
export interface CookieStoreOptions {
  /**
   * Most cookies one session may span. Data over one cookie's ~4 KB is split into `name.0`, `name.1`…;
   * past this many, saving fails with `SessionTooLargeError` before any header goes out.
   * @default 4
   */
  maxCookies?: number
  /** Sign instead of encrypt: the client can READ the session (tamper-proof only). Never for secrets. @default false */
  signedOnly?: boolean
  /**
   * Revocation for a user: return an epoch-ms time, and that user's sessions logged in (or created) before
   * it are refused. Resolve undefined for "no restriction". Runs on every request of a logged-in session.
   *
   * @example
   * validAfter: async (userId) => (await db.user(userId)).sessionsValidAfter // set on "log out everywhere"
   */
  validAfter?: (userId: string) => number | undefined | Promise<number | undefined>
  /** Clock skew tolerated for a session sealed "in the future" by another server. @default 60_000 */
  maxClockSkew?: number
}

/** Marks the manager's storage as the cookie itself. */
export class CookieStore {
  readonly kind = 'cookie' as const
  readonly maxCookies: number
  readonly signedOnly: boolean
  readonly validAfter: CookieStoreOptions['validAfter']
  readonly maxClockSkew: number

  constructor(options: CookieStoreOptions = {}) {
    this.maxCookies = options.maxCookies ?? 4
    if (!Number.isSafeInteger(this.maxCookies) || this.maxCookies < 1 || this.maxCookies > 20) {
      throw new SessionConfigError('CookieStore: maxCookies must be a whole number from 1 to 20')
    }
    this.signedOnly = options.signedOnly ?? false
    this.validAfter = options.validAfter
    this.maxClockSkew = options.maxClockSkew ?? 60_000
  }

  /** Nothing to release; present so the store can be closed like any other. */
  async close(): Promise<void> {}
}

/** True when `store` is a {@link CookieStore}. */
export function isCookieStore(store: unknown): store is CookieStore {
  return typeof store === 'object' && store !== null && (store as { kind?: unknown }).kind === 'cookie'
}
