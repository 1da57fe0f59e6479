// The demo: log in, a profile with a flash message, a counter kept in the session, "your sessions" (every
// device, revoke one, log out everywhere else), log out, and a "what the server sees" panel on every page.
import { join } from 'node:path'
import express, { type ErrorRequestHandler, type Request, type Response } from 'express'
import {
  createMetrics,
  SessionConfigError,
  type SessionCookieOptions,
  type SessionManager,
  userAgentFamily,
} from 'tessera'
import { csrf, session } from 'tessera/express'
import { verifyPassword } from './users.js'
import {
  escapeHtml,
  flash,
  loginForm,
  logoutForm,
  page,
  profileBody,
  type ServerView,
  serverPanel,
  sessionsTable,
  statelessExplanation,
} from './views.js'

export interface DemoData {
  /** Shown once on the next page, then gone (session.take). */
  notice?: string
  /** The profile page's counter: a value that changes the session. */
  counter?: number
}

declare module 'tessera' {
  interface Register {
    data: DemoData
  }
}

export interface DemoOptions {
  /** The cookie options the manager was created with, so the panel can show them. @default tessera's defaults */
  readonly cookie?: SessionCookieOptions
  /** The --store URL, password already hidden, for the panel. */
  readonly storeLabel?: string
  /** Current time for the panel's Max-Age; the manager's clock in tests. @default Date.now */
  readonly clock?: () => number
}

export function createDemoApp(
  sessions: SessionManager<DemoData>,
  options: DemoOptions = {},
): express.Express {
  const app = express()
  app.disable('x-powered-by')
  const clock = options.clock ?? Date.now
  const cookie = options.cookie ?? {}
  const view: ServerView = {
    cookieName: sessions.cookieName,
    httpOnly: cookie.httpOnly ?? true,
    secure: cookie.secure ?? true,
    sameSite: cookie.sameSite ?? 'Lax',
    persistent: cookie.persistent ?? true,
    idleTimeout: sessions.idleTimeout,
    absoluteTimeout: sessions.absoluteTimeout,
    storeKind: sessions.store.constructor.name,
    storeLabel: options.storeLabel,
  }
  // Prometheus metrics of the session layer and the stylesheet; mounted before the session middleware so they
  // cost no session work.
  const metrics = createMetrics(sessions)
  app.get('/metrics', (_req, res) => {
    res.type(metrics.contentType).send(metrics.render())
  })
  app.use(express.static(join(import.meta.dirname, 'public'), { index: false, maxAge: '1h' }))
  app.use(session(sessions), express.urlencoded({ extended: false, limit: '4kb' }), csrf())

  const panel = (req: Request) => serverPanel(req.session, view, clock())
  const chrome = (req: Request) => ({ logout: logoutForm(req.session), panel: panel(req) })

  /** The logged-in user, or undefined after answering 401. */
  function requireUser(req: Request, res: Response, title: string): string | undefined {
    const user = req.session.userId
    if (user === undefined) {
      res.status(401).send(
        page({
          title,
          body: '<section class="card"><h1>Please log in first.</h1><p><a href="/">Log in</a></p></section>',
        }),
      )
    }
    return user
  }

  app.get('/', (req, res) => {
    if (req.session.userId === undefined) {
      res.send(page({ title: 'Log in', body: loginForm(req.session), current: '/', panel: panel(req) }))
    } else {
      const body = `<section class="card"><h1>Hello again</h1><p>You are logged in as <strong>${escapeHtml(req.session.userId)}</strong>.</p><p><a href="/profile">Your profile</a> · <a href="/sessions">Your sessions</a></p></section>`
      res.send(page({ title: 'Home', body, current: '/', ...chrome(req) }))
    }
  })

  app.post('/login', async (req, res) => {
    const { username, password } = (req.body ?? {}) as Record<string, unknown>
    const user =
      typeof username === 'string' && typeof password === 'string'
        ? await verifyPassword(username, password)
        : undefined
    if (user === undefined) {
      res.status(401).send(page({ title: 'Log in', body: loginForm(req.session, true), panel: panel(req) }))
      return
    }
    // login() issues a new session ID (a session ID planted before login is worthless after it) and binds the
    // user, so "your sessions" and "log out everywhere else" can find this session later.
    await req.session.login(user)
    req.session.set('notice', `Logged in as ${user}.`)
    res.redirect(303, '/profile')
  })

  app.get('/profile', (req, res) => {
    const user = requireUser(req, res, 'Profile')
    if (user === undefined) return
    const notice = req.session.take('notice')
    res.send(
      page({
        title: 'Profile',
        body: profileBody(req.session, user, notice),
        current: '/profile',
        ...chrome(req),
      }),
    )
  })

  app.post('/counter', (req, res) => {
    if (requireUser(req, res, 'Profile') === undefined) return
    const action = (req.body as Record<string, unknown> | undefined)?.action
    req.session.set('counter', action === 'reset' ? 0 : (req.session.get('counter') ?? 0) + 1)
    res.redirect(303, '/profile')
  })

  app.get('/sessions', async (req, res) => {
    const json = req.accepts(['html', 'json']) === 'json'
    const user = req.session.userId
    if (user === undefined) {
      if (json) res.status(401).json({ error: 'Please log in first.' })
      else requireUser(req, res, 'Your sessions')
      return
    }
    let list: Awaited<ReturnType<typeof sessions.listSessions>>
    try {
      list = await sessions.listSessions(user, { current: req.session })
    } catch (error) {
      // A CookieStore keeps nothing on the server, so there is nothing to list: explain instead of failing.
      if (!(error instanceof SessionConfigError)) throw error
      if (json) {
        res.status(501).json({ error: 'Sessions sealed in cookies (--store cookie:) cannot be listed.' })
        return
      }
      res.send(
        page({
          title: 'Your sessions',
          body: `<section class="card" aria-labelledby="sessions-title"><h1 id="sessions-title">Your sessions</h1>${statelessExplanation()}</section>`,
          current: '/sessions',
          ...chrome(req),
        }),
      )
      return
    }
    if (json) {
      res.json(
        list.map((info) => ({
          handle: info.handle,
          current: info.current,
          browser: userAgentFamily(info.userAgent),
          ip: info.ip ?? null,
          createdAt: info.createdAt.toISOString(),
          authenticatedAt: info.authenticatedAt?.toISOString() ?? null,
          lastSeenAt: info.lastSeenAt.toISOString(),
          expiresAt: info.expiresAt.toISOString(),
        })),
      )
      return
    }
    const notice = req.session.take('notice')
    res.send(
      page({
        title: 'Your sessions',
        body: `${flash(notice)}<section class="card" aria-labelledby="sessions-title"><h1 id="sessions-title">Your sessions</h1>
<p>Every browser you are logged in on. Revoke one you do not recognise: it is logged out on its next request.</p>
${sessionsTable(req.session, list)}</section>`,
        current: '/sessions',
        ...chrome(req),
      }),
    )
  })

  app.post('/sessions/revoke', async (req, res) => {
    const user = requireUser(req, res, 'Your sessions')
    if (user === undefined) return
    const handle = (req.body as Record<string, unknown> | undefined)?.handle
    const revoked = typeof handle === 'string' && (await sessions.revokeSession(user, handle))
    req.session.set('notice', revoked ? 'That session is logged out.' : 'That session had already ended.')
    res.redirect(303, '/sessions')
  })

  app.post('/sessions/revoke-others', async (req, res) => {
    const user = requireUser(req, res, 'Your sessions')
    if (user === undefined) return
    const count = await sessions.revokeSessions(user, { except: req.session })
    req.session.set('notice', `Logged out ${count} other session${count === 1 ? '' : 's'}.`)
    res.redirect(303, '/sessions')
  })

  app.post('/logout', async (req, res) => {
    await req.session.destroy()
    res.redirect(303, '/')
  })

  const onError: ErrorRequestHandler = (error, _req, res, _next) => {
    const status = typeof error?.status === 'number' ? error.status : 500
    if (status >= 500) console.error(error)
    const message =
      status === 503
        ? 'The session store is unavailable; please try again shortly.'
        : status === 403
          ? 'This form has expired or came from another site. Please go back, reload the page and try again.'
          : 'Something went wrong.'
    res.status(status).send(
      page({
        title: 'Error',
        body: `<section class="card"><h1>Sorry</h1><p class="error" role="alert">${escapeHtml(message)}</p><p><a href="/">Home</a></p></section>`,
      }),
    )
  }
  app.use(onError)
  return app
}
