import { createServer } from 'node:http'
import { pino } from 'pino'
import { createMetrics, createSessionManager, openStore } from 'tessera'
import { withSession } from 'tessera/node'

const sessions = createSessionManager<{ visits?: number }>({
  // lazy: start even while PostgreSQL or Redis is down; requests get 503s until it is up.
  store: await openStore(process.env.SESSION_STORE ?? 'sqlite:./data/sessions.db', { lazy: true }),
  secrets: [process.env.SESSION_SECRET!], // newest first: prepend a new one to rotate
  cookie: { secure: 'auto' }, // behind a TLS proxy: secure: true plus trustProxy: true
  logger: pino({ level: process.env.LOG_LEVEL ?? 'info' }), // store failures at error; never an ID
  storeTimeout: 2_000, // a hung backend fails the request with a 503 after 2 s
  failOpen: (request) => request.url === '/', // the public home page survives a store outage
  renewal: { after: 15 * 60_000 }, // a new ID every 15 minutes of use; the old one works 30 s more
})
const metrics = createMetrics(sessions)

const server = createServer(
  withSession(sessions, (req, res, session) => {
    if (req.url === '/metrics') {
      res.setHeader('content-type', metrics.contentType)
      res.end(metrics.render())
    } else if (session.degraded) {
      res.end('Welcome! (Your session is briefly unavailable.)\n')
    } else {
      const visits = (session.get('visits') ?? 0) + 1
      session.set('visits', visits)
      res.end(`You have been here ${visits} time(s).\n`)
    }
  }),
)
server.listen(Number(process.env.PORT ?? 3000), () => console.log('listening', server.address()))

// Graceful stop: refuse new connections, let requests in flight save their sessions, close the store.
process.once('SIGTERM', () => {
  server.close()
  server.closeIdleConnections()
  void sessions.close({ timeout: 10_000 }).then(() => server.closeAllConnections())
})
