/**
 * Cross-site request forgery checks shared by every adapter: a synchronizer token bound to the session, and
 * the browser's own `Origin` and `Sec-Fetch-Site` headers as a second layer. SameSite=Lax cookies already
 * stop most cross-site posts; these close the rest (same-site subdomains, older browsers, GET-to-POST
 * method overrides) and protect the login form itself.
 *
 * @module
 */
import { CsrfError } from './errors.js'
import type { Session } from './session.js'

/** The form field and the header the adapters read the token from. */
export const CSRF_FIELD = '_csrf'
export const CSRF_HEADER = 'x-csrf-token'

const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE'])

/** What {@link checkCsrf} needs to know about a request. */
export interface CsrfRequest {
  readonly method: string
  /** The token from the form field or the header. */
  readonly token: unknown
  readonly origin?: string | undefined
  readonly secFetchSite?: string | undefined
  /** The `Host` header, to recognise a same-origin `Origin`. */
  readonly host?: string | undefined
}

/** Options of {@link checkCsrf}. */
export interface CsrfOptions {
  /** Other origins allowed to post here (e.g. `https://admin.example.com`). */
  readonly trustedOrigins?: readonly string[]
}

/**
 * Checks a request: safe methods (GET, HEAD, OPTIONS, TRACE) always pass; any other needs a token made by
 * `session.csrfToken()` and must not come from another site according to the browser.
 *
 * @returns undefined when the request may proceed, otherwise the {@link CsrfError} to fail it with.
 */
export function checkCsrf(
  session: Session<object>,
  request: CsrfRequest,
  options: CsrfOptions = {},
): CsrfError | undefined {
  if (SAFE_METHODS.has(request.method.toUpperCase())) return undefined
  if (request.secFetchSite?.toLowerCase() === 'cross-site') {
    return new CsrfError(
      'cross-site',
      'the browser reports this request came from another site (Sec-Fetch-Site: cross-site)',
    )
  }
  if (
    request.origin !== undefined &&
    !sameOrigin(request.origin, request.host, options.trustedOrigins ?? [])
  ) {
    return new CsrfError('cross-site', 'the Origin of this request is neither this site nor a trusted origin')
  }
  if (typeof request.token !== 'string' || request.token === '') {
    return new CsrfError('missing-token', `a ${CSRF_FIELD} form field or ${CSRF_HEADER} header is required`)
  }
  if (!session.verifyCsrfToken(request.token)) {
    return new CsrfError(
      'invalid-token',
      'the CSRF token was not issued for this session (expired, or from before a login)',
    )
  }
  return undefined
}

function sameOrigin(origin: string, host: string | undefined, trusted: readonly string[]): boolean {
  if (origin === 'null') return false // sandboxed iframes, file: pages, some redirects: never trusted
  if (trusted.includes(origin)) return true
  try {
    return host !== undefined && new URL(origin).host === host.toLowerCase()
  } catch {
    return false
  }
}
