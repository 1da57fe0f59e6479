/**
 * tessera: HTTP sessions for Node.js. Signed cookies carrying a 256-bit random ID, stores keyed by the ID's
 * SHA-256, idle and absolute expiry, lazy writes and conflict-safe saves.
 *
 * Stores and adapters live behind their own subpaths: `tessera/memory`, `tessera/sqlite`, `tessera/file`,
 * `tessera/postgres`, `tessera/redis`, `tessera/cookie`, `tessera/node`, `tessera/express`, and the store
 * contract suite in `tessera/testing`. `openStore(url)` opens any of the stores from one string.
 *
 * @module
 */
export { type BindingMismatch, type BindingOptions, networkPrefix, userAgentFamily } from './binding.js'
export { CSRF_FIELD, CSRF_HEADER, type CsrfOptions, type CsrfRequest, checkCsrf } from './csrf.js'
export {
  type AnySessionError,
  CsrfError,
  isSessionError,
  SessionClosedError,
  SessionCommittedError,
  SessionConfigError,
  SessionConflictError,
  SessionDataError,
  SessionDestroyedError,
  SessionError,
  type SessionErrorCode,
  SessionLimitError,
  SessionTooLargeError,
  StoreError,
} from './errors.js'
export type {
  RejectionReason,
  SessionEventListener,
  SessionEventName,
  SessionEvents,
} from './events.js'
export { generateSessionId } from './id.js'
export type { SessionLogger } from './logger.js'
export {
  type CommitResult,
  createSessionManager,
  type SessionCookieOptions,
  SessionManager,
  type SessionManagerOptions,
  type SessionRequest,
  type SessionTransport,
  type SessionWarning,
  type UserSessionInfo,
} from './manager.js'
export { createMetrics, type SessionMetrics } from './metrics.js'
export type { SessionMigration, StandardIssue, StandardResult, StandardSchemaV1 } from './schema.js'
export { Session } from './session.js'
export type { Secret } from './signer.js'
export type { CleanupOptions, KeyedStoreRecord, Store, StoreRecord, StoreStats } from './store.js'
export { type OpenStoreOptions, openStore, STORE_SCHEMES } from './store-url.js'

/**
 * Declare your session data once for the framework adapters (`req.session` in Express):
 *
 * @example
 * declare module 'tessera' {
 *   interface Register { data: { userId?: string } }
 * }
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled in by the application through declaration merging
export interface Register {}

/** The session data type the application registered, or a plain record when it registered none. */
export type RegisteredData = Register extends { data: infer Data extends object }
  ? Data
  : Record<string, unknown>
