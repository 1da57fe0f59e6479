// A client that keeps cookies the way a browser does (tough-cookie), for HTTP tests against real servers.
import { CookieJar } from 'tough-cookie'

export class Browser {
  readonly jar = new CookieJar()
  readonly origin: string

  constructor(origin: string) {
    this.origin = origin
  }

  /** Sends a request with the jar's cookies, stores the response's cookies, and does not follow redirects. */
  async fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const url = new URL(path, this.origin).toString()
    const headers = new Headers(init.headers)
    const cookie = await this.jar.getCookieString(url)
    if (cookie !== '') headers.set('cookie', cookie)
    const response = await fetch(url, { ...init, headers, redirect: 'manual' })
    for (const header of response.headers.getSetCookie()) await this.jar.setCookie(header, url)
    return response
  }

  /** Submits a form the way a browser posts `application/x-www-form-urlencoded`. */
  post(path: string, form: Record<string, string> = {}): Promise<Response> {
    return this.fetch(path, { method: 'POST', body: new URLSearchParams(form) })
  }

  /** The value of a cookie in the jar, or undefined. */
  async cookie(name: string): Promise<string | undefined> {
    const cookies = await this.jar.getCookies(this.origin)
    return cookies.find((cookie) => cookie.key === name)?.value
  }

  /** Puts a cookie in the jar by hand, as an attacker or a stale browser would hold it. */
  async setCookie(name: string, value: string): Promise<void> {
    await this.jar.setCookie(`${name}=${value}; Path=/; Secure`, this.origin)
  }
}
