// The demo's HTML: small server-rendered pages, one stylesheet (demo/public/style.css), no client script.
import type { Session, UserSessionInfo } from 'tessera'
import { userAgentFamily } from 'tessera'
import type { DemoData } from './app.js'

/** What the "what the server sees" panel shows about the cookie and the store; never the ID or the secret. */
export interface ServerView {
  readonly cookieName: string
  readonly httpOnly: boolean
  readonly secure: boolean | 'auto'
  readonly sameSite: string
  readonly persistent: boolean
  readonly idleTimeout: number
  readonly absoluteTimeout: number
  /** The store's class, e.g. MemoryStore. */
  readonly storeKind: string
  /** The --store URL with any password hidden, when known. */
  readonly storeLabel: string | undefined
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`)
}

export function csrfField(session: Session<DemoData>): string {
  return `<input type="hidden" name="_csrf" value="${session.csrfToken()}">`
}

export function loginForm(session: Session<DemoData>, error = false): string {
  return `<section class="card" aria-labelledby="login-title">
  <h1 id="login-title">Log in</h1>
  ${error ? '<p class="error" role="alert">Wrong username or password.</p>' : ''}
  <form method="post" action="/login">
  ${csrfField(session)}
  <label for="username">Username</label><input name="username" id="username" autocomplete="username" required>
  <label for="password">Password</label><input name="password" type="password" id="password" autocomplete="current-password" required>
  <button type="submit">Log in</button>
  </form>
  <p class="hint">Try <code>rasmus</code> / <code>default</code>. Open a second browser (or a private window) and log in there too, then look at <a href="/sessions">your sessions</a>.</p>
</section>`
}

export function logoutForm(session: Session<DemoData>): string {
  return `<form method="post" action="/logout" class="inline">${csrfField(session)}<button type="submit" class="secondary">Log out</button></form>`
}

export function flash(notice: string | undefined): string {
  return notice === undefined ? '' : `<p class="notice" role="status">${escapeHtml(notice)}</p>`
}

export function profileBody(session: Session<DemoData>, user: string, notice: string | undefined): string {
  const count = session.get('counter') ?? 0
  return `${flash(notice)}<section class="card" aria-labelledby="profile-title">
  <h1 id="profile-title">Welcome, ${escapeHtml(user)}!</h1>
  <p>This page is only for logged-in users. The session keeps you logged in across requests and reloads.</p>
</section>
<section class="card" aria-labelledby="counter-title">
  <h2 id="counter-title">A counter kept in the session</h2>
  <p class="counter"><output id="counter" aria-live="polite">${count}</output> <span>click${count === 1 ? '' : 's'}</span></p>
  <form method="post" action="/counter" class="inline">${csrfField(session)}<input type="hidden" name="action" value="increment"><button type="submit">Add one</button></form>
  <form method="post" action="/counter" class="inline">${csrfField(session)}<input type="hidden" name="action" value="reset"><button type="submit" class="secondary">Reset</button></form>
  <p class="hint">Each click changes the session's data, so tessera writes it back to the store; a page that only reads it costs no write.</p>
</section>`
}

export function sessionsTable(session: Session<DemoData>, sessions: readonly UserSessionInfo[]): string {
  const rows = sessions
    .map(
      (info) => `<tr${info.current ? ' class="current"' : ''}>
  <td>${escapeHtml(userAgentFamily(info.userAgent))}${info.current ? ' <span class="badge">this device</span>' : ''}</td>
  <td>${escapeHtml(info.ip ?? 'unknown')}</td>
  <td>${time(info.createdAt)}</td>
  <td>${time(info.lastSeenAt)}</td>
  <td>${
    info.current
      ? ''
      : `<form method="post" action="/sessions/revoke" class="inline">${csrfField(session)}<input type="hidden" name="handle" value="${escapeHtml(info.handle)}"><button type="submit" class="danger" aria-label="Revoke ${escapeHtml(userAgentFamily(info.userAgent))} at ${escapeHtml(info.ip ?? 'unknown')}">Revoke</button></form>`
  }</td>
</tr>`,
    )
    .join('\n')
  const others = sessions.some((info) => !info.current)
  return `<div class="table-wrap"><table>
<caption>${sessions.length} session${sessions.length === 1 ? '' : 's'}, most recently active first</caption>
<thead><tr><th scope="col">Browser</th><th scope="col">IP address</th><th scope="col">Created</th><th scope="col">Last seen</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
<tbody>
${rows}
</tbody>
</table></div>
${
  others
    ? `<form method="post" action="/sessions/revoke-others">${csrfField(session)}<button type="submit" class="danger">Log out everywhere else</button></form>`
    : '<p class="hint">You are logged in on this device only.</p>'
}`
}

export function statelessExplanation(): string {
  return `<p>This demo runs with <code>--store cookie:</code>: each session is sealed (encrypted and signed) inside its own cookie, and the server keeps nothing. With no server-side record, the server cannot list the browsers you are logged in on, nor end a session on another device: a sealed cookie stays valid until it expires.</p>
<p>Start the demo with a server-side store, e.g. <code>npm start -- --store sqlite:./data/sessions.db</code>, to see your devices here.</p>`
}

export function serverPanel(session: Session<DemoData>, view: ServerView, now: number): string {
  const absolute = session.absoluteExpiresAt.getTime()
  const maxAge = Math.max(0, Math.ceil((Math.min(now + view.idleTimeout, absolute) - now) / 1000))
  const user = session.userId
  const authenticated = session.authenticatedAt
  const keys = ['notice', 'counter'].filter((key) => session.has(key as keyof DemoData & string))
  const flag = (on: boolean) => (on ? 'yes' : 'no')
  return `<aside class="panel" aria-labelledby="panel-title">
<h2 id="panel-title">What the server sees</h2>
<h3>The cookie</h3>
<dl>
  <dt>Name</dt><dd><code>${escapeHtml(view.cookieName)}</code></dd>
  <dt>HttpOnly</dt><dd>${flag(view.httpOnly)} <span class="hint">(scripts cannot read it)</span></dd>
  <dt>Secure</dt><dd>${view.secure === 'auto' ? 'on HTTPS requests' : flag(view.secure)} <span class="hint">(browsers still accept it from localhost)</span></dd>
  <dt>SameSite</dt><dd>${escapeHtml(view.sameSite)}</dd>
  <dt>Max-Age</dt><dd>${view.persistent ? `${maxAge} s <span class="hint">(the idle timeout, capped by the absolute deadline)</span>` : 'none (ends with the browser)'}</dd>
  <dt>Value</dt><dd>a random 256-bit ID and its HMAC signature <span class="hint">(never shown; the store keeps only its SHA-256)</span></dd>
</dl>
<h3>The session</h3>
<dl>
  <dt>User</dt><dd>${user === undefined ? 'anonymous' : escapeHtml(user)}</dd>
  <dt>Created</dt><dd>${time(session.createdAt)}</dd>
  <dt>Authenticated</dt><dd>${authenticated === undefined ? 'not yet' : time(authenticated)}</dd>
  <dt>Idle expiry</dt><dd>after ${duration(view.idleTimeout)} without a request</dd>
  <dt>Absolute expiry</dt><dd>${time(session.absoluteExpiresAt)} <span class="hint">(${duration(view.absoluteTimeout)} after creation or login, however active)</span></dd>
  <dt>Data keys</dt><dd>${keys.length === 0 ? 'none' : keys.map((key) => `<code>${key}</code>`).join(', ')}</dd>
</dl>
<h3>The store</h3>
<dl>
  <dt>Kind</dt><dd><code>${escapeHtml(view.storeKind)}</code></dd>
  ${view.storeLabel === undefined ? '' : `<dt>URL</dt><dd><code>${escapeHtml(view.storeLabel)}</code></dd>`}
</dl>
</aside>`
}

export interface PageOptions {
  readonly title: string
  readonly body: string
  /** The logged-in user's log-out form, shown in the header; none for a visitor. */
  readonly logout?: string
  readonly current?: string
  readonly panel?: string
}

export function page({ title, body, logout, current, panel = '' }: PageOptions): string {
  const link = (href: string, label: string) =>
    `<a href="${href}"${current === href ? ' aria-current="page"' : ''}>${label}</a>`
  const nav =
    logout === undefined
      ? link('/', 'Log in')
      : `${link('/profile', 'Profile')}${link('/sessions', 'Your sessions')}${logout}`
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · tessera demo</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="site">
  <a class="brand" href="/"><span aria-hidden="true">▦</span> tessera demo</a>
  <nav aria-label="Main">${nav}</nav>
</header>
<div class="layout${panel === '' ? '' : ' with-panel'}">
<main id="main" tabindex="-1">
${body}
</main>
${panel}
</div>
<footer class="site"><p>Sessions by tessera · <a href="/metrics">Prometheus metrics</a></p></footer>
</body>
</html>`
}

function time(date: Date): string {
  return `<time datetime="${date.toISOString()}">${date.toISOString().replace('T', ' ').slice(0, 19)} UTC</time>`
}

function duration(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000} d`
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`
  if (ms % 60_000 === 0) return `${ms / 60_000} min`
  return `${Math.round(ms / 1000)} s`
}
