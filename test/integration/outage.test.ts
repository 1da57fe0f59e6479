// A backend that fails never logs anyone out: Redis and PostgreSQL down at startup, crashed mid-traffic and
// hung, each against a private server of its own (never the shared ones), with the app in its own process
// (fixtures/outage-app.ts, Express). While the store is down, requests that need the session answer 503 with
// a StoreError through Express's error path, within the store timeout, and never with a fresh session; once
// it is back, the same app process serves again and every session saved before the outage is still there.
// Down at startup, openStore(url) fails fast by design; openStore(url, { lazy: true }) and a store on the
// app's own client start anyway and answer 503 until the server is up.
//
// TESSERA_OUTAGE_SECONDS=30 runs the mid-traffic load for the 30 seconds (default 20: 20% before the
// crash, 35% down, 45% after the restart).
import assert from 'node:assert/strict'
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { type AppProcess, freePort, type Reply, runLoad, send, startApp } from './fixtures/harness.js'

const run = promisify(execFile)
const APP = 'test/integration/fixtures/outage-app.ts'
const STORE_TIMEOUT = 1000
/** The longest a request may take while the store fails: one call up to the timeout, one more, and slack. */
const LATENCY_BOUND = 2 * STORE_TIMEOUT + 1500
const SESSIONS = 200
const CONNECTIONS = 20
const LOAD_SECONDS = Number(process.env.TESSERA_OUTAGE_SECONDS ?? 20)
const PHASES = { before: LOAD_SECONDS * 200, outage: LOAD_SECONDS * 350, after: LOAD_SECONDS * 450 }

const apps: AppProcess[] = []
after(async () => {
  await Promise.all(apps.map((app) => app.stop()))
})

async function app(url: string, ...flags: string[]): Promise<AppProcess> {
  const started = await startApp(APP, [url, '--store-timeout', String(STORE_TIMEOUT), ...flags])
  apps.push(started)
  return started
}

/** A private server the test may crash, hang and restart on the same port and data directory. */
interface Backend {
  readonly name: string
  readonly url: string
  /** Longest wait, after the server is back, for the app's first success: the driver's reconnect policy. */
  readonly recoveryBound: number
  /** Starts (or restarts) it; resolves once it answers. */
  start(): Promise<void>
  /** Kills it as a crash would: no shutdown, no final save. */
  crash(): Promise<void>
  /** Makes every call hang for `ms`; resolves once the hang has begun, with a promise of its end. */
  hang(ms: number): Promise<{ over: Promise<void> }>
  /** Stops it for good and removes its files. */
  remove(): Promise<void>
}

async function waitUntil(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = performance.now() + ms
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`${what} not ready after ${ms} ms`)
    await sleep(50)
  }
}

async function redisBackend(): Promise<Backend | string> {
  if (spawnSync('redis-server', ['--version']).status !== 0) return 'redis-server is not installed'
  const dir = mkdtempSync(join(tmpdir(), 'tessera-outage-redis-'))
  const port = await freePort()
  let server: ChildProcess | undefined
  const kill = () => server?.kill('SIGKILL')
  process.once('exit', kill) // if the test process ends without its after hooks
  const cli = (...command: string[]) =>
    run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...command], { timeout: 2000 }).then(
      ({ stdout }) => stdout.trim(),
      () => '', // not answering (yet)
    )
  const stopServer = async () => {
    if (server === undefined || server.exitCode !== null || server.signalCode !== null) return
    const exited = new Promise((resolve) => server!.once('exit', resolve))
    server.kill('SIGKILL')
    await exited
  }
  return {
    name: 'Redis',
    url: `redis://127.0.0.1:${port}`,
    // ioredis 6 (default retryStrategy) waits up to 5 s + 200 ms of jitter between reconnection attempts.
    recoveryBound: 5200 + 1300,
    async start() {
      if (server !== undefined && server.exitCode === null && server.signalCode === null) return
      // Appendonly with fsync on every write: what Redis acknowledged survives a SIGKILL.
      const config = {
        port: String(port),
        bind: '127.0.0.1',
        dir,
        appendonly: 'yes',
        appendfsync: 'always',
        save: '',
        logfile: join(dir, 'redis.log'),
      }
      server = spawn(
        'redis-server',
        Object.entries(config).flatMap(([name, value]) => [`--${name}`, value]),
        {
          stdio: 'ignore',
        },
      )
      server.once('error', () => {})
      await waitUntil('redis-server', async () => {
        if (server!.exitCode !== null) throw new Error(readFileSync(join(dir, 'redis.log'), 'utf8'))
        return (await cli('PING')) === 'PONG'
      })
    },
    crash: stopServer,
    async hang(ms) {
      assert.equal(await cli('CLIENT', 'PAUSE', String(ms), 'ALL'), 'OK')
      return { over: sleep(ms) }
    },
    async remove() {
      process.removeListener('exit', kill)
      await stopServer()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

async function postgresBackend(): Promise<Backend | string> {
  const versions = existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql') : []
  const bin = versions
    .map((version) => `/usr/lib/postgresql/${version}/bin`)
    .filter((path) => existsSync(`${path}/initdb`))
    .sort((a, b) => Number(/(\d+)\/bin$/.exec(b)?.[1]) - Number(/(\d+)\/bin$/.exec(a)?.[1]))[0]
  if (bin === undefined) return 'no PostgreSQL server binaries under /usr/lib/postgresql/*/bin'
  // PostgreSQL refuses to run as root: run it as the postgres OS user, in a directory that user owns.
  const root = process.getuid?.() === 0
  const owner = root ? spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }) : undefined
  if (root && owner?.status !== 0)
    return 'running as root, and there is no postgres OS user to run PostgreSQL as'
  const as = root ? ['runuser', '-u', 'postgres', '--'] : []
  const pg = (tool: string, ...args: string[]) => {
    const [command, ...rest] = [...as, `${bin}/${tool}`, ...args]
    return run(command!, rest, { timeout: 30_000 })
  }
  const dir = mkdtempSync(join(tmpdir(), 'tessera-outage-pg-'))
  if (root) {
    const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout)
    chownSync(dir, Number(owner!.stdout), gid)
  }
  const data = join(dir, 'data')
  const port = await freePort()
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`
  try {
    await pg('initdb', '-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C')
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    return `initdb failed: ${(error as { stderr?: string }).stderr ?? error}`
  }
  let running = false
  const stopServer = async () => {
    if (!running) return
    running = false
    await pg('pg_ctl', '-D', data, '-m', 'immediate', '-w', 'stop')
  }
  const kill = () => {
    const [command, ...rest] = [...as, `${bin}/pg_ctl`, '-D', data, '-m', 'immediate', 'stop']
    if (running) spawnSync(command!, rest)
  }
  process.once('exit', kill)
  const { default: Pg } = await import('pg')
  return {
    name: 'PostgreSQL',
    url,
    // pg's pool opens a new connection for the next query: no waiting between attempts.
    recoveryBound: 1500,
    async start() {
      if (running) return
      const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`
      await pg('pg_ctl', '-D', data, '-l', join(dir, 'server.log'), '-o', options, '-w', 'start')
      running = true
    },
    crash: stopServer,
    async hang(ms) {
      // An exclusive lock on the sessions table: every store call queues behind it until it is released.
      const client = new Pg.Client({ connectionString: url })
      await client.connect()
      await client.query('BEGIN')
      await client.query('LOCK TABLE tessera_sessions IN ACCESS EXCLUSIVE MODE')
      return {
        over: sleep(ms)
          .then(() => client.query('COMMIT'))
          .finally(() => client.end())
          .then(() => {}),
      }
    },
    async remove() {
      process.removeListener('exit', kill)
      await stopServer().catch(() => {})
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

interface Answer {
  readonly isNew?: boolean
  readonly counter?: number | null
  readonly code?: string
  readonly name?: string
}

function answer(reply: Reply): Answer {
  try {
    return JSON.parse(reply.body) as Answer
  } catch {
    return {}
  }
}

/** A session the test holds: its cookie and the highest counter an app acknowledged for it. */
interface Held {
  readonly cookie: string
  acknowledged: number
  attempted: number
}

async function createSessions(origin: string, count: number): Promise<Held[]> {
  const held: Held[] = []
  for (let i = 0; i < count; i += CONNECTIONS) {
    const replies = await Promise.all(
      Array.from({ length: Math.min(CONNECTIONS, count - i) }, () =>
        send(origin, { method: 'POST', path: '/create' }),
      ),
    )
    for (const reply of replies) {
      assert.equal(reply.status, 200, reply.body)
      assert.equal(reply.setCookie.length, 1)
      held.push({ cookie: reply.setCookie[0]!, acknowledged: 0, attempted: 0 })
    }
  }
  return held
}

/**
 * What a reply to a request that carried the cookie of a live session must never do: look new, or carry a
 * cookie with another ID (a fresh session in place of the real one would log the user out).
 */
function replacesSession(cookie: string, reply: Reply): boolean {
  const name = cookie.slice(0, cookie.indexOf('='))
  const resent = reply.setCookie.filter((set) => set.startsWith(`${name}=`))
  if (reply.status < 200 || reply.status > 299) return reply.setCookie.length > 0
  return answer(reply).isNew !== false || resent.some((set) => set !== cookie)
}

/** Every session reads back through the app as the same session, with no acknowledged increment lost. */
async function assertIntact(origin: string, held: readonly Held[]): Promise<{ ahead: number }> {
  let ahead = 0
  for (let i = 0; i < held.length; i += CONNECTIONS) {
    const batch = held.slice(i, i + CONNECTIONS)
    const replies = await Promise.all(
      batch.map(({ cookie }) => send(origin, { method: 'GET', path: '/read', cookie })),
    )
    for (const [j, reply] of replies.entries()) {
      const { cookie, acknowledged, attempted } = batch[j]!
      assert.equal(reply.status, 200, `session ${i + j} reads back: ${reply.body}`)
      assert.equal(replacesSession(cookie, reply), false, `session ${i + j} is the same session`)
      const { counter } = answer(reply)
      assert.ok(
        typeof counter === 'number' && counter >= acknowledged && counter <= attempted,
        `session ${i + j}: counter ${counter}, acknowledged ${acknowledged}, attempted ${attempted}`,
      )
      // An increment answered 503 may still have landed (the driver sent it on after the timeout).
      if (counter > acknowledged) ahead++
    }
  }
  return { ahead }
}

type Tally = Record<'ok' | 'unavailable' | 'otherServerError' | 'other', number>
const tally = (): Tally => ({ ok: 0, unavailable: 0, otherServerError: 0, other: 0 })

function count(into: Tally, reply: { status: number; code: string | undefined }): void {
  if (reply.status >= 200 && reply.status <= 299) into.ok++
  else if (reply.status === 503 && reply.code === 'ERR_SESSION_STORE') into.unavailable++
  else if (reply.status >= 500) into.otherServerError++
  else into.other++ // 4xx, or no response at all (status 0: a timeout or a reset)
}

const backends: { name: string; create: () => Promise<Backend | string> }[] = [
  { name: 'Redis', create: redisBackend },
  { name: 'PostgreSQL', create: postgresBackend },
]

for (const { name, create } of backends) {
  describe(`${name} outage`, { concurrency: false }, () => {
    let backend: Backend | undefined
    let skip: string | undefined
    before(async () => {
      const created = await create()
      if (typeof created === 'string') {
        if (process.env.CI === 'true') throw new Error(created)
        console.log(`# skipped: ${created}`)
        skip = created
      } else {
        backend = created
      }
    })
    after(() => backend?.remove())

    it(`answers 503 while ${name} is down at startup (openStore with lazy: true, or the app's own client), then serves from the same app process once it is up`, async (t) => {
      if (skip) return t.skip(skip)
      // The default fails fast, so that a wrong URL stops a deploy: the app exits with the StoreError.
      const failed = await app(backend!.url).catch((error: Error) => error)
      assert.ok(failed instanceof Error && /StoreError/.test(failed.message), 'openStore(url) fails fast')

      const origins = await Promise.all(
        ['--lazy', '--own-client'].map(async (flag) => (await app(backend!.url, flag)).origin),
      )
      for (const origin of origins) {
        assert.equal((await send(origin, { method: 'GET', path: '/health' })).status, 200, 'the app is up')
        const down = await Promise.all(
          Array.from({ length: 5 }, () => send(origin, { method: 'POST', path: '/create' })),
        )
        for (const reply of down) {
          assert.deepEqual(
            [reply.status, answer(reply)],
            [503, { name: 'StoreError', code: 'ERR_SESSION_STORE' }],
          )
          assert.deepEqual(reply.setCookie, [], 'no cookie for a session that was never saved')
          assert.ok(
            reply.ended - reply.started < LATENCY_BOUND,
            `answered in ${reply.ended - reply.started} ms`,
          )
        }
      }
      const started = performance.now()
      await backend!.start()
      const up = performance.now()
      const served: number[] = []
      for (const origin of origins) {
        let created: Reply | undefined
        await waitUntil('the first session after startup', async () => {
          created = await send(origin, { method: 'POST', path: '/create' })
          return created.status === 200
        })
        served.push(Math.round(performance.now() - up))
        const cookie = created!.setCookie[0]!
        const increment = await send(origin, { method: 'POST', path: '/increment', cookie })
        assert.deepEqual([increment.status, answer(increment)], [200, { isNew: false, counter: 1 }])
      }
      t.diagnostic(
        `${name} started in ${Math.round(up - started)} ms; served again ${served[0]} ms after (lazy openStore), ${served[1]} ms after (own client)`,
      )
    })

    it(`answers 503, never a fresh session, while ${name} is crashed mid-traffic; after a restart serves every request and every saved session`, async (t) => {
      if (skip) return t.skip(skip)
      await backend!.start() // no-op: up since the previous test
      const origin = (await app(backend!.url)).origin
      const held = await createSessions(origin, SESSIONS)

      const never = Number.POSITIVE_INFINITY
      const moments = { stop: never, stopped: never, restart: never, up: never }
      const samples: { started: number; ended: number; status: number; code: string | undefined }[] = []
      const replaced: string[] = []
      const load = runLoad({
        origin,
        connections: CONNECTIONS,
        durationMs: PHASES.before + PHASES.outage + PHASES.after,
        timeoutMs: 15_000,
        // Each connection owns every CONNECTIONS-th session, so no two requests race on one session (a race
        // is concurrency.test.ts's subject) and what it acknowledged is exact.
        next(worker) {
          const index = Math.floor(Math.random() * (SESSIONS / CONNECTIONS)) * CONNECTIONS + worker
          const increment = Math.random() < 0.7
          if (increment) held[index]!.attempted++
          return {
            method: increment ? 'POST' : 'GET',
            path: increment ? '/increment' : '/read',
            cookie: held[index]!.cookie,
            index,
          }
        },
        onReply(call, reply) {
          const { code, counter } = answer(reply)
          samples.push({ started: reply.started, ended: reply.ended, status: reply.status, code })
          if (replacesSession(call.cookie, reply) && replaced.length < 5) {
            replaced.push(`${reply.status} ${reply.body} ${reply.setCookie}`)
          }
          if (reply.status === 200 && typeof counter === 'number') {
            const session = held[call.index]!
            session.acknowledged = Math.max(session.acknowledged, counter)
          }
        },
      })
      const outage = (async () => {
        await sleep(PHASES.before)
        moments.stop = performance.now()
        await backend!.crash()
        moments.stopped = performance.now()
        await sleep(PHASES.outage)
        moments.restart = performance.now()
        await backend!.start()
        moments.up = performance.now()
      })()
      const [{ requests }] = await Promise.all([load, outage])

      // Recovered: the first success of a request sent after the server was back. From then on, every
      // request must succeed.
      const recovered = Math.min(
        ...samples.filter((s) => s.status === 200 && s.started >= moments.up).map((s) => s.ended),
      )
      const phaseOf = (s: (typeof samples)[number]) =>
        s.ended < moments.stop
          ? 'before'
          : s.started < moments.up
            ? 'outage'
            : s.started < recovered
              ? 'reconnecting'
              : 'recovered'
      const phases = { before: tally(), outage: tally(), reconnecting: tally(), recovered: tally() }
      const wrong: string[] = []
      for (const sample of samples) {
        const phase = phaseOf(sample)
        count(phases[phase], sample)
        const unavailable = sample.status === 503 && sample.code === 'ERR_SESSION_STORE'
        // Down: a StoreError 503, or a success the server gave before the crash or after the restart.
        const allowed =
          phase === 'before' || phase === 'recovered'
            ? sample.status === 200
            : unavailable ||
              (sample.status === 200 && (sample.started < moments.stopped || sample.ended >= moments.restart))
        if (!allowed && wrong.length < 5) wrong.push(`${phase}: ${sample.status} ${sample.code}`)
      }
      // A loop, not Math.max(...): a fast-failing outage yields more samples than a call's arguments can hold.
      const slowest = samples.reduce((most, s) => Math.max(most, s.ended - s.started), 0)
      const { ahead } = await assertIntact(origin, held)
      const { storeErrors } = answer(await send(origin, { method: 'GET', path: '/health' })) as {
        storeErrors?: object
      }
      t.diagnostic(
        `${requests} requests over ${LOAD_SECONDS} s, ${CONNECTIONS} connections, ${SESSIONS} sessions; down ${Math.round(moments.up - moments.stop)} ms (the restart took ${Math.round(moments.up - moments.restart)} ms)`,
      )
      for (const [phase, counts] of Object.entries(phases))
        t.diagnostic(`${phase}: ${JSON.stringify(counts)}`)
      t.diagnostic(
        `recovered ${Math.round(recovered - moments.up)} ms after the server was up; slowest request ${Math.round(slowest)} ms`,
      )
      t.diagnostic(
        `${SESSIONS} sessions intact; ${ahead} hold an increment answered 503 that landed anyway; store errors in the app ${JSON.stringify(storeErrors)}`,
      )
      assert.deepEqual(replaced, [], 'no reply handed out a fresh session in place of the real one')
      assert.deepEqual(
        wrong,
        [],
        'before: 200s; down: StoreError 503s (or 200s served around it); after: 200s',
      )
      assert.ok(
        slowest < LATENCY_BOUND,
        `no request took ${LATENCY_BOUND} ms or more (slowest ${slowest} ms)`,
      )
      assert.ok(phases.outage.unavailable > 0, 'the outage was seen')
      assert.ok(
        recovered - moments.up < backend!.recoveryBound,
        `recovered within ${backend!.recoveryBound} ms of the restart (${Math.round(recovered - moments.up)} ms)`,
      )
      assert.ok(phases.recovered.ok > 0, 'served after recovery')
    })

    it(`answers 503 within the store timeout while ${name} hangs, and serves again once it answers`, async (t) => {
      if (skip) return t.skip(skip)
      await backend!.start()
      const origin = (await app(backend!.url)).origin
      const held = await createSessions(origin, CONNECTIONS)
      const hang = await backend!.hang(4 * STORE_TIMEOUT)
      const during = await Promise.all(
        held.map(({ cookie }) =>
          send(origin, { method: 'POST', path: '/increment', cookie }, { timeoutMs: 15_000 }),
        ),
      )
      const times = during.map((reply) => Math.round(reply.ended - reply.started))
      for (const reply of during) {
        assert.deepEqual(
          [reply.status, answer(reply)],
          [503, { name: 'StoreError', code: 'ERR_SESSION_STORE' }],
        )
        assert.deepEqual(reply.setCookie, [])
      }
      assert.ok(Math.min(...times) >= STORE_TIMEOUT - 50, `each waited for the timeout: ${times}`)
      assert.ok(Math.max(...times) < STORE_TIMEOUT + 1000, `and no longer: ${times}`)
      await hang.over
      for (const session of held) session.attempted = 1
      const { ahead } = await assertIntact(origin, held)
      const again = await Promise.all(
        held.map(({ cookie }) => send(origin, { method: 'POST', path: '/increment', cookie })),
      )
      assert.deepEqual(
        again.map((reply) => reply.status),
        held.map(() => 200),
      )
      t.diagnostic(
        `hung ${4 * STORE_TIMEOUT} ms: ${CONNECTIONS} requests answered 503 in ${Math.min(...times)}-${Math.max(...times)} ms; ${ahead} increments landed after their 503`,
      )
    })
  })
}
