// The `tessera` command, run as a real child process against stores a real SessionManager populated:
// SQLite, FileStore, PostgreSQL and Redis (those two skipped with a notice when unreachable, unless CI=true).

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type Socket } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { fileURLToPath, pathToFileURL } from 'node:url'
import Database from 'better-sqlite3'
import pg from 'pg'
import { cleanupPostgres, cleanupRedis, serviceSkip } from '../test/integration/services.js'
import { request, runWithoutPackages, SECRET_A } from '../test/support.js'
import { main } from './cli.js'
import { sha256Hex } from './internal/crypto.js'
import { createSessionManager, type SessionManager } from './manager.js'
import { CookieSigner } from './signer.js'
import type { Store } from './store.js'
import { FileStore } from './stores/file.js'
import { PostgresStore, postgresSchemaSql } from './stores/postgres.js'
import { RedisStore } from './stores/redis.js'
import { SqliteStore, sqliteSchemaSql } from './stores/sqlite.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const CLI = fileURLToPath(new URL('./cli.ts', import.meta.url))
const HOUR = 3_600_000
const dir = mkdtempSync(join(tmpdir(), 'tessera-cli-'))
let files = 0
const newPath = (name: string) => join(dir, `${++files}-${name}`)

const POSTGRES_URL = process.env.TESSERA_TEST_POSTGRES_URL ?? 'postgres://127.0.0.1:5432/test'
const REDIS_URL = process.env.TESSERA_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'
const RUN = randomBytes(4).toString('hex')
const PG_PREFIX = `tessera_cli_${RUN}_`
const REDIS_PREFIX = `tessera-cli-test:${RUN}:`
const postgresSkip = await serviceSkip('postgres')
const redisSkip = await serviceSkip('redis')

after(async () => {
  // Each cleanup runs whatever another one threw.
  const results = await Promise.allSettled([
    cleanupPostgres(PG_PREFIX),
    cleanupRedis(REDIS_PREFIX),
    postgresSkip === undefined
      ? withPg(async (client) => {
          const { rows } = await client.query<{ nspname: string }>(
            'SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)',
            [PG_PREFIX],
          )
          for (const { nspname } of rows) await client.query(`DROP SCHEMA IF EXISTS "${nspname}" CASCADE`)
        })
      : undefined,
  ])
  rmSync(dir, { recursive: true, force: true })
  for (const result of results) if (result.status === 'rejected') throw result.reason
})

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly ms: number
}

/** Runs `tessera <args>` as its own process, without TESSERA_STORE or DEBUG unless `env` sets them. */
function tessera(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  const started = performance.now()
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env }
  if (env.TESSERA_STORE === undefined) delete childEnv.TESSERA_STORE
  delete childEnv.DEBUG
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', CLI, ...args],
      { cwd: ROOT, env: childEnv, timeout: 30_000, encoding: 'utf8' },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null
        resolve({ code, stdout, stderr, ms: performance.now() - started })
      },
    )
  })
}

/** Runs `tessera <args>`, expects exit 0 and parses the one JSON document on stdout. */
async function json<T = Record<string, unknown>>(args: readonly string[]): Promise<T> {
  const run = await tessera([...args, '--json'])
  assert.equal(run.code, 0, run.stderr)
  return JSON.parse(run.stdout) as T
}

interface Population {
  readonly manager: SessionManager
  /** Cookie headers (`name=value`) of alice's two live sessions, bob's one, and an anonymous one. */
  readonly alice: readonly [string, string]
  readonly bob: string
  readonly anonymous: string
  readonly expired: number
}

/** Two live sessions for alice (with client details), one for bob, one anonymous, two expired for alice. */
async function populate(store: Store): Promise<Population> {
  const start = Date.now()
  const manager = createSessionManager({ store, secrets: [SECRET_A] })
  // Three hours ago, with the default 30-minute idle timeout: expired, but still held until a purge.
  const past = createSessionManager({ store, secrets: [SECRET_A], clock: () => start - 3 * HOUR })
  const login = async (m: SessionManager, user: string, userAgent?: string, ip?: string) =>
    (await request(m, undefined, (s) => s.login(user), { userAgent, ip })).cookie!
  const alice = [
    await login(manager, 'alice', 'Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0', '192.0.2.10'),
    await login(manager, 'alice', 'Mozilla/5.0 (iPhone) \u001b[31mSafari/18', '192.0.2.11'),
  ] as const
  const bob = await login(manager, 'bob')
  const anonymous = (await request(manager, undefined, (s) => s.set('cart', ['tea', 'ü']))).cookie!
  await login(past, 'alice')
  await login(past, 'alice')
  return { manager, alice, bob, anonymous, expired: 2 }
}

/** The session ID inside a cookie header `name=<id>.<signature>`, and its store key. */
function idOf(cookie: string): string {
  return cookie.slice(cookie.indexOf('=') + 1).split('.')[0]!
}
function keyOf(cookie: string): string {
  return sha256Hex(idOf(cookie))
}

/** Whether the manager still loads the session behind `cookie` as the logged-in one. */
async function loggedIn(manager: SessionManager, cookie: string): Promise<boolean> {
  const { session } = await request(manager, cookie)
  return !session.isNew && session.userId !== undefined
}

/** The checks every server-side store must pass: stats, list, revoke (both ways), purge-expired. */
async function exerciseStore(url: string, store: Store, expectedBytes: () => Promise<number>) {
  const population = await populate(store)
  const { manager, alice, bob, anonymous } = population

  const stats = await json(['stats', '--store', url])
  assert.deepEqual(
    { live: stats.live, expired: stats.expired, bytes: stats.bytes },
    { live: 4, expired: 2, bytes: await expectedBytes() },
  )
  const text = await tessera(['stats', '--store', url])
  assert.equal(text.code, 0, text.stderr)
  assert.match(text.stdout, /^live\s+4 sessions$/m)
  assert.match(text.stdout, /^expired\s+2 not cleaned up yet/m)

  // list: alice's two live sessions, by store key, with what login recorded; never an ID or a cookie.
  const listed = await json<{ user: string; sessions: Record<string, string | null>[] }>([
    'list',
    '--user',
    'alice',
    '--store',
    url,
  ])
  assert.equal(listed.user, 'alice')
  assert.deepEqual(listed.sessions.map((s) => s.session).sort(), alice.map(keyOf).sort())
  const firefox = listed.sessions.find((s) => s.session === keyOf(alice[0]))!
  assert.equal(firefox.userAgent, 'Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0')
  assert.equal(firefox.ip, '192.0.2.10')
  for (const field of ['createdAt', 'lastSeenAt', 'expiresAt', 'authenticatedAt'])
    assert.ok(!Number.isNaN(Date.parse(firefox[field]!)), field)
  const table = await tessera(['list', '--user', 'alice', '--store', url])
  assert.equal(table.code, 0, table.stderr)
  assert.match(table.stdout, /^2 live sessions of user "alice"/)
  for (const cookie of alice) assert.ok(table.stdout.includes(keyOf(cookie).slice(0, 16)))
  assert.ok(table.stdout.includes('Firefox/140.0'))
  // A user agent is client input: its escape sequences reach the terminal escaped.
  assert.ok(!table.stdout.includes('\u001b') && table.stdout.includes('\\u001b[31mSafari/18'))
  for (const cookie of [...alice, bob, anonymous]) {
    for (const output of [JSON.stringify(listed), table.stdout, table.stderr]) {
      assert.ok(!output.includes(idOf(cookie)), 'a session ID was printed')
      assert.ok(!output.includes(cookie.slice(cookie.indexOf('=') + 1)), 'a cookie value was printed')
    }
  }

  // revoke --session with a 16-character prefix and --user: exactly that session ends.
  const one = await json([
    'revoke',
    '--user',
    'alice',
    '--session',
    keyOf(alice[1]).slice(0, 16),
    '--store',
    url,
  ])
  assert.deepEqual(one, { user: 'alice', session: keyOf(alice[1]), revoked: 1 })
  assert.equal(await loggedIn(manager, alice[1]), false)
  assert.equal(await loggedIn(manager, alice[0]), true)
  // The same prefix as another user's is not theirs to end.
  const notTheirs = await json([
    'revoke',
    '--user',
    'bob',
    '--session',
    keyOf(alice[0]).slice(0, 16),
    '--store',
    url,
  ])
  assert.equal(notTheirs.revoked, 0)
  assert.equal(await loggedIn(manager, alice[0]), true)

  // revoke --user ends every session of alice (the expired ones count too), and leaves bob's.
  const all = await json(['revoke', '--user', 'alice', '--store', url])
  assert.equal(all.user, 'alice')
  assert.ok((all.revoked as number) >= 1)
  assert.equal(await loggedIn(manager, alice[0]), false)
  assert.equal(await loggedIn(manager, bob), true)

  // revoke --session with the full key needs no user.
  const full = await tessera(['revoke', '--session', keyOf(bob), '--store', url])
  assert.equal(full.code, 0, full.stderr)
  assert.equal(full.stdout, `revoked session ${keyOf(bob).slice(0, 16)}…\n`)
  assert.equal(await loggedIn(manager, bob), false)
  const again = await json(['revoke', '--session', keyOf(bob), '--store', url])
  assert.equal(again.revoked, 0)
  return population
}

describe('tessera CLI on SQLite', () => {
  it('stats counts, list shows sessions without IDs, revoke --user/--session make them unloadable', async () => {
    const path = newPath('sessions.db')
    const database = new Database(path)
    const store = new SqliteStore({ database, cleanupIntervalMs: 0 })
    try {
      const bytes = async () =>
        (database.prepare('SELECT data FROM tessera_sessions').all() as { data: string }[]).reduce(
          (sum, row) => sum + Buffer.byteLength(row.data, 'utf8'),
          0,
        )
      await exerciseStore(`sqlite:${path}`, store, bytes)
    } finally {
      await store.close()
      database.close()
    }
  })

  it('purge-expired deletes only the expired sessions', async () => {
    const path = newPath('purge.db')
    const store = await SqliteStore.open({ path, cleanupIntervalMs: 0 })
    try {
      const { manager, alice, bob, anonymous } = await populate(store)
      const run = await tessera(['purge-expired', '--store', `sqlite:${path}`])
      assert.equal(run.code, 0, run.stderr)
      assert.equal(run.stdout, 'deleted 2 expired sessions\n')
      assert.equal(run.stderr, '') // not a terminal: no progress bar
      const stats = await json(['stats', '--store', `sqlite:${path}`])
      assert.deepEqual([stats.live, stats.expired], [4, 0])
      for (const cookie of [...alice, bob]) assert.equal(await loggedIn(manager, cookie), true)
      assert.deepEqual((await request(manager, anonymous)).session.get('cart'), ['tea', 'ü'])
      assert.deepEqual(await json(['purge-expired', '--store', `sqlite:${path}`]), { deleted: 0 })
    } finally {
      await store.close()
    }
  })

  it('migrate --print prints the SQL SqliteStore runs; migrate creates exactly that schema', async () => {
    const printed = await tessera(['migrate', '--print', '--store', 'sqlite:./never-created.db'])
    assert.equal(printed.code, 0, printed.stderr)
    assert.equal(printed.stdout, sqliteSchemaSql())
    const migrated = newPath('migrated.db')
    const run = await tessera(['migrate', '--store', `sqlite:${migrated}`])
    assert.equal(run.code, 0, run.stderr)
    assert.match(run.stdout, /tessera_sessions and its indexes are in place/)
    const byHand = new Database(newPath('by-hand.db'))
    byHand.exec(printed.stdout)
    const created = new Database(migrated)
    const schema = (db: Database.Database) =>
      db
        .prepare(
          "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .all()
    try {
      assert.equal(schema(created).length, 3)
      assert.deepEqual(schema(created), schema(byHand))
    } finally {
      byHand.close()
      created.close()
    }
    const stats = await json(['stats', '--store', `sqlite:${migrated}`])
    assert.deepEqual([stats.live, stats.expired, stats.bytes], [0, 0, 0])
  })
})

describe('tessera CLI on a FileStore directory', () => {
  it('stats, list, revoke and purge-expired work on the session files', async () => {
    const directory = newPath('sessions')
    const store = new FileStore({ directory, cleanupIntervalMs: 0 })
    try {
      const bytes = async () =>
        readdirSync(directory)
          .filter((name) => name.endsWith('.json'))
          .map((name) => JSON.parse(readFileSync(join(directory, name), 'utf8')) as { data: string })
          .reduce((sum, record) => sum + Buffer.byteLength(record.data, 'utf8'), 0)
      const { anonymous, manager } = await exerciseStore(`file:${directory}`, store, bytes)
      assert.deepEqual(await json(['purge-expired', '--store', `file:${directory}`]), { deleted: 0 })
      // revoke --user alice took her expired sessions too; the anonymous session is untouched.
      assert.deepEqual((await request(manager, anonymous)).session.get('cart'), ['tea', 'ü'])
      const migrate = await tessera(['migrate', '--store', `file:${directory}`])
      assert.equal(migrate.code, 0)
      assert.match(migrate.stdout, /file: stores keep no schema/)
    } finally {
      await store.close()
    }
  })
})

describe('tessera CLI on PostgreSQL', { skip: postgresSkip }, () => {
  it('stats, list, revoke and purge-expired on a real table', async () => {
    const table = `${PG_PREFIX}sessions`
    const url = `${POSTGRES_URL}?table=${table}`
    const store = await PostgresStore.open({ connectionString: POSTGRES_URL, table, cleanupIntervalMs: 0 })
    try {
      const bytes = async () => (await store.stats(Date.now())).bytes
      await populate(store)
      const purge = await json(['purge-expired', '--store', url])
      assert.deepEqual(purge, { deleted: 2 })
      await withPg((client) => client.query(`TRUNCATE "${table}"`))
      await exerciseStore(url, store, bytes)
    } finally {
      await store.close()
    }
  })

  it('migrate creates the table in a fresh schema, exactly as migrate --print says', async () => {
    const [viaCli, byHand] = [`${PG_PREFIX}cli`, `${PG_PREFIX}hand`]
    await withPg(async (client) => {
      for (const schema of [viaCli, byHand]) await client.query(`CREATE SCHEMA "${schema}"`)
    })
    const url = (schema: string) => `${POSTGRES_URL}?schema=${schema}&table=web_sessions`
    const printed = await tessera(['migrate', '--print', '--store', url(byHand)])
    assert.equal(printed.code, 0, printed.stderr)
    assert.equal(printed.stdout, postgresSchemaSql({ schema: byHand, table: 'web_sessions' }))
    const migrated = await json(['migrate', '--store', url(viaCli)])
    assert.deepEqual(migrated, {
      store: url(viaCli),
      table: 'web_sessions',
      schema: viaCli,
      migrated: true,
    })
    await withPg(async (client) => {
      await client.query(printed.stdout)
      const shape = async (schema: string) => {
        const columns = await client.query(
          `SELECT column_name, data_type, is_nullable, collation_name FROM information_schema.columns
           WHERE table_schema = $1 AND table_name = 'web_sessions' ORDER BY ordinal_position`,
          [schema],
        )
        const indexes = await client.query<{ indexdef: string }>(
          'SELECT indexdef FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname',
          [schema],
        )
        return {
          columns: columns.rows,
          indexes: indexes.rows.map((row) => row.indexdef.replaceAll(schema, '<schema>')),
        }
      }
      const created = await shape(viaCli)
      assert.equal(created.columns.length, 5)
      assert.equal(created.indexes.length, 3)
      assert.deepEqual(created, await shape(byHand))
    })
    // Idempotent: a second run finds the table and changes nothing.
    assert.equal((await json(['migrate', '--store', url(viaCli)])).migrated, true)
  })
})

describe('tessera CLI on Redis', { skip: redisSkip }, () => {
  it('stats, list, revoke and purge-expired under a key prefix', async () => {
    const prefix = `${REDIS_PREFIX}a:`
    const url = `${REDIS_URL}?prefix=${encodeURIComponent(prefix)}`
    const store = await RedisStore.open({ url: REDIS_URL, prefix })
    try {
      const bytes = async () => (await store.stats(Date.now())).bytes
      const { manager, anonymous } = await exerciseStore(url, store, bytes)
      // alice's expired records are still held (their TTL, 30 minutes from the past manager's clock, has
      // not run out), but list pruned them from her index, so revoke --user could not reach them.
      assert.deepEqual(await json(['purge-expired', '--store', url]), { deleted: 2 })
      assert.deepEqual((await request(manager, anonymous)).session.get('cart'), ['tea', 'ü'])
    } finally {
      await store.close()
    }
  })
})

describe('tessera CLI: the rest', () => {
  it('secret prints a new 32-byte base64url secret on stdout, the hint on stderr, a new one each time', async () => {
    const [first, second] = await Promise.all([tessera(['secret']), tessera(['secret'])])
    for (const run of [first, second]) {
      assert.equal(run.code, 0, run.stderr)
      assert.match(run.stdout, /^[A-Za-z0-9_-]{43}\n$/)
      assert.equal(Buffer.from(run.stdout.trim(), 'base64url').length, 32)
      assert.match(run.stderr, /SESSION_SECRET/)
    }
    assert.notEqual(first.stdout, second.stdout)
    // The signer accepts it.
    new CookieSigner([first.stdout.trim()], 'sid')
    const longer = await tessera(['secret', '--bytes', '64'])
    assert.equal(Buffer.from(longer.stdout.trim(), 'base64url').length, 64)
    assert.equal((await tessera(['secret', '--bytes', '16'])).code, 2)
  })

  it('usage errors exit 2 with one line: unknown command or flag, missing or malformed URL, cookie: and memory:', async () => {
    const sqlite = `sqlite:${newPath('unused.db')}`
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /unknown command "frobnicate"/],
      [['stats', '--store', sqlite, '--frobnicate'], /Unknown option '--frobnicate'/],
      [['stats', '--store', sqlite, '--user', 'x'], /--user is not an option of stats/],
      [['stats'], /stats needs a store: pass --store <url> or set TESSERA_STORE/],
      [['stats', '--store', 'no-scheme'], /has no scheme/],
      [['stats', '--store', 'mongodb://db/x'], /unknown store scheme "mongodb:"/],
      [['stats', '--store', 'postgres://[::1/x'], /is not a valid URL/],
      [['list', '--store', sqlite], /list needs --user/],
      [['revoke', '--session', 'abcdef', '--store', sqlite], /full 64-character key/],
      [
        ['list', '--user', 'a', '--store', 'cookie:'],
        /cookie: sessions live sealed in each browser's cookie/,
      ],
      [['purge-expired', '--store', 'memory:'], /memory: sessions live inside the app's own process/],
      [['stats', '--store', sqlite, '--timeout', 'soon'], /--timeout takes a duration/],
    ]
    const runs = await Promise.all(cases.map(([args]) => tessera(args)))
    runs.forEach((run, i) => {
      const [args, message] = cases[i]!
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`)
      assert.match(run.stderr, message)
      assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr)
      assert.ok(run.stderr.startsWith('tessera: ') && !/\n\s+at /.test(run.stderr), 'no stack trace')
      assert.equal(run.stdout, '')
    })
    // Without a command: the help, on stderr, and exit 2; --help: on stdout, exit 0.
    const bare = await tessera([])
    assert.equal(bare.code, 2)
    assert.match(bare.stderr, /Usage: tessera <command>/)
    const help = await tessera(['--help'])
    assert.equal(help.code, 0)
    assert.match(help.stdout, /purge-expired/)
    assert.match(help.stdout, /Exit codes:/)
    assert.match((await tessera(['revoke', '--help'])).stdout, /--session <prefix> --user/)
  })

  it('an unreachable store exits 1 within seconds, without echoing the password in the URL', async () => {
    // A server that accepts connections and never answers: only --timeout ends the wait.
    const sockets = new Set<Socket>()
    const silent = createServer((socket) => void sockets.add(socket))
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    const port = (silent.address() as { port: number }).port
    try {
      const [refusedPg, refusedRedis, hanging] = await Promise.all([
        tessera(['stats', '--store', 'postgres://admin:hunter2secret@127.0.0.1:1/x']),
        tessera(['list', '--user', 'a', '--store', 'redis://:hunter2secret@127.0.0.1:1']),
        tessera(['stats', '--timeout', '1s', '--store', `postgres://127.0.0.1:${port}/x`]),
      ])
      for (const run of [refusedPg, refusedRedis, hanging]) {
        assert.equal(run.code, 1, run.stderr)
        assert.ok(run.ms < 8_000, `took ${run.ms} ms`)
        assert.ok(!run.stderr.includes('hunter2secret'), run.stderr)
        assert.equal(run.stdout, '')
      }
      assert.match(refusedPg.stderr, /^tessera: PostgresStore: .*ECONNREFUSED/)
      assert.match(refusedRedis.stderr, /^tessera: RedisStore: cannot connect .*ECONNREFUSED/)
      assert.match(hanging.stderr, /^tessera: the store did not answer within 1 s/)
      const missing = await tessera(['stats', '--store', `sqlite:${join(dir, 'typo.db')}`])
      assert.equal(missing.code, 1)
      assert.match(missing.stderr, /typo\.db" does not exist/)
    } finally {
      for (const socket of sockets) socket.destroy()
      silent.close()
    }
  })

  it('a missing driver package exits 3 and names the package to install', () => {
    const cli = pathToFileURL(CLI).href
    const run = (hidden: string[], url: string) =>
      runWithoutPackages(
        hidden,
        `import { main } from ${JSON.stringify(cli)}
        process.exitCode = await main(['stats', '--store', ${JSON.stringify(url)}], { stdout: process.stdout, stderr: process.stderr, env: {} })`,
      )
    const postgres = run(['pg'], 'postgres://127.0.0.1:5432/test')
    assert.equal(postgres.status, 3, postgres.stderr)
    assert.match(postgres.stderr, /^tessera: PostgresStore needs the pg driver: run `npm install pg`\n$/)
    const redis = run(['ioredis', 'redis'], 'redis://127.0.0.1:6379')
    assert.equal(redis.status, 3, redis.stderr)
    assert.match(redis.stderr, /npm install ioredis/)
  })

  it('TESSERA_STORE names the store when --store is absent', async () => {
    const path = newPath('env.db')
    const store = await SqliteStore.open({ path, cleanupIntervalMs: 0 })
    await populate(store)
    await store.close()
    const run = await tessera(['stats', '--json'], { TESSERA_STORE: `sqlite:${path}` })
    assert.equal(run.code, 0, run.stderr)
    assert.deepEqual((({ live, expired }) => ({ live, expired }))(JSON.parse(run.stdout)), {
      live: 4,
      expired: 2,
    })
  })

  it('purge-expired draws a progress bar on a terminal stderr only, never in --json mode', async () => {
    const path = newPath('progress.db')
    const now = Date.now()
    const expire = (count: number) => {
      const database = new Database(path)
      try {
        database.exec(sqliteSchemaSql())
        const insert = database.prepare(
          'INSERT INTO tessera_sessions (key, data, expires_at, version) VALUES (?, ?, ?, 1)',
        )
        database.transaction(() => {
          for (let i = 0; i < count; i++) insert.run(randomBytes(32).toString('hex'), '{}', now - HOUR)
        })()
      } finally {
        database.close()
      }
    }
    const purge = async (args: string[], isTTY: boolean) => {
      const out: string[] = []
      const err: string[] = []
      let tick = 0
      const code = await main(['purge-expired', '--store', `sqlite:${path}`, ...args], {
        stdout: { write: (text: string) => out.push(text) },
        stderr: { write: (text: string) => err.push(text), isTTY, columns: 80 },
        env: {},
        clock: () => (tick += 1_000), // every update comes "a while" after the last
      })
      return { code, stdout: out.join(''), stderr: err.join('') }
    }

    expire(2_500) // three batches of SqliteStore's 1,000
    const tty = await purge([], true)
    assert.equal(tty.code, 0)
    assert.equal(tty.stdout, 'deleted 2,500 expired sessions\n')
    assert.match(tty.stderr, /\rpurging \[#{12}-{18}\] 40% 1,000\/2,500/)
    assert.match(tty.stderr, /\rpurging \[#{30}\] 100% 2,500\/2,500/)
    assert.ok(tty.stderr.endsWith('\r\u001b[K'), 'the bar is cleared at the end')

    for (const [args, isTTY] of [
      [['--json'], true],
      [[], false],
    ] as const) {
      expire(1_500)
      const quiet = await purge([...args], isTTY)
      assert.equal(quiet.code, 0)
      assert.equal(quiet.stderr, '')
      if (isTTY) assert.deepEqual(JSON.parse(quiet.stdout), { deleted: 1_500 })
      else assert.equal(quiet.stdout, 'deleted 1,500 expired sessions\n')
    }
  })
})

/** Runs `work` with a PostgreSQL client of its own. */
async function withPg<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  // pg takes the default user from $USER only; like psql (and the store), fall back to the OS user. It goes
  // into the URL, since pg lets the connection string override a `user` option.
  const url = new URL(POSTGRES_URL)
  if (url.username === '' && !process.env.PGUSER && !process.env.USER) url.username = userInfo().username
  const client = new pg.Client({ connectionString: url.toString() })
  await client.connect()
  try {
    return await work(client)
  } finally {
    await client.end()
  }
}
