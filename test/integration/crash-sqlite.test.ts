// SqliteStore survives a writer killed at any moment: a child process creates and rewrites sessions (1 KB to
// 60 KB, each carrying the SHA-256 of its own content) through the built package, and is SIGKILLed at random
// moments 50 times. After each kill the database is opened afresh: it passes `PRAGMA integrity_check`, every
// record parses and matches its hash, and each one is the write the writer last finished or the one it had
// begun (old or new, never torn), so no acknowledged write is lost either.
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import { SqliteStore } from 'tessera/sqlite'

const root = join(import.meta.dirname, '../..')
const dir = mkdtempSync(join(tmpdir(), 'tessera-crash-sqlite-'))
after(() => rmSync(dir, { recursive: true, force: true }))
// Writers still running if the test process ends early (a timeout, a failed assertion): take them along.
const writers = new Set<ChildProcess>()
process.once('exit', () => {
  for (const writer of writers) writer.kill('SIGKILL')
})

const T = 1_700_000_000_000
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')

/**
 * Rewrites its sessions forever, and now and then creates one (up to 30). Before each write it prints "begin <key>
 * <version>", after it "done <key> <version>", each with a synchronous write(2), so the
 * parent knows which writes were acknowledged and which one a kill interrupted.
 */
const WRITER = `
  import { createHash, randomBytes } from 'node:crypto'
  import { writeSync } from 'node:fs'
  import { SqliteStore } from 'tessera/sqlite'
  const { path, known } = JSON.parse(process.env.TESSERA_TEST_CONFIG)
  const T = ${T}
  const store = await SqliteStore.open({ path, cleanupIntervalMs: 0 })
  const versions = new Map(Object.entries(known))
  const payload = (key, version) => {
    const fill = randomBytes(Math.ceil((1024 + Math.random() * 60 * 1024) * 0.75)).toString('base64')
    return JSON.stringify({ key, version, fill, sha256: createHash('sha256').update(fill).digest('hex') })
  }
  // writeSync: the line is in the pipe before the next statement runs (process.stdout may buffer it).
  const say = (line) => {
    for (;;) {
      try {
        return writeSync(1, line + '\\n')
      } catch (error) {
        if (error.code !== 'EAGAIN') throw error
      }
    }
  }
  say('ready')
  for (let i = 0; ; i++) {
    // Up to 30 sessions: a few creates among the updates.
    if (versions.size < 5 || (versions.size < 30 && i % 10 === 0)) {
      const key = randomBytes(32).toString('hex')
      const record = { data: payload(key, 1), expiresAt: T + 3_600_000, version: 1, userId: 'u' + (i % 3) }
      say('begin ' + key + ' 1')
      if (!(await store.create(key, record, T))) throw new Error('create failed')
      versions.set(key, 1)
      say('done ' + key + ' 1')
      continue
    }
    const keys = [...versions.keys()]
    const key = keys[Math.floor(Math.random() * keys.length)]
    const version = versions.get(key) + 1
    const record = { data: payload(key, version), expiresAt: T + 3_600_000, version, userId: 'u' + (version % 3) }
    say('begin ' + key + ' ' + version)
    if (!(await store.update(key, record, version - 1, T))) throw new Error('update lost its compare-and-set')
    versions.set(key, version)
    say('done ' + key + ' ' + version)
  }
`

interface Lane {
  readonly path: string
  /** key → the last version the writer finished writing. */
  readonly done: Map<string, number>
}

/** Runs the writer until it is killed at a random moment; returns the write it had begun and not finished. */
async function killWriter(lane: Lane): Promise<{ key: string; version: number } | undefined> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', WRITER], {
    cwd: root, // 'tessera/sqlite' resolves to the built package by self-reference
    env: {
      ...process.env,
      TESSERA_TEST_CONFIG: JSON.stringify({ path: lane.path, known: Object.fromEntries(lane.done) }),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  writers.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  // 'close', not 'exit': every line the writer printed has been read by then.
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()))
  try {
    const deadline = performance.now() + 20_000
    while (!stdout.startsWith('ready\n')) {
      if (child.exitCode !== null) throw new Error(`writer exited before it was ready: ${stderr}`)
      if (performance.now() > deadline) throw new Error(`writer not ready: ${stderr}`)
      await sleep(5)
    }
    await sleep(20 + Math.random() * 200)
  } finally {
    child.kill('SIGKILL')
    await exited
    writers.delete(child)
  }
  assert.equal(child.signalCode, 'SIGKILL', `the writer died of the kill, not of an error: ${stderr}`)
  let pending: { key: string; version: number } | undefined
  for (const line of stdout.split('\n')) {
    const [word, key, version] = line.split(' ')
    if (word === 'begin') pending = { key: key!, version: Number(version) }
    if (word === 'done') {
      lane.done.set(key!, Number(version))
      pending = undefined
    }
  }
  return pending
}

it('never tears a session record or loses an acknowledged write when its writer is SIGKILLed at random moments (50 kills)', async (t) => {
  const lanes: Lane[] = [0, 1].map((i) => ({ path: join(dir, `sessions-${i}.db`), done: new Map() }))
  const killsPerLane = 25
  let interrupted = 0
  let landed = 0
  let checked = 0
  // allSettled: a failing lane must not leave the other writing into the directory the after hook removes;
  // it stops the other at its next kill.
  let failed = false
  const results = await Promise.allSettled(
    lanes
      .map(async (lane) => {
        for (let kill = 0; kill < killsPerLane && !failed; kill++) {
          const pending = await killWriter(lane)
          if (pending !== undefined) interrupted++

          const database = new Database(lane.path) // opening recovers the WAL the killed writer left
          assert.equal(database.pragma('integrity_check', { simple: true }), 'ok')
          const rows = database.prepare('SELECT count(*) AS n FROM tessera_sessions').get() as { n: number }
          database.close()

          const store = await SqliteStore.open({ path: lane.path, cleanupIntervalMs: 0 })
          try {
            const expected = new Map(lane.done)
            if (pending !== undefined && !expected.has(pending.key)) expected.set(pending.key, 0) // a create
            for (const [key, acknowledged] of expected) {
              const found = await store.get(key, T)
              const isPending = pending?.key === key
              if (found === undefined) {
                assert.ok(isPending && acknowledged === 0, `acknowledged session ${key} is missing`)
                continue
              }
              const payload = JSON.parse(found.data) as {
                key: string
                version: number
                fill: string
                sha256: string
              }
              assert.equal(payload.sha256, sha256(payload.fill), 'the record is whole')
              assert.deepEqual(
                [payload.key, payload.version],
                [key, found.version],
                'data and version of one write',
              )
              const allowed = isPending ? [acknowledged, pending!.version] : [acknowledged]
              assert.ok(
                allowed.includes(found.version),
                `version ${found.version}, expected one of ${allowed}`,
              )
              if (isPending && found.version === pending!.version) {
                landed++ // the interrupted write had committed before the kill: it is the new state
                lane.done.set(key, found.version)
              }
              checked++
            }
            // No other row: an interrupted create is there whole (counted above) or not at all.
            assert.equal(rows.n, lane.done.size)
          } finally {
            await store.close()
          }
        }
      })
      .map((lane) =>
        lane.catch((error: unknown) => {
          failed = true
          throw error
        }),
      ),
  )
  for (const result of results) if (result.status === 'rejected') throw result.reason
  const sessions = lanes.reduce((sum, lane) => sum + lane.done.size, 0)
  t.diagnostic(
    `${lanes.length * killsPerLane} kills: ${interrupted} inside a store call (${landed} of those had committed), ${checked} record checks, ${sessions} sessions at the end`,
  )
  assert.ok(interrupted > 0, 'at least one kill landed inside a store call')
})
