import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { runWithoutPackages } from '../../test/support.js'
import { SessionConfigError, StoreError } from '../errors.js'
import type { StoreRecord } from '../store.js'
import { assertEveryCallFailsWithStoreError, runStoreContract } from '../testing/store-contract.js'
import {
  type PostgresPool,
  type PostgresPoolClient,
  type PostgresQueryable,
  PostgresStore,
  postgresSchemaSql,
} from './postgres.js'

const URL_ENV = 'TESSERA_TEST_POSTGRES_URL'
const connectionString = withDefaultUser(process.env[URL_ENV] ?? 'postgres://127.0.0.1:5432/test')

// Every table this run makes starts with PREFIX, so the after hook can drop them all, whatever failed.
const PREFIX = `tessera_test_${randomBytes(4).toString('hex')}_`
let tables = 0
const newTable = () => `${PREFIX}${++tables}`
const SCHEMA = `${PREFIX}schema`
const RETRY_SCHEMA = `${PREFIX}retry`

const admin = new pg.Pool({ connectionString, connectionTimeoutMillis: 3000, max: 4 })
admin.on('error', () => {}) // a dropped idle connection must not crash the run; queries still fail loudly
const unreachable = await admin.query('SELECT 1').then(
  () => undefined,
  (error: Error) =>
    `PostgreSQL is not reachable at ${new URL(connectionString).host} (${error.message}); set ${URL_ENV} to point these tests at a server`,
)
// Under CI a missing service is a failure, never a skip; on a laptop the suite skips with one notice.
if (unreachable !== undefined) {
  if (process.env.CI === 'true') it('reaches PostgreSQL (CI=true)', () => assert.fail(unreachable))
  else console.log(`# skipped: ${unreachable}`)
}
const skip = unreachable

const pool = new pg.Pool({ connectionString, max: 10 })
pool.on('error', () => {})
const dir = mkdtempSync(join(tmpdir(), 'tessera-postgres-'))

after(async () => {
  await pool.end()
  if (unreachable === undefined) {
    const { rows } = await admin.query<{ name: string }>(
      `SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables WHERE starts_with(tablename, $1)`,
      [PREFIX],
    )
    for (const { name } of rows) await admin.query(`DROP TABLE IF EXISTS ${name}`)
    for (const schema of [SCHEMA, RETRY_SCHEMA])
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  }
  await admin.end()
  rmSync(dir, { recursive: true, force: true })
})

runStoreContract({
  name: 'PostgresStore (user-supplied pg.Pool)',
  create: () => new PostgresStore({ pool, table: newTable(), cleanupIntervalMs: 0 }),
  skip,
})

runStoreContract({
  name: 'PostgresStore.open (own pool)',
  create: () => PostgresStore.open({ connectionString, table: newTable(), cleanupIntervalMs: 0 }),
  skip,
})

runStoreContract({
  name: 'PostgresStore (queryable without connect(): uncoordinated cleanup)',
  create: () => new PostgresStore({ pool: queryOnly(pool), table: newTable(), cleanupIntervalMs: 0 }),
  skip,
})

const T = 1_700_000_000_000
const HOUR = 3_600_000
const key = (n: number) => n.toString(16).padStart(64, '0')
const record = (data = '{}', expiresAt = T + HOUR, userId?: string): StoreRecord => ({
  data,
  expiresAt,
  version: 1,
  userId,
})

describe('PostgresStore', { skip }, () => {
  it('keeps data byte for byte where jsonb would not: order, duplicates, spacing, escapes', async () => {
    const store = new PostgresStore({ pool, table: newTable(), cleanupIntervalMs: 0 })
    const samples = [
      '{"b":1,"a":2}',
      '{"a":1,"a":2}',
      '{ "n" : 1.50 ,\t"e": 1e3 }',
      JSON.stringify({ lone: '\ud800', nul: '\u0000' }),
    ]
    for (const [i, data] of samples.entries()) {
      await store.create(key(i), record(data), T)
      assert.equal((await store.get(key(i), T))?.data, data)
    }
    await store.close()
  })

  describe('cleanup', () => {
    it('deletes 10,000 expired rows in batches and leaves live ones untouched', async () => {
      const table = newTable()
      const log: string[] = []
      const store = new PostgresStore({ pool: recording(pool, log), table, cleanupIntervalMs: 0 })
      await store.create(key(1), record('{"live":true}', T + HOUR, 'u'), T) // creates the table
      for (let i = 2; i <= 50; i++) await store.create(key(i), record('{"live":true}', T + HOUR, 'u'), T)
      await insertExpired(table, 10_000, T + 60_000)
      log.length = 0
      assert.equal(await store.cleanup(T + 60_000), 10_000)
      const batches = log.filter((sql) => sql.includes('SKIP LOCKED')).length
      assert.equal(batches, 11, '10 full batches of 1000, then one that finds nothing')
      assert.equal(await count(table), 50)
      assert.equal((await store.listByUser('u', T)).length, 50)
      assert.deepEqual(await store.get(key(50), T), {
        data: '{"live":true}',
        expiresAt: T + HOUR,
        version: 1,
        userId: 'u',
      })
      await store.close()
    })

    it('lets one instance sweep while another finds the lock held and resolves 0 at once', async () => {
      const table = newTable()
      const [poolA, poolB] = [new pg.Pool({ connectionString }), new pg.Pool({ connectionString })]
      const gate = deferred()
      const reachedBatch = deferred()
      let sweeperPid = 0
      // Holds the first batch of A's sweep until the test opens the gate; the lock is real.
      const gated: PostgresPool = {
        query: (text, values) => poolA.query(text, values),
        connect: async () => {
          const client = await poolA.connect()
          sweeperPid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
          return intercept(client, async (text) => {
            if (text.includes('SKIP LOCKED')) {
              reachedBatch.resolve()
              await gate.promise
            }
          })
        },
      }
      const a = new PostgresStore({ pool: gated, table, cleanupIntervalMs: 0 })
      const b = new PostgresStore({ pool: poolB, table, cleanupIntervalMs: 0 })
      try {
        await a.get(key(1), T) // creates the table
        await insertExpired(table, 2000, T)
        const sweepA = a.cleanup(T + 60_000)
        await reachedBatch.promise
        const held = await admin.query(
          `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $1`,
          [sweeperPid],
        )
        assert.equal(held.rowCount, 1, 'A holds an advisory lock while it sweeps')
        const started = performance.now()
        assert.equal(await b.cleanup(T + 60_000), 0, 'B skips its turn')
        assert.ok(performance.now() - started < 1000, 'B did not wait for the lock')
        assert.equal(await a.cleanup(T + 60_000), 0, "A's own second call skips too")
        gate.resolve()
        assert.equal(await sweepA, 2000)
        const released = await admin.query(
          `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = $1`,
          [sweeperPid],
        )
        assert.equal(released.rowCount, 0, 'the lock is released before the connection goes back')
        assert.equal(await count(table), 0)
      } finally {
        gate.resolve()
        await a.close()
        await b.close()
        await poolA.end()
        await poolB.end()
      }
    })

    it('two instances on two pools sweeping at the same moment do the work once', async () => {
      const table = newTable()
      const pools = [new pg.Pool({ connectionString }), new pg.Pool({ connectionString })] as const
      const stores = pools.map(
        (p) => new PostgresStore({ pool: p, table, cleanupIntervalMs: 0, cleanupBatchSize: 200 }),
      )
      try {
        await stores[0]!.create(key(1), record('{}', T + HOUR, 'u'), T)
        await insertExpired(table, 3000, T)
        const counts = await Promise.all(stores.map((store) => store.cleanup(T + 60_000)))
        // With the lock, whichever comes second either finds it held or finds nothing left: never both > 0.
        assert.deepEqual(
          [...counts].sort((x, y) => x - y),
          [0, 3000],
        )
        assert.equal(await count(table), 1)
      } finally {
        for (const store of stores) await store.close()
        for (const p of pools) await p.end()
      }
    })

    it('without connect(), concurrent sweeps split the rows and count each once', async () => {
      const table = newTable()
      const stores = [1, 2, 3].map(
        () =>
          new PostgresStore({
            pool: queryOnly(pool),
            table,
            cleanupIntervalMs: 0,
            cleanupBatchSize: 100,
          }),
      )
      try {
        await stores[0]!.get(key(1), T)
        await insertExpired(table, 3000, T)
        const counts = await Promise.all(stores.map((store) => store.cleanup(T + 60_000)))
        assert.equal(
          counts.reduce((sum, n) => sum + n, 0),
          3000,
          `counts ${counts.join(' + ')}`,
        )
        assert.equal(await count(table), 0)
      } finally {
        for (const store of stores) await store.close()
      }
    })

    it('close() stops a running sweep after its current batch and waits for it', async () => {
      const table = newTable()
      const gate = deferred()
      const reachedBatch = deferred()
      const gated: PostgresPool = {
        query: (text, values) => pool.query(text, values),
        connect: async () =>
          intercept(await pool.connect(), async (text) => {
            if (text.includes('SKIP LOCKED')) {
              reachedBatch.resolve()
              await gate.promise
            }
          }),
      }
      const store = new PostgresStore({ pool: gated, table, cleanupIntervalMs: 0, cleanupBatchSize: 1000 })
      await store.get(key(1), T)
      await insertExpired(table, 3000, T)
      const sweep = store.cleanup(T + 60_000)
      await reachedBatch.promise
      let closed = false
      const closing = store.close().then(() => {
        closed = true
      })
      await sleep(50)
      assert.equal(closed, false, 'close() waits for the sweep')
      gate.resolve()
      await closing
      assert.equal(await sweep, 1000, 'one batch, then it stopped')
      assert.equal(await count(table), 2000)
    })

    it('runs on the timer with the injected clock, and close() waits for that sweep', async (t) => {
      t.mock.timers.enable({ apis: ['setInterval'] })
      const table = newTable()
      let now = T
      const errors: StoreError[] = []
      const store = new PostgresStore({
        pool,
        table,
        cleanupIntervalMs: 60_000,
        clock: () => now,
        onCleanupError: (error) => errors.push(error),
      })
      await store.create(key(1), record('{}', T + 1000), T)
      await store.create(key(2), record('{}', T + HOUR), T)
      now = T + 1000
      t.mock.timers.tick(60_000)
      await store.close() // waits for the sweep the tick started
      assert.equal(await count(table), 1, 'swept by the timer')
      assert.notEqual(await store.get(key(2), T), undefined)
      t.mock.timers.tick(60_000) // stopped: nothing runs, nothing fails
      assert.deepEqual(errors, [])
    })

    it('reports a failing timer-driven sweep to onCleanupError instead of crashing', async (t) => {
      t.mock.timers.enable({ apis: ['setInterval'] })
      const ended = new pg.Pool({ connectionString })
      await ended.end()
      const errors: StoreError[] = []
      const store = new PostgresStore({
        pool: ended,
        table: newTable(),
        cleanupIntervalMs: 1000,
        onCleanupError: (error) => errors.push(error),
      })
      t.mock.timers.tick(1000)
      await store.close()
      assert.equal(errors.length, 1)
      assert.ok(errors[0] instanceof StoreError)
      assert.ok(errors[0].cause instanceof Error)
    })

    it('leaves a process with only the cleanup timer and an idle pool free to exit', () => {
      const table = newTable()
      const script = `
        const { PostgresStore } = await import(${JSON.stringify(new URL('./postgres.ts', import.meta.url).href)})
        const store = await PostgresStore.open({ connectionString: process.env.PG_URL, table: ${JSON.stringify(table)}, cleanupIntervalMs: 10 })
        await store.create('k', { data: '{}', expiresAt: Date.now() + 60_000, version: 1 }, Date.now())
      `
      const child = runNode(['--import', 'tsx', '--input-type=module', '-e', script])
      assert.equal(child.error, undefined, 'the process did not exit by itself within 10 s')
      assert.equal(child.status, 0, child.stderr)
    })
  })

  describe('table', () => {
    it('is created lazily, once, even when the first calls arrive together', async () => {
      const table = newTable()
      const log: string[] = []
      const store = new PostgresStore({ pool: recording(pool, log), table, cleanupIntervalMs: 0 })
      assert.equal(log.length, 0, 'the constructor sends nothing')
      await Promise.all(Array.from({ length: 10 }, (_, i) => store.get(key(i), T)))
      await store.create(key(1), record(), T)
      assert.equal(log.filter((sql) => sql.includes('to_regclass')).length, 1)
      assert.equal(log.filter((sql) => sql.includes('CREATE TABLE')).length, 1)
      await store.close()

      // A store on an existing table checks it and sends no DDL, which would take a SHARE lock.
      const again: string[] = []
      const second = new PostgresStore({ pool: recording(pool, again), table, cleanupIntervalMs: 0 })
      assert.notEqual(await second.get(key(1), T), undefined)
      assert.equal(again.filter((sql) => sql.includes('CREATE')).length, 0)
      await second.close()
    })

    it('survives app servers creating the same table at the same moment', async () => {
      const pools = [1, 2, 3, 4].map(() => new pg.Pool({ connectionString }))
      try {
        for (let round = 0; round < 5; round++) {
          const table = newTable()
          const stores = pools.map((p) => new PostgresStore({ pool: p, table, cleanupIntervalMs: 0 }))
          const created = await Promise.all(stores.map((store, i) => store.create(key(i), record(), T)))
          assert.deepEqual(created, [true, true, true, true])
          assert.equal(await count(table), 4)
          for (const store of stores) await store.close()
        }
      } finally {
        for (const p of pools) await p.end()
      }
    })

    it('tries again after a failed creation', async () => {
      const schema = RETRY_SCHEMA
      const store = new PostgresStore({ pool, schema, table: newTable(), cleanupIntervalMs: 0 })
      await assert.rejects(store.get(key(1), T), /schema of .* does not exist/) // not created yet
      await admin.query(`CREATE SCHEMA "${schema}"`)
      assert.equal(await store.create(key(1), record(), T), true)
      await store.close()
    })

    it('goes into the given schema, as json, with its two indexes', async () => {
      await admin.query(`CREATE SCHEMA IF NOT EXISTS "${SCHEMA}"`)
      const table = newTable()
      const store = new PostgresStore({ pool, schema: SCHEMA, table, cleanupIntervalMs: 0 })
      await store.create(key(1), record('{"a": [1, 2]}', T + HOUR, 'u'), T)
      const columns = await admin.query<{ column_name: string; data_type: string; is_nullable: string }>(
        `SELECT column_name, data_type, is_nullable FROM information_schema.columns
         WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`,
        [SCHEMA, table],
      )
      assert.deepEqual(
        columns.rows.map((c) => `${c.column_name} ${c.data_type} ${c.is_nullable}`),
        ['key text NO', 'data json NO', 'expires_at bigint NO', 'version integer NO', 'user_id text YES'],
      )
      const indexes = await admin.query('SELECT 1 FROM pg_indexes WHERE schemaname = $1 AND tablename = $2', [
        SCHEMA,
        table,
      ])
      assert.equal(indexes.rowCount, 3, 'primary key, expires_at, user_id')
      const viaSql = await admin.query(`SELECT data->>'a' AS a FROM "${SCHEMA}"."${table}"`)
      assert.deepEqual(viaSql.rows, [{ a: '[1, 2]' }], 'json stays queryable')
      await store.close()
    })

    it('postgresSchemaSql() applied by hand works with createTable: false, and twice is harmless', async () => {
      const table = newTable()
      const sql = postgresSchemaSql({ table })
      const statements = sql.replace(/--.*$/gm, '') // the comments explain why not jsonb
      assert.match(statements, /data json NOT NULL/)
      assert.doesNotMatch(statements, /jsonb/i)
      await admin.query(sql)
      await admin.query(sql)
      const log: string[] = []
      const store = new PostgresStore({
        pool: recording(pool, log),
        table,
        createTable: false,
        cleanupIntervalMs: 0,
      })
      assert.equal(await store.create(key(1), record('{"by":"hand"}', T + HOUR, 'u'), T), true)
      assert.equal((await store.get(key(1), T))?.data, '{"by":"hand"}')
      assert.equal(log.length, 2, 'one round trip per call, no checks')
      await store.close()
    })

    it('with createTable: false, a missing table fails each call with StoreError saying what to do', async () => {
      const store = new PostgresStore({ pool, table: newTable(), createTable: false, cleanupIntervalMs: 0 })
      await assert.rejects(store.get(key(1), T), (error: unknown) => {
        assert.ok(error instanceof StoreError)
        assert.equal((error.cause as { code?: string }).code, '42P01')
        assert.match(error.message, /does not exist.*postgresSchemaSql/)
        return true
      })
      await assert.rejects(store.cleanup(T), StoreError)
      await store.close()
      await assert.rejects(
        PostgresStore.open({ connectionString, table: newTable(), createTable: false }),
        StoreError,
        'open() checks the table at startup',
      )
    })

    it('shortens index names that would pass 63 bytes, keeping them distinct', async () => {
      const table = `${PREFIX}${'x'.repeat(63 - PREFIX.length)}`
      const sql = postgresSchemaSql({ table })
      const names = [...sql.matchAll(/CREATE INDEX IF NOT EXISTS "([^"]+)"/g)].map((m) => m[1]!)
      assert.equal(names.length, 2)
      for (const name of names) assert.ok(name.length <= 63, name)
      assert.notEqual(names[0], names[1])
      const store = new PostgresStore({ pool, table, cleanupIntervalMs: 0 })
      await store.get(key(1), T)
      const indexes = await admin.query('SELECT 1 FROM pg_indexes WHERE tablename = $1', [table])
      assert.equal(indexes.rowCount, 3)
      await store.close()
    })
  })

  describe('SQL safety', () => {
    it('binds every key, user id and value as a parameter', async () => {
      const canary = newTable()
      await admin.query(`CREATE TABLE "${canary}" (n int)`)
      const table = newTable()
      const store = new PostgresStore({ pool, table, cleanupIntervalMs: 0 })
      const hostile = [
        `'; DROP TABLE "${canary}"; --`,
        `'); DROP TABLE "${table}"; --`,
        `" OR 1=1 --`,
        '$1',
        '\\',
        `x' OR 'x'='x`,
      ]
      for (const [i, k] of hostile.entries()) {
        assert.equal(await store.create(k, record(`{"i":${i}}`, T + HOUR, k), T), true)
      }
      for (const [i, k] of hostile.entries()) {
        assert.equal((await store.get(k, T))?.data, `{"i":${i}}`)
        assert.deepEqual(
          (await store.listByUser(k, T)).map((entry) => entry.key),
          [k],
        )
        assert.equal(await store.touch(k, T + 2 * HOUR, T), true)
        assert.equal(await store.update(k, { ...record('{}', T + HOUR, k), version: 2 }, 1, T), true)
      }
      assert.equal(await store.destroyByUser(hostile[0]!, { exceptKey: hostile[1] }), 1)
      await store.destroy(hostile[1]!)
      assert.equal(await count(table), hostile.length - 2)
      assert.equal(await store.cleanup(T + 10 * HOUR), hostile.length - 2)
      assert.equal(await count(canary), 0, 'the canary table survives')
      await store.close()
    })

    it('rejects table and schema names that are not plain identifiers with SessionConfigError', async () => {
      const bad = [
        '',
        '1sessions',
        'sessions; DROP TABLE users',
        'my-sessions',
        'sess"ions',
        "sess'ions",
        'séance',
        'public.sessions',
        'a'.repeat(64),
      ]
      for (const name of bad) {
        assert.throws(() => new PostgresStore({ pool, table: name }), SessionConfigError, name)
        assert.throws(() => new PostgresStore({ pool, schema: name }), SessionConfigError, name)
        assert.throws(() => postgresSchemaSql({ table: name }), SessionConfigError, name)
        assert.throws(() => postgresSchemaSql({ schema: name }), SessionConfigError, name)
        await assert.rejects(PostgresStore.open({ connectionString, table: name }), SessionConfigError, name)
      }
      for (const table of ['_s', 'Sessions2', `t${'a'.repeat(62)}`]) {
        await new PostgresStore({ pool, table, cleanupIntervalMs: 0 }).close()
      }
    })

    it('rejects other invalid options with SessionConfigError', async () => {
      for (const cleanupBatchSize of [0, -5, 2.5]) {
        assert.throws(() => new PostgresStore({ pool, cleanupBatchSize }), SessionConfigError)
      }
      for (const cleanupIntervalMs of [-1, 1.5, 2 ** 31]) {
        assert.throws(() => new PostgresStore({ pool, cleanupIntervalMs }), SessionConfigError)
      }
      const notBoolean = 'yes' as unknown as boolean
      assert.throws(() => new PostgresStore({ pool, createTable: notBoolean }), SessionConfigError)
      const notAPool = {} as unknown as PostgresPool
      assert.throws(() => new PostgresStore({ pool: notAPool }), SessionConfigError)
      await assert.rejects(PostgresStore.open({ connectionString: '' }), SessionConfigError)
    })
  })

  describe('pools', () => {
    it('close() leaves a user-supplied pool open', async () => {
      const own = new pg.Pool({ connectionString })
      const store = new PostgresStore({ pool: own, table: newTable(), cleanupIntervalMs: 0 })
      await store.create(key(1), record(), T)
      await store.close()
      await store.close()
      assert.equal(own.ended, false)
      assert.deepEqual((await own.query('SELECT 1 AS one')).rows, [{ one: 1 }])
      await own.end()
    })

    it('close() ends the pool open() created; later calls reject with StoreError', async () => {
      const store = await PostgresStore.open({ connectionString, table: newTable(), cleanupIntervalMs: 0 })
      await store.create(key(1), record(), T)
      await store.close()
      await assert.rejects(store.get(key(1), T), (error: unknown) => {
        assert.ok(error instanceof StoreError)
        assert.match(String((error.cause as Error).message), /after calling end/)
        return true
      })
    })

    it('open() fails at startup with StoreError when the server refuses the connection', async () => {
      await assert.rejects(
        PostgresStore.open({ connectionString: 'postgres://127.0.0.1:1/none', cleanupIntervalMs: 0 }),
        (error: unknown) => error instanceof StoreError && error.cause instanceof Error,
      )
    })

    it('rejects with StoreError, the driver error as cause, once the user has ended the pool', async () => {
      const own = new pg.Pool({ connectionString })
      const store = new PostgresStore({ pool: own, table: newTable(), cleanupIntervalMs: 0 })
      await store.get(key(1), T) // the table exists; from here every failure is the pool's
      await own.end()
      await assertEveryCallFailsWithStoreError(store, T)
      await store.close()
    })

    it('reads rows correctly whatever type parsers the user pool has set', async () => {
      const types = new pg.TypeOverrides()
      types.setTypeParser(pg.types.builtins.INT8, (value) => BigInt(value))
      types.setTypeParser(pg.types.builtins.JSON, (value) => `parsed:${value}`)
      const own = new pg.Pool({ connectionString, types })
      const store = new PostgresStore({ pool: own, table: newTable(), cleanupIntervalMs: 0 })
      try {
        await store.create(key(1), record(' {"a" : 1}', T + HOUR, 'u'), T)
        assert.deepEqual(await store.get(key(1), T), {
          data: ' {"a" : 1}',
          expiresAt: T + HOUR,
          version: 1,
          userId: 'u',
        })
      } finally {
        await store.close()
        await own.end()
      }
    })

    it('names the package to install when pg cannot be loaded, and needs it only for open()', () => {
      // pg looks uninstalled in the child process.
      const script = `
        const { PostgresStore } = await import(${JSON.stringify(new URL('./postgres.ts', import.meta.url).href)})
        const fake = { query: async () => ({ rows: [], rowCount: 0 }) }
        const injected = new PostgresStore({ pool: fake, createTable: false, cleanupIntervalMs: 0 })
        const miss = await injected.get('k', Date.now())
        try {
          await PostgresStore.open({ connectionString: 'postgres://127.0.0.1:1/none' })
          console.log(JSON.stringify({ opened: true }))
        } catch (error) {
          console.log(JSON.stringify({ miss: miss ?? null, code: error.code, message: error.message }))
        }
      `
      const child = runWithoutPackages(['pg'], script, { env: { ...process.env, PG_URL: connectionString } })
      assert.equal(child.status, 0, child.stderr)
      const outcome = JSON.parse(child.stdout) as { miss: null; code: string; message: string }
      assert.equal(outcome.miss, null)
      assert.equal(outcome.code, 'ERR_SESSION_CONFIG')
      assert.match(outcome.message, /npm install pg/)
    })
  })

  describe('capacity', () => {
    it('measures bytes per session: 10,000 sessions with a ~200-byte payload', async (t) => {
      const table = newTable()
      const store = new PostgresStore({ pool, table, cleanupIntervalMs: 0 })
      const payload = (i: number) =>
        JSON.stringify({
          v: 1,
          createdAt: T + i,
          lastSeenAt: T + i,
          data: {
            userId: `user-${i % 2000}`,
            csrf: randomBytes(16).toString('hex'),
            cart: ['sku-1'],
          },
          client: { ua: 'Mozilla/5.0 Firefox/128', ip: '203.0.113.7' },
        })
      const bytes = Buffer.byteLength(payload(0))
      assert.ok(bytes >= 190 && bytes <= 215, `payload is ${bytes} bytes`)
      const n = 10_000
      const keys = Array.from({ length: n }, () => randomBytes(32).toString('hex'))
      await store.create(keys[0]!, record(payload(0), T + HOUR, 'user-0'), T) // creates the table
      // The other rows in one statement, exactly as create() writes them: 10,000 commits would only time fsync.
      await admin.query(
        `INSERT INTO "${table}" (key, data, expires_at, version, user_id)
         SELECT key, data, $3, 1, user_id FROM unnest($1::text[], $2::json[], $4::text[]) AS r(key, data, user_id)`,
        [
          keys.slice(1),
          keys.slice(1).map((_, i) => payload(i + 1)),
          T + HOUR,
          keys.slice(1).map((_, i) => `user-${(i + 1) % 2000}`),
        ],
      )
      assert.equal((await store.listByUser('user-1', T)).length, 5)
      // As autovacuum would in production: the steady-state size, free-space and visibility maps included.
      await admin.query(`VACUUM "${table}"`)
      const { rows } = await admin.query<{ total: string; heap: string; indexes: string }>(
        `SELECT pg_total_relation_size($1) AS total, pg_relation_size($1) AS heap, pg_indexes_size($1) AS indexes`,
        [`"${table}"`],
      )
      const { total, heap, indexes } = rows[0]!
      const perSession = Number(total) / n
      t.diagnostic(
        `bytes per session: ${perSession.toFixed(0)} total (heap ${(Number(heap) / n).toFixed(0)}, ` +
          `indexes ${(Number(indexes) / n).toFixed(0)}) for ${n} sessions with a ${bytes}-byte payload`,
      )
      assert.ok(perSession > bytes && perSession < 4 * bytes, `${perSession} bytes per session`)
      await store.close()
    })
  })
})

/** libpq (psql) falls back to the OS user name; pg only reads USER/PGUSER, unset in some containers. */
function withDefaultUser(raw: string): string {
  const url = new URL(raw)
  if (url.username === '' && !process.env.PGUSER && !process.env.USER) url.username = userInfo().username
  return url.toString()
}

async function count(table: string): Promise<number> {
  const { rows } = await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${table}"`)
  return rows[0]!.n
}

/** Inserts `n` rows expiring at or before `expiresAt`, straight into the table, in one statement. */
async function insertExpired(table: string, n: number, expiresAt: number): Promise<void> {
  await admin.query(
    `INSERT INTO "${table}" (key, data, expires_at, version, user_id)
     SELECT encode(sha256(convert_to($3 || i, 'UTF8')), 'hex'), '{}', $1::bigint - (i % 60) * 1000, 1,
            CASE WHEN i % 3 = 0 THEN 'u' END
     FROM generate_series(1, $2::int) AS i`,
    [expiresAt, n, randomBytes(8).toString('hex')],
  )
}

/** The pool seen only through query(), as a wrapper or a PgBouncer-safe setup would pass it. */
function queryOnly(target: pg.Pool): PostgresQueryable {
  return { query: (text, values) => target.query(text, values) }
}

/** Passes every statement, on the pool and on checked-out connections, through to `log`. */
function recording(target: pg.Pool, log: string[]): PostgresPool {
  return {
    query: (text, values) => {
      log.push(text)
      return target.query(text, values)
    },
    connect: async () =>
      intercept(await target.connect(), async (text) => {
        log.push(text)
      }),
  }
}

/** A checked-out connection whose queries first go through `before`. */
function intercept(client: pg.PoolClient, before: (text: string) => Promise<void>): PostgresPoolClient {
  return {
    query: async (text, values) => {
      await before(text)
      return client.query(text, values)
    },
    release: (destroy) => client.release(destroy),
    on: (event, listener) => client.on(event, listener),
    removeListener: (event, listener) => client.removeListener(event, listener),
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((r) => {
    resolve = r
  })
  return { promise, resolve }
}

function runNode(args: string[]) {
  return spawnSync(process.execPath, args, {
    timeout: 10_000,
    encoding: 'utf8',
    env: { ...process.env, PG_URL: connectionString },
  })
}
