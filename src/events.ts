/**
 * What a manager reports about the sessions it handles, for audit logs, metrics and intrusion detection.
 * Sessions are named by `session`: the first 16 hex characters of the store key (SHA-256 of the ID), which
 * identifies a session in logs without being usable as a cookie. Raw IDs and secrets never appear.
 *
 * @module
 */

/** Why a presented cookie did not load a session. */
export type RejectionReason =
  /** Not of the `id.signature` shape: noise, a cookie from another app, or a probe. */
  | 'malformed'
  /** The right shape, but no current secret signed it: forged, tampered, or signed with a retired secret. */
  | 'bad-signature'
  /** Validly signed, but the store has no such live session: destroyed, regenerated, or expired. */
  | 'unknown'
  /** The store returned a session past its idle or absolute deadline (stores normally hide those: `unknown`). */
  | 'expired'
  /** The store returned something that is not a session of ours. */
  | 'garbage'
  /** Two different live sessions arrived in one request (cookie tossing): neither is used. */
  | 'duplicate'
  /** The session's data failed the manager's `schema` and no `migrate` repaired it. */
  | 'invalid'

/** Every event, by name, with its payload. */
export interface SessionEvents {
  created: { session: string }
  saved: { session: string; version: number }
  touched: { session: string; expiresAt: number }
  regenerated: { session: string | undefined }
  loggedIn: { session: string | undefined; userId: string }
  /** The session's ID was replaced by `renewal`; the old one follows to `successor` for the grace window. */
  renewed: { session: string; successor: string }
  destroyed: { session: string | undefined }
  /** Ended by `revokeSessions()` or `revokeSession()` ("log out everywhere"), one event per session. */
  revoked: { session: string; userId: string }
  rejected: { reason: RejectionReason; session?: string | undefined }
  conflict: { session: string; attempt: number }
  hijackSuspected: { session: string; changed: readonly ('userAgent' | 'ip')[]; verdict: 'allow' | 'reject' }
  storeError: { operation: string; error: unknown }
  /** Every store call, timed: only measured while someone listens. */
  storeCall: { operation: string; ms: number; ok: boolean }
}

export type SessionEventName = keyof SessionEvents
export type SessionEventListener<E extends SessionEventName> = (event: SessionEvents[E]) => void

/** A minimal typed emitter: the core stays free of node:events so it runs on any runtime. */
export class SessionEventEmitter {
  readonly #listeners = new Map<SessionEventName, Set<(event: never) => void>>()
  readonly #onListenerError: (error: unknown) => void

  constructor(onListenerError: (error: unknown) => void) {
    this.#onListenerError = onListenerError
  }

  /** Calls `listener` for every `event`; returns a function that unsubscribes it. */
  on<E extends SessionEventName>(event: E, listener: SessionEventListener<E>): () => void {
    const listeners = this.#listeners.get(event) ?? new Set()
    listeners.add(listener as (event: never) => void)
    this.#listeners.set(event, listeners)
    return () => {
      listeners.delete(listener as (event: never) => void)
    }
  }

  /** True when someone listens, so callers can skip building a payload nobody reads. */
  has(event: SessionEventName): boolean {
    return (this.#listeners.get(event)?.size ?? 0) > 0
  }

  emit<E extends SessionEventName>(event: E, payload: SessionEvents[E]): void {
    const listeners = this.#listeners.get(event)
    if (listeners === undefined) return
    for (const listener of listeners) {
      // A failing listener must not fail the request that triggered it.
      try {
        ;(listener as SessionEventListener<E>)(payload)
      } catch (error) {
        this.#onListenerError(error)
      }
    }
  }
}

/** The name events and logs use for a session: a prefix of its store key, never its ID. */
export function sessionHandle(key: string): string {
  return key.slice(0, 16)
}
