import assert from 'node:assert/strict'
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { promises as fsPromises, mkdtempSync, readlinkSync, rmSync } from 'node:fs'
import { mkdir, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises'
import { syncBuiltinESMExports } from 'node:module'
import { hostname, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, describe, it, type TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { pathToFileURL } from 'node:url'
import { SessionConfigError, StoreError } from '../errors.js'
import type { StoreRecord } from '../store.js'
import { runStoreContract } from '../testing/store-contract.js'
import { FileStore } from './file.js'

const root = mkdtempSync(join(tmpdir(), 'tessera-file-'))
let directories = 0
const newDirectory = () => join(root, `store-${++directories}`)
after(() => rmSync(root, { recursive: true, force: true }))

runStoreContract({
  name: 'FileStore',
  create: () => new FileStore({ directory: newDirectory(), cleanupIntervalMs: 0 }),
})

const T = 1_700_000_000_000
const HOUR = 3_600_000
const key = (n: number) => n.toString(16).padStart(64, '0')
const newKey = () => randomBytes(32).toString('hex')
const sha256 = (value: string) => createHash('sha256').update(value).digest('hex')
const record = (options: Partial<StoreRecord> = {}): StoreRecord => ({
  data: '{}',
  expiresAt: T + HOUR,
  version: 1,
  ...options,
})
const HEX64 = /^[0-9a-f]{64}$/
const RECORD_NAME = /^[0-9a-f]{64}\.json$/

describe('FileStore', () => {
  describe('on disk', () => {
    it('holds only <key>.json files and users/<hash>/<key> markers after a full workout, all 0600 in 0700 directories', async () => {
      const directory = join(newDirectory(), 'nested', 'sessions')
      const store = new FileStore({ directory, cleanupIntervalMs: 0 })
      await workout(store)
      await store.close()

      const tree = await walk(directory)
      const unexpected = tree.filter(({ path, isDirectory }) => {
        const parts = path.split('/')
        if (parts.length === 1) return isDirectory ? parts[0] !== 'users' : !RECORD_NAME.test(parts[0]!)
        if (parts.length === 2) return !isDirectory || !HEX64.test(parts[1]!)
        return parts.length !== 3 || isDirectory || !HEX64.test(parts[2]!)
      })
      assert.deepEqual(unexpected, [])
      assert.equal((await stat(directory)).mode & 0o777, 0o700)
      for (const { path, isDirectory, mode } of tree) {
        assert.equal(
          mode & 0o777,
          isDirectory ? 0o700 : 0o600,
          `${path} has mode ${(mode & 0o777).toString(8)}`,
        )
      }

      // The index is exact: every bound record has its marker and every marker its record.
      const reader = new FileStore({ directory, cleanupIntervalMs: 0 })
      const records = tree.filter(({ path }) => RECORD_NAME.test(path)).map(({ path }) => path.slice(0, 64))
      const markers = tree.filter(({ path }) => path.split('/').length === 3).map(({ path }) => path.slice(6))
      const expected: string[] = []
      for (const k of records) {
        const found = await reader.get(k, T)
        if (found?.userId !== undefined) expected.push(`${sha256(found.userId)}/${k}`)
      }
      assert.deepEqual(markers.sort(), expected.sort())
      assert.ok(records.length >= 10 && markers.length >= 3, 'the workout left records and markers to check')
      await reader.close()
    })

    it('stores the documented JSON and keeps each file mtime equal to its expiresAt', async () => {
      const directory = newDirectory()
      const store = new FileStore({ directory, cleanupIntervalMs: 0 })
      const k = newKey()
      await store.create(k, record({ data: '{"a":"é"}', userId: 'ada' }), T)
      const path = join(directory, `${k}.json`)
      assert.deepEqual(JSON.parse(await readFile(path, 'utf8')), {
        data: '{"a":"é"}',
        expiresAt: T + HOUR,
        version: 1,
        userId: 'ada',
      })
      assert.equal(Math.round((await stat(path)).mtimeMs), T + HOUR)
      await store.touch(k, T + 5 * HOUR, T)
      assert.equal(Math.round((await stat(path)).mtimeMs), T + 5 * HOUR)
      await store.create(k, record(), T + 5 * HOUR) // replaces the expired record: anonymous, no userId key
      assert.deepEqual(Object.keys(JSON.parse(await readFile(path, 'utf8'))), [
        'data',
        'expiresAt',
        'version',
      ])
      await store.close()
    })

    it('measures bytes per session on disk for 200-byte payloads', async (t) => {
      const sizes: Record<string, { allocated: number; apparent: number }> = {}
      for (const bound of [false, true]) {
        const directory = newDirectory()
        const store = new FileStore({ directory, cleanupIntervalMs: 0 })
        const sessions = 1000
        const data = JSON.stringify({ cart: 'x'.repeat(180) }) // ~200 bytes
        await parallel(sessions, (i) =>
          store.create(key(i), record({ data, userId: bound ? `user-${i}` : undefined }), T),
        )
        await store.close()
        let allocated = 0
        let apparent = 0
        for (const entry of [
          { blocks: (await stat(directory)).blocks, size: 0 },
          ...(await walk(directory)),
        ]) {
          allocated += entry.blocks * 512 // what du counts
          apparent += entry.size
        }
        const label = bound ? 'each bound to its own user' : 'anonymous'
        sizes[label] = { allocated: allocated / sessions, apparent: apparent / sessions }
        t.diagnostic(
          `bytes per session (${label}): ${Math.round(allocated / sessions)} on disk (du), ${Math.round(apparent / sessions)} apparent`,
        )
      }
      assert.ok(sizes.anonymous!.allocated < 16_384, 'a session costs about one filesystem block')
    })
  })

  describe('per-user index', () => {
    it('ignores, then prunes, markers whose record is gone or bound to someone else', async () => {
      const directory = newDirectory()
      const store = new FileStore({ directory, cleanupIntervalMs: 0 })
      const [rebound, gone] = [newKey(), newKey()]
      await store.create(rebound, record({ userId: 'a' }), T)
      // What a crash between an update's record write and its marker removal leaves, plus a marker whose
      // record never got written (a crash between a create's marker and its record).
      const stale = join(directory, 'users', sha256('b'))
      await mkdir(stale, { recursive: true })
      await writeFile(join(stale, rebound), '')
      await writeFile(join(stale, gone), '')
      assert.deepEqual(await store.listByUser('b', T), [])
      assert.equal(await store.destroyByUser('b'), 0)
      assert.equal((await store.get(rebound, T))?.userId, 'a', "another user's session survives")
      assert.deepEqual(await readdir(join(directory, 'users')), [sha256('a')], 'both stale markers dropped')

      await mkdir(stale, { recursive: true })
      await writeFile(join(stale, gone), '')
      assert.equal(await store.cleanup(T), 0)
      assert.deepEqual(await readdir(join(directory, 'users')), [sha256('a')], 'cleanup pruned it too')
      assert.equal((await store.listByUser('a', T)).length, 1)
      await store.close()
    })
  })

  describe('keys', () => {
    it('never touches the filesystem for a key that is not 64 lowercase hex characters', async (t) => {
      const parent = newDirectory()
      const directory = join(parent, 'sessions')
      const store = new FileStore({ directory, cleanupIntervalMs: 0 })
      await store.get(key(1), T) // let the constructor's mkdir finish outside the count
      const before = await walk(parent)
      const hostile = [
        '../../etc/passwd',
        "a' OR '1'='1",
        '*',
        '__proto__',
        'x'.repeat(10_000),
        '',
        'AB'.repeat(32),
        `${key(1).slice(0, 63)}/`,
        `${key(1)}\0`,
      ]
      for (const bad of hostile) {
        const calls = await spyOnFs(t, async () => {
          assert.equal(await store.get(bad, T), undefined)
          assert.equal(await store.update(bad, record({ version: 2 }), 1, T), false)
          assert.equal(await store.touch(bad, T + HOUR, T), false)
          await store.destroy(bad)
          await assert.rejects(store.create(bad, record({ userId: 'u' }), T), (error: unknown) => {
            assert.ok(error instanceof StoreError)
            assert.ok(error.cause instanceof TypeError)
            return true
          })
        })
        assert.deepEqual(calls, {}, `${JSON.stringify(bad.slice(0, 20))} reached the filesystem`)
      }
      assert.deepEqual(await walk(parent), before)
      await store.close()
    })
  })

  describe('corrupt files', () => {
    it('reads an unparsable or misshapen file as missing, lets create replace it, and deletes it on cleanup', async () => {
      const directory = newDirectory()
      const store = new FileStore({ directory, cleanupIntervalMs: 0 })
      await store.get(key(0), T)
      const garbage = [
        '{"data":"{}","expiresAt":',
        '',
        'null',
        '42',
        '[]',
        '{"data":{},"expiresAt":1,"version":1}',
        `{"data":"{}","expiresAt":${T + HOUR},"version":"1"}`,
        `{"data":"{}","expiresAt":${T + HOUR},"version":1,"userId":7}`,
      ]
      for (const [i, text] of garbage.entries()) {
        await writeFile(join(directory, `${key(i)}.json`), text, { mode: 0o600 })
        // As if written at T: cleanup trusts an mtime beyond `now` to mean a live record and skips it.
        await utimes(join(directory, `${key(i)}.json`), T / 1000, T / 1000)
        assert.equal(await store.get(key(i), T), undefined, text)
        assert.equal(await store.update(key(i), record({ version: 2 }), 1, T), false)
        assert.equal(await store.touch(key(i), T + HOUR, T), false)
      }
      assert.equal(await store.create(key(0), record({ data: '{"fresh":true}' }), T), true)
      assert.equal((await store.get(key(0), T))?.data, '{"fresh":true}')
      assert.equal(await store.cleanup(T), 0, 'corrupt files are deleted but not counted as expired records')
      await store.close()
      assert.deepEqual(await readdir(directory), [`${key(0)}.json`])
    })

    it('rejects records that JSON would store unfaithfully', async () => {
      const store = new FileStore({ directory: newDirectory(), cleanupIntervalMs: 0 })
      for (const bad of [
        { expiresAt: Number.NaN },
        { expiresAt: Number.POSITIVE_INFINITY },
        { version: 1.5 },
      ]) {
        await assert.rejects(store.create(newKey(), record(bad), T), StoreError)
      }
      await store.close()
    })
  })

  describe('crashes and locks', () => {
    it('cleanup removes stray temporary files and dead locks, and leaves held locks and unknown files alone', async () => {
      const directory = newDirectory()
      const store = new FileStore({ directory, cleanupIntervalMs: 0 })
      const k = newKey()
      await store.create(k, record({ userId: 'u' }), T)
      const old = (Date.now() - 60_000) / 1000
      const twoSecondsAgo = (Date.now() - 2000) / 1000
      const deadPid = exitedPid()
      const strays = {
        [`${k}.0123456789abcdef.tmp`]: '{"data":"half a rec',
        [`${newKey()}.fedcba9876543210.tmp`]: '',
        [`${newKey()}.lock`]: owner(deadPid), // holder exited: broken at once
        [`${newKey()}.lock`]: owner(process.pid, 'another-host'), // set 60 s old below: stale by age
        [`${newKey()}.lock.0123456789abcdef.broken`]: owner(deadPid), // a breaker died mid-break
        '0123456789abcdef.owner': owner(deadPid), // the owner file of a process that died
        'fedcba9876543210.owner': '', // its process died before writing it; set 2 s old below
      }
      const kept = {
        [`${newKey()}.lock`]: owner(process.pid, 'another-host'), // fresh: held elsewhere
        [`${newKey()}.lock.0123456789abcdef.broken`]: owner(process.pid), // its breaker is putting it back
        '00112233445566ff.owner': owner(process.pid, 'another-host'), // a live store elsewhere
        'README.txt': 'not ours',
        [`${key(7)}.json.bak`]: 'not ours either',
      }
      for (const [name, text] of Object.entries({ ...strays, ...kept })) {
        await writeFile(join(directory, name), text)
      }
      const aged = Object.keys(strays)[3]! // the other host's lock
      await utimes(join(directory, aged), old, old)
      await utimes(join(directory, 'fedcba9876543210.owner'), twoSecondsAgo, twoSecondsAgo)
      assert.equal(await store.cleanup(T), 0)
      assert.equal((await store.get(k, T))?.version, 1)
      await store.close()
      assert.deepEqual((await readdir(directory)).sort(), [`${k}.json`, 'users', ...Object.keys(kept)].sort())
    })

    it('takes over at once a lock whose holder has exited, but waits for one whose holder is alive', async () => {
      const directory = newDirectory()
      const store = new FileStore({ directory, cleanupIntervalMs: 0 })
      const [dead, held] = [newKey(), newKey()]
      await store.create(dead, record(), T)
      await store.create(held, record(), T)
      await writeFile(join(directory, `${dead}.lock`), owner(exitedPid()))
      await writeFile(join(directory, `${held}.lock`), owner(process.pid, 'another-host'))

      const started = performance.now()
      assert.equal(await store.update(dead, record({ version: 2 }), 1, T), true)
      assert.ok(
        performance.now() - started < 1000,
        'a dead holder is detected without waiting for the lock to age',
      )

      let settled = false
      const pending = store.update(held, record({ version: 2 }), 1, T).finally(() => {
        settled = true
      })
      await sleep(300)
      assert.equal(settled, false, 'the update waited for the live holder')
      rmSync(join(directory, `${held}.lock`))
      assert.equal(await pending, true)
      await store.close()
    })

    it('recovers at once from a lock of its own that a failed release left behind', async (t) => {
      const directory = newDirectory()
      const store = new FileStore({ directory, cleanupIntervalMs: 0 })
      const k = newKey()
      await store.create(k, record(), T)
      const functions = fsPromises as unknown as Record<string, (path: string) => Promise<void>>
      const unlink = functions.unlink!
      let failures = 0
      t.mock.method(functions, 'unlink', async (path: string) => {
        if (path.endsWith('.lock') && failures++ === 0) {
          throw Object.assign(new Error('EIO: i/o error, unlink'), { code: 'EIO' })
        }
        return unlink(path)
      })
      syncBuiltinESMExports()
      try {
        assert.equal(await store.touch(k, T + 2 * HOUR, T), true, 'the touch itself succeeded')
        assert.ok((await readdir(directory)).includes(`${k}.lock`), 'its release failed')
        const started = performance.now()
        assert.equal(await store.update(k, record({ version: 2 }), 1, T), true)
        assert.ok(performance.now() - started < 1000, 'no wait for a lock whose heartbeat never ages')
      } finally {
        t.mock.restoreAll()
        syncBuiltinESMExports()
      }
      await store.close()
      assert.deepEqual((await readdir(directory)).sort(), [`${k}.json`])
    })

    it('falls back to exclusive create on a filesystem without hard links', async (t) => {
      const directory = newDirectory()
      const store = new FileStore({ directory, cleanupIntervalMs: 0 })
      const functions = fsPromises as unknown as Record<string, () => Promise<void>>
      t.mock.method(functions, 'link', async () => {
        throw Object.assign(new Error('EPERM: operation not permitted, link'), { code: 'EPERM' })
      })
      syncBuiltinESMExports()
      try {
        const k = newKey()
        assert.equal(await store.create(k, record({ userId: 'u' }), T), true)
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => store.update(k, record({ data: `${i}`, version: 2 }), 1, T)),
        )
        assert.equal(results.filter(Boolean).length, 1)
        await store.destroy(k)
      } finally {
        t.mock.restoreAll()
        syncBuiltinESMExports()
      }
      await store.close()
      assert.deepEqual(await readdir(directory), ['users'])
    })

    it('keeps its locks alive with a heartbeat on its owner file, which close() removes', async (t) => {
      t.mock.timers.enable({ apis: ['setInterval'] })
      const directory = newDirectory()
      const store = new FileStore({ directory, cleanupIntervalMs: 0 })
      await store.create(newKey(), record(), T)
      const [ownerFile] = (await readdir(directory)).filter((name) => name.endsWith('.owner'))
      assert.ok(ownerFile !== undefined)
      assert.deepEqual(JSON.parse(await readFile(join(directory, ownerFile), 'utf8')), {
        pid: process.pid,
        host: thisHost(),
      })
      const minuteAgo = (Date.now() - 60_000) / 1000
      await utimes(join(directory, ownerFile), minuteAgo, minuteAgo)
      t.mock.timers.tick(2500)
      await sleep(50) // the refresh is an fs call
      assert.ok(Date.now() - (await stat(join(directory, ownerFile))).mtimeMs < 5000, 'refreshed')
      await store.close()
      assert.deepEqual(
        (await readdir(directory)).filter((name) => name.endsWith('.owner')),
        [],
      )
    })

    it('breaks a lock held by another host once it is older than 10 s', async () => {
      const directory = newDirectory()
      const store = new FileStore({ directory, cleanupIntervalMs: 0 })
      const k = newKey()
      await store.create(k, record(), T)
      const lock = join(directory, `${k}.lock`)
      await writeFile(lock, owner(12345, 'another-host'))
      const elevenSecondsAgo = (Date.now() - 11_000) / 1000
      await utimes(lock, elevenSecondsAgo, elevenSecondsAgo)
      assert.equal(await store.touch(k, T + 2 * HOUR, T), true)
      await store.close()
      assert.deepEqual((await readdir(directory)).sort(), [`${k}.json`])
    })

    it('never leaves a torn record when writers are SIGKILLed mid-write (50 kills at random moments)', async (t) => {
      const lanes = 2
      const killsPerLane = 25
      const keys = [newKey(), newKey(), newKey()]
      let midWrite = 0
      const strays = new Set<string>()
      let slowestStart = 0
      await Promise.all(
        Array.from({ length: lanes }, async () => {
          const directory = newDirectory()
          const reader = new FileStore({ directory, cleanupIntervalMs: 0 })
          for (let kill = 0; kill < killsPerLane; kill++) {
            const started = performance.now()
            const child = await startWorker(TORN_WRITER, { directory, keys })
            await child.ready
            slowestStart = Math.max(slowestStart, performance.now() - started)
            await sleep(Math.random() * 250)
            child.process.kill('SIGKILL')
            await child.exited
            const names = await readdir(directory)
            // A temporary file that was not there after the previous kill: this kill interrupted a write.
            const temps = names.filter((name) => /^[0-9a-f]{64}\.[0-9a-f]{16}\.tmp$/.test(name))
            if (temps.some((name) => !strays.has(name))) midWrite++
            for (const name of temps) strays.add(name)
            assert.equal(names.filter((n) => RECORD_NAME.test(n)).length, keys.length)
            for (const k of keys) {
              // get() reads a file that fails to parse as missing, so a torn record fails here.
              const found = await reader.get(k, T)
              assert.ok(found !== undefined, 'every record reads back')
              const payload = JSON.parse(found.data) as { version: number; size: number; fill: string }
              const letter = String.fromCharCode(97 + (found.version % 26))
              assert.equal(payload.version, found.version, 'data and version come from the same write')
              assert.equal(payload.fill.length, payload.size)
              assert.ok(
                payload.fill.startsWith(letter) && payload.fill.endsWith(letter),
                'one write, start to end',
              )
            }
          }
          await sleep(1100) // a writer killed before filling in its owner file leaves it empty: 1 s, then gone
          assert.equal(await reader.cleanup(T), 0)
          await reader.close()
          const left = (await readdir(directory)).filter((name) => !RECORD_NAME.test(name))
          assert.deepEqual(left, ['users'], 'cleanup removed every temporary file, dead lock and owner file')
        }),
      )
      t.diagnostic(
        `${lanes * killsPerLane} kills: ${midWrite} interrupted a write (left a new temporary file); slowest restart ${Math.round(slowestStart)} ms`,
      )
      assert.ok(midWrite > 0, 'at least one kill landed in the middle of a write')
      assert.ok(slowestStart < 8000, 'a restarted writer never waited for a dead lock to age')
    })
  })

  describe('several processes', () => {
    it('two stores on one directory in one process: one of 20 concurrent updates wins', async () => {
      const directory = newDirectory()
      const [first, second] = [0, 1].map(() => new FileStore({ directory, cleanupIntervalMs: 0 })) as [
        FileStore,
        FileStore,
      ]
      const k = newKey()
      await first.create(k, record(), T)
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          (i % 2 === 0 ? first : second).update(k, record({ data: `{"w":${i}}`, version: 2 }), 1, T),
        ),
      )
      assert.equal(results.filter(Boolean).length, 1)
      assert.equal((await second.get(k, T))?.data, `{"w":${results.indexOf(true)}}`)
      await first.close()
      await second.close()
    })

    it('two processes racing: one create wins per key, and compare-and-set loses no increment', async (t) => {
      const directory = newDirectory()
      const counter = newKey()
      const createKeys = Array.from({ length: 40 }, newKey)
      const target = 100
      const seed = new FileStore({ directory, cleanupIntervalMs: 0 })
      await seed.create(counter, record({ data: '{"n":0}' }), T)
      const workers = await Promise.all(
        [0, 1].map(() => startWorker(CAS_WORKER, { directory, counter, createKeys, target })),
      )
      await Promise.all(workers.map((worker) => worker.ready))
      for (const worker of workers) worker.process.stdin?.write('go\n')
      const results = (await Promise.all(workers.map((worker) => worker.result()))) as Array<{
        pid: number
        created: string[]
        successes: number
        conflicts: number
      }>

      const winners = results.flatMap((result) => result.created)
      assert.deepEqual([...winners].sort(), [...createKeys].sort(), 'each key created exactly once')
      for (const result of results) {
        for (const k of result.created) assert.equal((await seed.get(k, T))?.data, `{"pid":${result.pid}}`)
      }
      const final = await seed.get(counter, T)
      assert.deepEqual(
        results.map((result) => result.successes),
        [target, target],
      )
      assert.equal(final?.data, `{"n":${2 * target}}`, 'no lost update')
      assert.equal(final?.version, 2 * target + 1)
      const conflicts = results.reduce((sum, result) => sum + result.conflicts, 0)
      assert.ok(conflicts > 0, 'the processes did contend')
      t.diagnostic(
        `${2 * target} increments from 2 processes, ${conflicts} compare-and-set conflicts retried; creates split ${results.map((r) => r.created.length).join('/')}`,
      )
      await seed.close()
    })
  })

  describe('cleanup', () => {
    it('removes 10,000 expired records and leaves live ones untouched', async (t) => {
      const directory = newDirectory()
      const store = new FileStore({ directory, cleanupIntervalMs: 0 })
      const expired = 10_000
      const live = 100
      await store.cleanup(T) // resolves once the store has created its directory
      let started = performance.now()
      // Most are written directly in the documented format (fsyncs make creating 10,000 through the store
      // slower than the sweep itself); 500 go through the store, bound to users, so their markers go too.
      const direct = expired - 500
      await parallel(direct, async (i) => {
        const path = join(directory, `${key(i)}.json`)
        const expiresAt = T + 1000 + (i % 60) * 1000
        await writeFile(path, JSON.stringify({ data: '{}', expiresAt, version: 1 }), { mode: 0o600 })
        await utimes(path, expiresAt / 1000, expiresAt / 1000)
      })
      await parallel(expired - direct, (i) =>
        store.create(
          key(direct + i),
          record({ expiresAt: T + 1000 + (i % 60) * 1000, userId: `gone-${i % 50}` }),
          T,
        ),
      )
      await parallel(live, (i) =>
        store.create(key(expired + i), record({ data: `{"live":${i}}`, userId: `live-${i % 5}` }), T),
      )
      const setup = performance.now() - started

      started = performance.now()
      assert.equal(await store.cleanup(T + 61_000), expired)
      const sweep = performance.now() - started
      t.diagnostic(
        `created ${expired + live} records in ${Math.round(setup)} ms; cleanup deleted ${expired} in ${Math.round(sweep)} ms`,
      )

      const names = await readdir(directory)
      assert.equal(names.filter((name) => RECORD_NAME.test(name)).length, live)
      for (let i = 0; i < live; i++) {
        const expected = record({ data: `{"live":${i}}`, userId: `live-${i % 5}` })
        assert.deepEqual(await store.get(key(expired + i), T + 61_000), expected)
      }
      assert.deepEqual(
        (await readdir(join(directory, 'users'))).sort(),
        [0, 1, 2, 3, 4].map((i) => sha256(`live-${i}`)).sort(),
        'the index of users whose sessions all expired is gone',
      )
      assert.equal((await store.listByUser('live-0', T + 61_000)).length, live / 5)
      assert.ok(sweep < 15_000)
      await store.close()
    })

    it('does not read live records whose mtime says they are live', async (t) => {
      const directory = newDirectory()
      const store = new FileStore({ directory, cleanupIntervalMs: 0 })
      await parallel(100, (i) => store.create(key(i), record({ expiresAt: T + HOUR + i }), T))
      await store.create(key(100), record({ expiresAt: T + 1000 }), T)
      const calls = await spyOnFs(t, async () => {
        assert.equal(await store.cleanup(T + 1000), 1)
      })
      assert.equal(calls.readFile, 1, 'only the expired record is read, under its lock')
      await store.close()
    })

    it('runs on the timer with the injected clock; close() waits for the sweep and stops the timer', async (t) => {
      t.mock.timers.enable({ apis: ['setInterval'] })
      let now = T
      const errors: StoreError[] = []
      const store = new FileStore({
        directory: newDirectory(),
        cleanupIntervalMs: 60_000,
        clock: () => now,
        onCleanupError: (error) => errors.push(error),
      })
      await store.create(key(1), record({ expiresAt: T + 1000 }), T)
      await store.create(key(2), record(), T)
      now = T + 1000
      t.mock.timers.tick(60_000)
      await store.close()
      assert.equal(await store.get(key(1), T), undefined, 'swept by the timer before close() resolved')
      assert.notEqual(await store.get(key(2), T), undefined)
      await store.create(key(3), record({ expiresAt: T + 2000 }), T)
      now = T + 2000
      t.mock.timers.tick(60_000)
      await store.close()
      assert.notEqual(await store.get(key(3), T), undefined, 'no sweep after close()')
      assert.deepEqual(errors, [])
    })

    it('leaves the timer sweep to the process holding cleanup.lock', async (t) => {
      t.mock.timers.enable({ apis: ['setInterval'] })
      const directory = newDirectory()
      const store = new FileStore({ directory, cleanupIntervalMs: 1000, clock: () => T + 1000 })
      await store.create(key(1), record({ expiresAt: T + 1000 }), T)
      await writeFile(join(directory, 'cleanup.lock'), owner(process.pid, 'another-host'))
      t.mock.timers.tick(1000)
      await store.close()
      assert.notEqual(await store.get(key(1), T), undefined, 'skipped: another process is sweeping')
      rmSync(join(directory, 'cleanup.lock'))
      const second = new FileStore({ directory, cleanupIntervalMs: 1000, clock: () => T + 1000 })
      t.mock.timers.tick(1000)
      await second.close()
      assert.equal(await second.get(key(1), T), undefined)
      assert.deepEqual(await readdir(directory), [])
    })

    it('reports a failing timer sweep to onCleanupError', async (t) => {
      t.mock.timers.enable({ apis: ['setInterval'] })
      const directory = newDirectory()
      const errors: StoreError[] = []
      const store = new FileStore({
        directory,
        cleanupIntervalMs: 1000,
        onCleanupError: (e) => errors.push(e),
      })
      await store.get(key(1), T)
      rmSync(directory, { recursive: true })
      await writeFile(directory, 'a file where the directory was')
      t.mock.timers.tick(1000)
      await store.close()
      assert.equal(errors.length, 1)
      assert.ok(errors[0] instanceof StoreError)
      assert.equal((errors[0].cause as NodeJS.ErrnoException).code, 'ENOTDIR')
    })

    it('leaves a process with only the cleanup timer free to exit', async () => {
      const script = `
        const { FileStore } = await import(${JSON.stringify(await compiledStore())})
        const store = new FileStore({ directory: ${JSON.stringify(newDirectory())}, cleanupIntervalMs: 10 })
        await store.create('${key(1)}', { data: '{}', expiresAt: Date.now() + 60_000, version: 1 }, Date.now())
      `
      const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        timeout: 10_000,
        encoding: 'utf8',
      })
      assert.equal(child.error, undefined, 'the process did not exit by itself within 10 s')
      assert.equal(child.status, 0, child.stderr)
    })
  })

  describe('options and lifecycle', () => {
    it('rejects invalid options with SessionConfigError', () => {
      const directory = newDirectory()
      const bad: unknown[] = [
        { directory: '' },
        { directory: 42 },
        { directory: 'a\0b' },
        {},
        undefined,
        { directory, cleanupIntervalMs: -1 },
        { directory, cleanupIntervalMs: 1.5 },
        { directory, cleanupIntervalMs: 2 ** 31 },
        { directory, clock: 'now' },
        { directory, onCleanupError: true },
      ]
      for (const options of bad) {
        assert.throws(
          () => new FileStore(options as ConstructorParameters<typeof FileStore>[0]),
          SessionConfigError,
          JSON.stringify(options),
        )
      }
    })

    it('rejects with StoreError while the directory cannot be created, and recovers once it can', async () => {
      const parent = newDirectory()
      await writeFile(parent, 'a file, not a directory')
      const store = new FileStore({ directory: join(parent, 'sessions'), cleanupIntervalMs: 0 })
      await assert.rejects(store.get(key(1), T), (error: unknown) => {
        assert.ok(error instanceof StoreError)
        assert.equal((error.cause as NodeJS.ErrnoException).code, 'ENOTDIR')
        return true
      })
      await assert.rejects(store.create(key(1), record(), T), StoreError)
      rmSync(parent)
      await mkdir(parent)
      assert.equal(await store.create(key(1), record(), T), true)
      await store.close()
    })

    it('close() can be called twice, and the store keeps working after it', async () => {
      const store = new FileStore({ directory: newDirectory() })
      await store.close()
      await store.close()
      assert.equal(await store.create(key(1), record(), T), true)
      assert.equal((await store.get(key(1), T))?.version, 1)
    })
  })
})

/** Every kind of call, including concurrent ones, user switches and expiry, on one store. */
async function workout(store: FileStore): Promise<void> {
  const keys = Array.from({ length: 16 }, newKey)
  const users = ['alice', 'bob', undefined, 'carol']
  await Promise.all(
    keys.map((k, i) =>
      store.create(k, record({ userId: users[i % 4], expiresAt: T + (i < 4 ? 1000 : HOUR) }), T),
    ),
  )
  const [hot, switched, touched, destroyed] = keys.slice(4) as [string, string, string, string]
  await Promise.all(
    Array.from({ length: 20 }, (_, i) => store.update(hot, record({ data: `{"w":${i}}`, version: 2 }), 1, T)),
  )
  await Promise.all(Array.from({ length: 20 }, () => store.create(newKey(), record({ userId: 'dave' }), T)))
  const contested = newKey()
  await Promise.all(Array.from({ length: 20 }, () => store.create(contested, record({ userId: 'erin' }), T)))
  await store.update(switched, record({ version: 2, userId: 'zoe' }), 1, T)
  await store.update(switched, record({ version: 3 }), 2, T)
  await store.update(switched, record({ version: 4, userId: 'yann' }), 3, T)
  await Promise.all([store.touch(touched, T + 2 * HOUR, T), store.touch(touched, T + 3 * HOUR, T)])
  await store.destroy(destroyed)
  await store.destroy(destroyed)
  await store.listByUser('alice', T)
  await store.destroyByUser('bob')
  await store.destroyByUser('dave', { exceptKey: keys[0] })
  await store.cleanup(T + 1000)
}

interface Entry {
  path: string
  isDirectory: boolean
  mode: number
  blocks: number
  size: number
}

/** Everything under `directory`, as paths relative to it. */
async function walk(directory: string, prefix = ''): Promise<Entry[]> {
  const entries: Entry[] = []
  for (const name of (await readdir(directory)).sort()) {
    const info = await stat(join(directory, name))
    const path = prefix + name
    entries.push({
      path,
      isDirectory: info.isDirectory(),
      mode: info.mode,
      blocks: info.blocks,
      size: info.size,
    })
    if (info.isDirectory()) entries.push(...(await walk(join(directory, name), `${path}/`)))
  }
  return entries
}

/** Runs `task(0..count-1)`, 64 at a time. */
async function parallel(count: number, task: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < count) await task(next++)
    }),
  )
}

/** Counts calls into node:fs/promises made while `body` runs (by the store or anyone else), by function. */
async function spyOnFs(t: TestContext, body: () => Promise<void>): Promise<Record<string, number>> {
  const calls: Record<string, number> = {}
  const functions = fsPromises as unknown as Record<string, (...args: unknown[]) => unknown>
  for (const [name, original] of Object.entries(functions)) {
    if (typeof original !== 'function') continue
    t.mock.method(functions, name, function (this: unknown, ...args: unknown[]) {
      calls[name] = (calls[name] ?? 0) + 1
      return Reflect.apply(original, this, args)
    })
  }
  syncBuiltinESMExports() // so that the store's `import { open } from 'node:fs/promises'` sees the spies
  try {
    await body()
  } finally {
    t.mock.restoreAll()
    syncBuiltinESMExports()
  }
  return calls
}

/** A lock file's content, in the format the store writes; `host` defaults to this host, as the store names it. */
function owner(pid: number, host = thisHost()): string {
  return JSON.stringify({ pid, host })
}

function thisHost(): string {
  try {
    return `${hostname()} ${readlinkSync('/proc/self/ns/pid')}`
  } catch {
    return hostname()
  }
}

/** The PID of a process that has already exited. */
function exitedPid(): number {
  const { pid } = spawnSync(process.execPath, ['-e', ''])
  assert.ok(pid !== undefined)
  return pid
}

interface Worker {
  process: ChildProcess
  /** Resolves when the worker prints `ready`. */
  ready: Promise<void>
  /** The JSON object the worker prints last, once it has exited. */
  result: () => Promise<unknown>
  exited: Promise<void>
}

let compiled: Promise<string> | undefined
/**
 * The store transpiled to plain JavaScript, once, so that child processes start in tens of milliseconds
 * rather than the half second that loading tsx takes. Resolves the URL of the compiled `stores/file.js`.
 */
function compiledStore(): Promise<string> {
  compiled ??= (async () => {
    const { default: ts } = await import('typescript') // only when a test starts a child: it is large
    const out = join(root, 'compiled')
    for (const file of ['stores/file.ts', 'errors.ts']) {
      const source = await readFile(new URL(`../${file}`, import.meta.url), 'utf8')
      const { outputText } = ts.transpileModule(source, {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      })
      await mkdir(dirname(join(out, file)), { recursive: true })
      await writeFile(join(out, file.replace(/\.ts$/, '.js')), outputText)
    }
    await writeFile(join(out, 'package.json'), '{"type":"module"}')
    return pathToFileURL(join(out, 'stores', 'file.js')).href
  })()
  return compiled
}

/**
 * Starts a Node process running `script` (an ES module body) with the compiled store's URL in
 * TESSERA_MODULE and `config` in TESSERA_TEST_CONFIG.
 */
async function startWorker(script: string, config: unknown): Promise<Worker> {
  const module = await compiledStore()
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, TESSERA_MODULE: module, TESSERA_TEST_CONFIG: JSON.stringify(config) },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk
      if (stdout.startsWith('ready\n')) resolve()
    })
    child.once('exit', (code, signal) =>
      reject(new Error(`worker exited (${code ?? signal}) before ready: ${stderr}`)),
    )
  })
  const result = () =>
    exited.then(() => {
      const lines = stdout.trim().split('\n')
      if (child.exitCode !== 0) throw new Error(`worker failed with ${child.exitCode}: ${stderr}`)
      return JSON.parse(lines[lines.length - 1]!) as unknown
    })
  ready.catch(() => {}) // a killed worker may never be ready; whoever awaits it sees the error
  return { process: child, ready, result, exited }
}

/**
 * Rewrites its keys forever with large records (0.5 to 3 MB), so that the fsync of a write, and so a kill
 * landing mid-write, takes up much of each iteration.
 */
const TORN_WRITER = `
  const { FileStore } = await import(process.env.TESSERA_MODULE)
  const { directory, keys } = JSON.parse(process.env.TESSERA_TEST_CONFIG)
  const T = ${T}
  const store = new FileStore({ directory, cleanupIntervalMs: 0 })
  const payload = (version) => {
    const size = 100_000 + Math.floor(Math.random() * 900_000)
    return JSON.stringify({ version, size, fill: String.fromCharCode(97 + (version % 26)).repeat(size) })
  }
  const versions = []
  for (const key of keys) {
    const found = await store.get(key, T)
    if (found === undefined) await store.create(key, { data: payload(1), expiresAt: T + 3_600_000, version: 1, userId: 'u' }, T)
    versions.push(found?.version ?? 1)
  }
  process.stdout.write('ready\\n')
  for (let i = 0; ; i++) {
    const version = ++versions[i % keys.length]
    const record = { data: payload(version), expiresAt: T + 3_600_000, version, userId: 'u' }
    if (!(await store.update(keys[i % keys.length], record, version - 1, T))) throw new Error('lost the race')
  }
`

/** Waits for "go", races to create shared keys, then increments a shared counter by compare-and-set. */
const CAS_WORKER = `
  const { FileStore } = await import(process.env.TESSERA_MODULE)
  const { directory, counter, createKeys, target } = JSON.parse(process.env.TESSERA_TEST_CONFIG)
  const T = ${T}
  const store = new FileStore({ directory, cleanupIntervalMs: 0 })
  await store.get(counter, T)
  process.stdout.write('ready\\n')
  await new Promise((resolve) => process.stdin.once('data', resolve))
  process.stdin.destroy()
  // Each worker walks the keys in its own random order, so the two collide at unpredictable points.
  const order = [...createKeys]
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[order[i], order[j]] = [order[j], order[i]]
  }
  const created = []
  for (const key of order) {
    const record = { data: JSON.stringify({ pid: process.pid }), expiresAt: T + 3_600_000, version: 1 }
    if (await store.create(key, record, T)) created.push(key)
  }
  let successes = 0
  let conflicts = 0
  while (successes < target) {
    const current = await store.get(counter, T)
    // A request does some work between reading the session and writing it back: widen that window.
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 2))
    const n = JSON.parse(current.data).n
    const next = { data: JSON.stringify({ n: n + 1 }), expiresAt: current.expiresAt, version: current.version + 1 }
    if (await store.update(counter, next, current.version, T)) successes++
    else conflicts++
  }
  process.stdout.write(JSON.stringify({ pid: process.pid, created, successes, conflicts }) + '\\n')
`
