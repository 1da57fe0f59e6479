import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import Database from 'better-sqlite3'
import { runWithoutPackages } from '../../test/support.js'
import { SessionConfigError, StoreError } from '../errors.js'
import type { StoreRecord } from '../store.js'
import { assertEveryCallFailsWithStoreError, runStoreContract } from '../testing/store-contract.js'
import { type SqliteDatabase, type SqliteStatement, SqliteStore } from './sqlite.js'

const dir = mkdtempSync(join(tmpdir(), 'tessera-sqlite-'))
let files = 0
const newPath = () => join(dir, `store-${++files}.db`)

// The user-owned connection outlives every store built on it, so one table per create() isolates them.
const shared = new Database(join(dir, 'shared.db'))
let tables = 0

after(() => {
  shared.close()
  rmSync(dir, { recursive: true, force: true })
})

runStoreContract({ name: 'SqliteStore.open (own file)', create: () => SqliteStore.open({ path: newPath() }) })

runStoreContract({
  name: 'SqliteStore (user-supplied better-sqlite3, custom table)',
  create: () =>
    new SqliteStore({ database: shared, table: `custom_sessions_${++tables}`, cleanupIntervalMs: 0 }),
})

const nodeSqlite: { DatabaseSync: new (path: string) => SqliteDatabase } | undefined = await import(
  'node:sqlite' as string
).catch(() => undefined)

runStoreContract({
  name: 'SqliteStore (node:sqlite DatabaseSync)',
  create: () => new SqliteStore({ database: new nodeSqlite!.DatabaseSync(':memory:'), cleanupIntervalMs: 0 }),
  skip: nodeSqlite ? undefined : 'node:sqlite needs Node 22.5+',
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

describe('SqliteStore', () => {
  describe('files it opens itself', () => {
    it('keeps sessions across close and reopen of the same file', async () => {
      const path = newPath()
      const first = await SqliteStore.open({ path })
      await first.create(key(1), record('{"cart":["tea"]}', T + HOUR, 'u'), T)
      await first.close()
      const second = await SqliteStore.open({ path })
      assert.deepEqual(await second.get(key(1), T), {
        data: '{"cart":["tea"]}',
        expiresAt: T + HOUR,
        version: 1,
        userId: 'u',
      })
      await second.close()
    })

    it('creates the parent directory and turns on WAL mode', async () => {
      const path = join(dir, 'nested', 'deeper', 'sessions.db')
      const store = await SqliteStore.open({ path })
      const probe = new Database(path)
      try {
        assert.equal(probe.pragma('journal_mode', { simple: true }), 'wal')
      } finally {
        probe.close()
        await store.close()
      }
    })

    it('closes the file on close(), after which calls reject with StoreError', async () => {
      const store = await SqliteStore.open({ path: newPath() })
      await store.close()
      await assert.rejects(store.get(key(1), T), StoreError)
    })

    it('validates options before touching the disk', async () => {
      const path = join(dir, 'never', 'created.db')
      await assert.rejects(SqliteStore.open({ path, table: 'no-dashes' }), SessionConfigError)
      assert.equal(existsSync(join(dir, 'never')), false)
    })

    it('leaves a process with only the cleanup timer free to exit', () => {
      const script = `
        const { SqliteStore } = await import(${JSON.stringify(new URL('./sqlite.ts', import.meta.url).href)})
        const store = await SqliteStore.open({ path: ${JSON.stringify(newPath())}, cleanupIntervalMs: 10 })
        await store.create('k', { data: '{}', expiresAt: Date.now() + 60_000, version: 1 }, Date.now())
      `
      const child = runNode(['--import', 'tsx', '--input-type=module', '-e', script])
      assert.equal(child.error, undefined, 'the process did not exit by itself within 10 s')
      assert.equal(child.status, 0, child.stderr)
    })

    it('names the package to install when no driver can be loaded', () => {
      // better-sqlite3 looks uninstalled in the child process.
      const script = `
        const { SqliteStore } = await import(${JSON.stringify(new URL('./sqlite.ts', import.meta.url).href)})
        try {
          await (await SqliteStore.open({ path: ':memory:' })).close()
          console.log(JSON.stringify({ opened: true }))
        } catch (error) {
          console.log(JSON.stringify({ code: error.code, message: error.message }))
        }
      `
      const child = runWithoutPackages(['better-sqlite3'], script)
      assert.equal(child.status, 0, child.stderr)
      const outcome: unknown = JSON.parse(child.stdout)
      if (nodeSqlite) {
        assert.deepEqual(outcome, { opened: true }) // fell back to node:sqlite
      } else {
        assert.equal((outcome as { code: string }).code, 'ERR_SESSION_CONFIG')
        assert.match((outcome as { message: string }).message, /npm install better-sqlite3@12/)
      }
    })
  })

  describe('user-supplied databases', () => {
    it('close() leaves the database open and its journal mode alone', async () => {
      const database = new Database(newPath())
      const store = new SqliteStore({ database, cleanupIntervalMs: 0 })
      await store.create(key(1), record(), T)
      await store.close()
      assert.equal(database.open, true)
      assert.equal(database.pragma('journal_mode', { simple: true }), 'delete')
      assert.deepEqual(database.prepare('SELECT count(*) AS n FROM tessera_sessions').get(), { n: 1 })
      database.close()
    })

    it('rejects with StoreError, the driver error as cause, once the user has closed the database', async () => {
      const database = new Database(':memory:')
      const store = new SqliteStore({ database, cleanupIntervalMs: 0 })
      database.close()
      await assertEveryCallFailsWithStoreError(store, T)
      await store.close() // nothing of its own to close: still fine
    })

    it('wraps a failure to create the table in StoreError', () => {
      const path = newPath()
      new Database(path).close()
      const readOnly = new Database(path, { readonly: true })
      assert.throws(() => new SqliteStore({ database: readOnly }), StoreError)
      readOnly.close()
    })
  })

  describe('options', () => {
    it('rejects a table name that is not a plain identifier with SessionConfigError', () => {
      const bad = [
        '',
        '1sessions',
        'sessions; DROP TABLE users',
        'my-sessions',
        'sess"ions',
        'séance',
        'a'.repeat(64),
      ]
      for (const table of bad) {
        assert.throws(() => new SqliteStore({ database: shared, table }), SessionConfigError, table)
      }
      for (const table of ['_s', 'Sessions2', `t${'a'.repeat(62)}`]) {
        new SqliteStore({ database: shared, table, cleanupIntervalMs: 0 }).close()
      }
    })

    it('rejects out-of-range cleanup options with SessionConfigError', () => {
      for (const cleanupBatchSize of [0, -5, 2.5]) {
        assert.throws(() => new SqliteStore({ database: shared, cleanupBatchSize }), SessionConfigError)
      }
      for (const cleanupIntervalMs of [-1, 1.5, 2 ** 31]) {
        assert.throws(() => new SqliteStore({ database: shared, cleanupIntervalMs }), SessionConfigError)
      }
    })
  })

  describe('cleanup', () => {
    it('deletes 10,000 expired rows in batches and leaves live ones untouched', async () => {
      const database = new Database(newPath())
      database.pragma('journal_mode = WAL')
      const batches = { count: 0 }
      const store = new SqliteStore({
        database: countCleanupBatches(database, batches),
        cleanupIntervalMs: 0,
      })
      database.transaction(() => {
        // Each call runs its statement synchronously, so all 10,050 inserts share this one transaction.
        for (let i = 0; i < 10_000; i++) void store.create(key(i), record('{}', T + (i % 60) * 1000), T)
        for (let i = 10_000; i < 10_050; i++)
          void store.create(key(i), record('{"live":true}', T + HOUR, 'u'), T)
      })()
      assert.equal(await store.cleanup(T + 60_000), 10_000)
      assert.equal(batches.count, 11, '10 full batches of 1000, then one that finds nothing')
      assert.equal((await store.listByUser('u', T + 60_000)).length, 50)
      assert.deepEqual(await store.get(key(10_049), T), {
        data: '{"live":true}',
        expiresAt: T + HOUR,
        version: 1,
        userId: 'u',
      })
      assert.deepEqual(database.prepare('SELECT count(*) AS n FROM tessera_sessions').get(), { n: 50 })
      await store.close()
      database.close()
    })

    it('runs on the timer with the injected clock and stops on close()', async (t) => {
      t.mock.timers.enable({ apis: ['setInterval'] })
      let now = T
      const errors: StoreError[] = []
      const store = await SqliteStore.open({
        path: newPath(),
        cleanupIntervalMs: 60_000,
        clock: () => now,
        onCleanupError: (error) => errors.push(error),
      })
      await store.create(key(1), record('{}', T + 1000), T)
      await store.create(key(2), record('{}', T + HOUR), T)
      now = T + 1000
      t.mock.timers.tick(60_000)
      await Promise.resolve()
      assert.equal(await store.get(key(1), T), undefined, 'swept by the timer')
      assert.notEqual(await store.get(key(2), T), undefined)
      await store.close()
      t.mock.timers.tick(60_000) // a sweep on the closed file would fail and land in `errors`
      await new Promise((resolve) => setImmediate(resolve))
      assert.deepEqual(errors, [])
    })

    it('reports a failing timer-driven sweep to onCleanupError instead of crashing', async (t) => {
      t.mock.timers.enable({ apis: ['setInterval'] })
      const database = new Database(':memory:')
      const errors: StoreError[] = []
      const store = new SqliteStore({
        database,
        cleanupIntervalMs: 1000,
        onCleanupError: (e) => errors.push(e),
      })
      database.close()
      t.mock.timers.tick(1000)
      await new Promise((resolve) => setImmediate(resolve))
      assert.equal(errors.length, 1)
      assert.ok(errors[0] instanceof StoreError)
      await store.close()
    })
  })
})

/** Wraps a connection so the test can count how many cleanup batches ran. */
function countCleanupBatches(database: Database.Database, batches: { count: number }): SqliteDatabase {
  return {
    exec: (sql) => database.exec(sql),
    close: () => database.close(),
    prepare(sql): SqliteStatement {
      const statement = database.prepare(sql)
      if (!sql.includes('LIMIT')) return statement
      return {
        get: (...params) => statement.get(...params),
        all: (...params) => statement.all(...params),
        run: (...params) => {
          batches.count++
          return statement.run(...params)
        },
      }
    },
  }
}

function runNode(args: string[]) {
  return spawnSync(process.execPath, args, { timeout: 10_000, encoding: 'utf8' })
}
