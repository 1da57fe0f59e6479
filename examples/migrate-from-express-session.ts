// Moving an Express app from express-session to tessera, keeping the store and every logged-in user.
// `before()` is the app as it was; `after()` is the same app on tessera, reading the same store through
// fromConnectStore. For a transition period, `after()` also accepts the old cookie once and moves its user to
// a tessera session, so the deploy logs nobody out. docs/migrating-from-express-session.md explains each line.
//
// Run it: SESSION_SECRET=… npx tsx examples/migrate-from-express-session.ts (listens with after()).
import { createHmac, timingSafeEqual } from 'node:crypto'
import { pathToFileURL } from 'node:url'
import express, { type Request, type RequestHandler } from 'express'
// @ts-expect-error express-session ships no type declarations; in your app, install @types/express-session
import expressSession from 'express-session'
import createMemoryStore from 'memorystore'
import { createSessionManager } from 'tessera'
import { type ConnectStore, fromConnectStore } from 'tessera/connect'
import { session } from 'tessera/express'

const secret = process.env.SESSION_SECRET ?? '' // at least 32 random bytes: tessera refuses less

// The store both versions share. In production: your connect-redis, connect-mongo… store, unchanged.
const MemoryStore = createMemoryStore(expressSession)
export const store = new MemoryStore({ checkPeriod: 60_000 }) as unknown as ConnectStore

// express-session's req.session as the old code saw it. tessera/express now owns the type of req.session,
// so the old code reads it through this cast (or through @types/express-session, in a separate program).
interface LegacySession {
  userId?: string
  regenerate(callback: (error?: unknown) => void): void
}
const legacy = (req: Request) => req.session as unknown as LegacySession

/** Before: express-session. */
export function before(): express.Express {
  const app = express()
  app.use(
    expressSession({
      secret,
      resave: false,
      saveUninitialized: false,
      rolling: true,
      store,
      cookie: { maxAge: 30 * 60_000, httpOnly: true, sameSite: 'lax' },
    }),
  )
  app.post('/login', (req, res, next) => {
    legacy(req).regenerate((error) => {
      if (error) return next(error)
      legacy(req).userId = 'ada'
      res.redirect(303, '/me')
    })
  })
  app.get('/me', (req, res) => {
    res.send(legacy(req).userId ?? 'anonymous')
  })
  return app
}

/** After: tessera, same store, same routes. */
export function after(): express.Express {
  const sessions = createSessionManager({
    secrets: [secret], //                       secret
    store: fromConnectStore(store, { ephemeral: true }), // store (memorystore lives in this process)
    idleTimeout: 30 * 60_000, //                cookie.maxAge
    rolling: true, //                           rolling (one refresh per touchInterval, not per request)
    saveUninitialized: false, //                saveUninitialized; resave has no equivalent: never needed
    cookie: { sameSite: 'Lax', httpOnly: true }, // cookie.*; Secure and the __Host- name by default
  })
  const app = express()
  app.use(session(sessions), adoptExpressSession())
  app.post('/login', async (req, res) => {
    await req.session.login('ada') // regenerate + bind the user, in one call
    res.redirect(303, '/me')
  })
  app.get('/me', (req, res) => {
    res.send(req.session.userId ?? 'anonymous')
  })
  return app
}

/**
 * Transition: a request still carrying express-session's cookie has its user logged in on a tessera session,
 * and the old record and cookie are deleted. Remove this once the old cookie.maxAge has passed.
 */
function adoptExpressSession(name = 'connect.sid'): RequestHandler {
  return async (req, res, next) => {
    const sid = unsignLegacyCookie(req.headers.cookie, name)
    if (sid === undefined) return next()
    try {
      const old = await new Promise<LegacySession | undefined>((resolve, reject) =>
        store.get(sid, (error, value) =>
          error ? reject(error) : resolve(value as LegacySession | undefined),
        ),
      )
      if (old?.userId !== undefined && req.session.userId === undefined) await req.session.login(old.userId)
      await new Promise<void>((resolve, reject) =>
        store.destroy(sid, (error) => (error ? reject(error) : resolve())),
      )
      res.clearCookie(name, { path: '/' })
      next()
    } catch (error) {
      next(error)
    }
  }
}

// express-session's cookie is `s:<sid>.<HMAC-SHA256 of sid, base64 without padding>`, URL-encoded.
function unsignLegacyCookie(header: string | undefined, name: string): string | undefined {
  const pair = header?.split(';').find((part) => part.trim().startsWith(`${name}=`))
  const value = decodeURIComponent(pair?.trim().slice(name.length + 1) ?? '')
  const dot = value.lastIndexOf('.')
  if (!value.startsWith('s:') || dot < 0) return undefined
  const sid = value.slice(2, dot)
  const expected = Buffer.from(createHmac('sha256', secret).update(sid).digest('base64').replace(/=+$/, ''))
  const given = Buffer.from(value.slice(dot + 1))
  return given.length === expected.length && timingSafeEqual(given, expected) ? sid : undefined
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const server = after().listen(Number(process.env.PORT ?? 3000), () =>
    console.log('listening', server.address()),
  )
}
