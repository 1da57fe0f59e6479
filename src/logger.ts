/**
 * The logger hook: hand the manager a pino logger (or anything with its `(object, message)` call shape) and
 * it logs the session lifecycle. Sessions appear only as handles (a prefix of the store key, itself a SHA-256
 * of the ID); no log line ever holds a session ID, a cookie value or a secret.
 *
 * @module
 */
import type { SessionEventEmitter, SessionEventName, SessionEvents } from './events.js'

type LogMethod = (object: Record<string, unknown>, message: string) => void

/**
 * pino's call shape: `logger.info({ session }, 'session created')`. A pino or bunyan logger fits as is; so
 * does `console` (it prints the object, then the message). `debug` is optional: without it, routine events
 * (created, saved, touched) are not logged.
 */
export interface SessionLogger {
  debug?: LogMethod
  info: LogMethod
  warn: LogMethod
  error: LogMethod
}

type Level = 'debug' | 'info' | 'warn' | 'error'

// What each event means to an operator: routine traffic is debug, the security-relevant lifecycle is info,
// what may be an attack is warn, and a failing backend is error.
const LEVELS: { readonly [E in Exclude<SessionEventName, 'storeCall'>]: Level } = {
  created: 'debug',
  saved: 'debug',
  touched: 'debug',
  conflict: 'debug',
  regenerated: 'info',
  loggedIn: 'info',
  renewed: 'info',
  destroyed: 'info',
  revoked: 'info',
  rejected: 'info',
  hijackSuspected: 'warn',
  storeError: 'error',
}

const MESSAGES: { readonly [E in keyof typeof LEVELS]: string } = {
  created: 'session created',
  saved: 'session saved',
  touched: 'session expiry extended',
  conflict: 'session write conflicted with another request; retrying',
  regenerated: 'session ID regenerated',
  loggedIn: 'session logged in',
  renewed: 'session ID renewed',
  destroyed: 'session destroyed',
  revoked: 'session revoked',
  rejected: 'session cookie rejected',
  hijackSuspected: 'session client changed since login',
  storeError: 'session store call failed',
}

// Rejections that point at tampering rather than at an old or foreign cookie.
const SUSPICIOUS = new Set(['bad-signature', 'duplicate', 'garbage'])

/** Subscribes `logger` to every event of `events`. A throwing logger never fails a request. */
export function attachLogger(events: SessionEventEmitter, logger: SessionLogger): void {
  for (const event of Object.keys(LEVELS) as (keyof typeof LEVELS)[]) {
    events.on(event, (payload: SessionEvents[typeof event]) => {
      let level = LEVELS[event]
      if (event === 'rejected' && SUSPICIOUS.has((payload as SessionEvents['rejected']).reason))
        level = 'warn'
      const log = logger[level]
      if (log === undefined) return
      const object: Record<string, unknown> = { event, ...payload }
      if (event === 'storeError') {
        const { error } = payload as SessionEvents['storeError']
        delete object.error
        object.err = error // pino serializes `err` with its stack and cause
      }
      try {
        log.call(logger, object, MESSAGES[event])
      } catch {
        // Logging is best effort: a broken transport must not turn into failed requests.
      }
    })
  }
}
