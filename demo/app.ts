// The login demo: a form, a profile page that only a logged-in user sees, and log out.
import express, { type ErrorRequestHandler } from 'express'
import { createMetrics, type Session, type SessionManager } from 'tessera'
import { csrf, session } from 'tessera/express'
import { verifyPassword } from './users.js'

export interface DemoData {
  /** Shown once on the next page, then gone (session.take). */
  notice?: string
}

declare module 'tessera' {
  interface Register {
    data: DemoData
  }
}

export function createDemoApp(sessions: SessionManager<DemoData>): express.Express {
  const app = express()
  app.disable('x-powered-by')
  // Prometheus metrics of the session layer; mounted before the session middleware so scrapes cost nothing.
  const metrics = createMetrics(sessions)
  app.get('/metrics', (_req, res) => {
    res.type(metrics.contentType).send(metrics.render())
  })
  app.use(session(sessions), express.urlencoded({ extended: false, limit: '4kb' }), csrf())

  app.get('/', (req, res) => {
    const user = req.session.userId
    res.send(
      page(
        'Log in',
        user === undefined
          ? loginForm(req.session)
          : `<p>You are logged in as <strong>${escapeHtml(user)}</strong>.</p><p><a href="/profile">Your profile</a></p>${logoutForm(req.session)}`,
      ),
    )
  })

  app.post('/login', async (req, res) => {
    const { username, password } = (req.body ?? {}) as Record<string, unknown>
    const user =
      typeof username === 'string' && typeof password === 'string'
        ? await verifyPassword(username, password)
        : undefined
    if (user === undefined) {
      res
        .status(401)
        .send(
          page(
            'Log in',
            `<p class="error" role="alert">Wrong username or password.</p>${loginForm(req.session)}`,
          ),
        )
      return
    }
    // login() issues a new session ID (a session ID planted before login is worthless after it) and binds the
    // user, so "log out everywhere" can find this session later.
    await req.session.login(user)
    req.session.set('notice', `Logged in as ${user}.`)
    res.redirect(303, '/profile')
  })

  app.get('/profile', (req, res) => {
    const user = req.session.userId
    if (user === undefined) {
      res.status(401).send(page('Profile', '<p>Please log in first.</p><p><a href="/">Log in</a></p>'))
      return
    }
    const notice = req.session.take('notice')
    const flash = notice === undefined ? '' : `<p class="notice" role="status">${escapeHtml(notice)}</p>`
    res.send(page('Profile', `${flash}<h2>Welcome, ${escapeHtml(user)}!</h2>${logoutForm(req.session)}`))
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
    res
      .status(status)
      .send(page('Error', `<p class="error" role="alert">${message}</p><p><a href="/">Home</a></p>`))
  }
  app.use(onError)
  return app
}

function csrfField(session: Session<DemoData>): string {
  return `<input type="hidden" name="_csrf" value="${session.csrfToken()}">`
}

function loginForm(session: Session<DemoData>): string {
  return `<form method="post" action="/login">
  ${csrfField(session)}
  <label>Username <input name="username" autocomplete="username" required></label>
  <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit">Log in</button>
</form>
<p class="hint">Try <code>rasmus</code> / <code>default</code>.</p>`
}

function logoutForm(session: Session<DemoData>): string {
  return `<form method="post" action="/logout">${csrfField(session)}<button type="submit">Log out</button></form>`
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · tessera demo</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem; color: #1d2330; }
  h1 { font-size: 1.25rem; letter-spacing: .02em; }
  label { display: block; margin: .75rem 0; }
  input { display: block; width: 100%; padding: .5rem; font: inherit; border: 1px solid #9aa3b5; border-radius: 6px; }
  button { padding: .5rem 1.25rem; font: inherit; border: 0; border-radius: 6px; background: #2f5bd3; color: white; cursor: pointer; }
  .error { color: #a51d2d; } .hint { color: #5c6478; font-size: .9rem; }
  .notice { background: #e7f0ff; border-left: 4px solid #2f5bd3; padding: .5rem .75rem; }
</style>
</head>
<body>
<h1>tessera demo</h1>
${body}
</body>
</html>`
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`)
}
