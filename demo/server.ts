// `npm start`: the login demo on http://localhost:3000, sessions in ./data/sessions.db.

import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { createSessionManager, openStore, type SessionCookieOptions, type SessionLogger } from 'tessera'
import { createDemoApp, type DemoData } from './app.js'

const USAGE = `Usage: npm start -- [options]
  --port <n>                 port to listen on (default 3000; 0 picks a free one)
  --host <address>           address to listen on (default 127.0.0.1: this machine only)
  --store <url>              where sessions live (default sqlite:./data/sessions.db): memory:, sqlite:<path>,
                             file:<dir>, postgres://…, redis://…, or cookie: (stateless, sealed in the cookie)
  --idle-timeout <time>      e.g. 30m, 900s, 1800000 (ms); default 30m
  --absolute-timeout <time>  e.g. 12h, 7d; default 12h
  --log-level <level>        debug, info, warn, error or silent (default info, or LOG_LEVEL); JSON lines on stdout
Environment: SESSION_SECRET (at least 32 random bytes); without it a development secret is kept in data/dev-secret.`

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.PORT ?? '3000' },
    host: { type: 'string', default: '127.0.0.1' },
    store: { type: 'string', default: 'sqlite:./data/sessions.db' },
    'idle-timeout': { type: 'string', default: '30m' },
    'absolute-timeout': { type: 'string', default: '12h' },
    'log-level': { type: 'string', default: process.env.LOG_LEVEL ?? 'info' },
    help: { type: 'boolean', default: false },
  },
})
if (values.help) {
  console.log(USAGE)
  process.exit(0)
}

const store = await openStore(values.store)
// tessera's defaults, spelled out so the demo's "what the server sees" panel shows what the manager was given.
const cookie: SessionCookieOptions = { httpOnly: true, secure: true, sameSite: 'Lax' }
const storeLabel = values.store.replace(/\/\/[^@/]*@/, '//***@').replace(/(password=)[^&]*/gi, '$1***')
const sessions = createSessionManager<DemoData>({
  store,
  cookie,
  secrets: [secret()],
  idleTimeout: milliseconds(values['idle-timeout'], '--idle-timeout'),
  absoluteTimeout: milliseconds(values['absolute-timeout'], '--absolute-timeout'),
  logger: jsonLogger(values['log-level']),
})
const server = createDemoApp(sessions, { cookie, storeLabel }).listen(
  Number(values.port),
  values.host,
  () => {
    const address = server.address()
    const port = typeof address === 'object' && address !== null ? address.port : values.port
    console.log(`tessera demo on http://localhost:${port} (store: ${storeLabel})`)
  },
)

// Graceful stop: no new connections, let the requests in flight save their sessions, then close the store.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.close()
    server.closeIdleConnections()
    void sessions.close({ timeout: 5_000 }).finally(() => server.closeAllConnections())
  })
}

// pino's shape with none of its dependencies: one JSON object per line on stdout. In an app, pass pino itself.
function jsonLogger(level: string): SessionLogger {
  const levels = ['debug', 'info', 'warn', 'error'] as const
  const threshold = level === 'silent' ? levels.length : levels.indexOf(level as (typeof levels)[number])
  if (threshold === -1) {
    console.error(`--log-level: expected debug, info, warn, error or silent, got ${JSON.stringify(level)}`)
    process.exit(2)
  }
  const method = (name: (typeof levels)[number]) => (object: Record<string, unknown>, msg: string) => {
    if (levels.indexOf(name) < threshold) return
    const { err, ...rest } = object
    const error = err instanceof Error ? { err: { type: err.name, message: err.message } } : {}
    console.log(JSON.stringify({ level: name, time: Date.now(), ...rest, ...error, msg }))
  }
  return { debug: method('debug'), info: method('info'), warn: method('warn'), error: method('error') }
}

function secret(): string {
  if (process.env.SESSION_SECRET) return process.env.SESSION_SECRET
  const file = resolve('data/dev-secret')
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true })
    writeFileSync(file, randomBytes(32).toString('base64url'), { mode: 0o600 })
  }
  chmodSync(file, 0o600)
  console.warn(
    `SESSION_SECRET is not set: using a development secret kept in ${file}. Set SESSION_SECRET in production.`,
  )
  return readFileSync(file, 'utf8').trim()
}

function milliseconds(text: string, option: string): number {
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim())
  if (match === null) {
    console.error(
      `${option}: expected a duration such as 30m, 900s, 12h or 7d, got ${JSON.stringify(text)}\n\n${USAGE}`,
    )
    process.exit(2)
  }
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] ?? 'ms'] ?? 1
  return Number(match[1]) * unit
}
