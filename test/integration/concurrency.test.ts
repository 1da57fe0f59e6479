// No lost updates: many concurrent requests on one session, through two app processes sharing one store,
// for every store. Each app is a real process (fixtures/counter-app.ts) so the race is a real one.
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { redisServerAvailable, startRedisCluster, type TestCluster } from '../redis-cluster.js'
import { cleanupPostgres, cleanupRedis, serviceSkip } from './services.js'

const root = join(import.meta.dirname, '../..')
const dir = mkdtempSync(join(tmpdir(), 'tessera-concurrency-'))
const children: ChildProcess[] = []
after(async () => {
  await Promise.all(
    children.map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
      await exited
      clearTimeout(timer)
    }),
  )
  rmSync(dir, { recursive: true, force: true })
})

async function startApp(storeUrl: string): Promise<string> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'test/integration/fixtures/counter-app.ts', storeUrl],
    {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  children.push(child)
  let output = ''
  child.stderr!.on('data', (chunk) => (output += chunk))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`app did not start:\n${output}`)), 20_000)
    child.stdout!.on('data', (chunk) => {
      output += chunk
      const match = /listening (\d+)/.exec(output)
      if (match) {
        clearTimeout(timer)
        resolve(`http://127.0.0.1:${match[1]}`)
      }
    })
    child.once('exit', (code) => reject(new Error(`app exited with ${code}:\n${output}`)))
  })
}

interface Answer {
  status: number
  body: { isNew?: boolean; data?: Record<string, unknown>; code?: string }
  cookie: string | undefined
}

async function call(origin: string, path: string, cookie?: string): Promise<Answer> {
  const response = await fetch(`${origin}${path}`, { method: 'POST', headers: cookie ? { cookie } : {} })
  return {
    status: response.status,
    body: (await response.json()) as Answer['body'],
    cookie: response.headers.getSetCookie()[0]?.split(';')[0],
  }
}

const stores: {
  name: string
  url: () => string
  processes: number
  skip?: () => Promise<string | undefined>
}[] = [
  { name: 'MemoryStore (one process)', url: () => 'memory:', processes: 1 },
  {
    name: 'SqliteStore',
    url: () => `sqlite:${join(dir, `s-${randomBytes(4).toString('hex')}.db`)}`,
    processes: 2,
  },
  { name: 'FileStore', url: () => `file:${join(dir, `f-${randomBytes(4).toString('hex')}`)}`, processes: 2 },
  {
    name: 'PostgresStore',
    url: () =>
      `${process.env.TESSERA_TEST_POSTGRES_URL ?? 'postgres://127.0.0.1:5432/test'}?table=tessera_concurrency_${randomBytes(4).toString('hex')}`,
    processes: 2,
    skip: () => serviceSkip('postgres'),
  },
  {
    name: 'RedisStore',
    url: () =>
      `${process.env.TESSERA_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'}?prefix=tessera-concurrency-${randomBytes(4).toString('hex')}:`,
    processes: 2,
    skip: () => serviceSkip('redis'),
  },
  {
    name: 'RedisStore on a 3-master Redis Cluster',
    url: () =>
      `redis-cluster:${cluster!.nodes.map((node) => `${node.host}:${node.port}`).join(',')}?prefix=tessera-concurrency-${randomBytes(4).toString('hex')}:`,
    processes: 2,
    skip: async () => {
      if (!redisServerAvailable()) {
        if (process.env.CI === 'true')
          throw new Error('redis-server 7 and redis-cli are needed for the cluster tests')
        console.log(
          '# skipped: redis-server 7 and redis-cli are not installed, so no test cluster can be started',
        )
        return 'redis-server is not installed'
      }
      cluster ??= await startRedisCluster()
      return undefined
    },
  },
]

let cluster: TestCluster | undefined
after(async () => {
  await cluster?.stop()
  await cleanupPostgres('tessera_concurrency_')
  await cleanupRedis('tessera-concurrency-')
})

for (const store of stores) {
  describe(`concurrent requests on one session: ${store.name}`, async () => {
    const skip = await store.skip?.()
    const url = store.url()
    let origins: string[] = []

    async function newSession(): Promise<string> {
      if (origins.length === 0) {
        origins = await Promise.all(Array.from({ length: store.processes }, () => startApp(url)))
      }
      const start = await call(origins[0]!, '/start')
      assert.ok(start.cookie)
      return start.cookie
    }

    it('keeps every change of 200 concurrent requests, each incrementing or appending to its own key', {
      skip,
    }, async () => {
      const cookie = await newSession()
      const answers = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          call(
            origins[i % origins.length]!,
            i % 2 ? `/increment?key=n${i}` : `/append?key=l${i}&value=v${i}`,
            cookie,
          ),
        ),
      )
      assert.deepEqual(
        answers.filter((answer) => answer.status !== 200).map((answer) => answer.body),
        [],
      )
      const { body } = await call(origins.at(-1)!, '/dump', cookie)
      for (let i = 0; i < 200; i++) {
        assert.deepEqual(
          body.data?.[i % 2 ? `n${i}` : `l${i}`],
          i % 2 ? 1 : [`v${i}`],
          `change ${i} is present`,
        )
      }
    })

    it('on a true conflict over one key, keeps one whole write and tells the others what happened', {
      skip,
    }, async () => {
      const cookie = await newSession()
      const values = Array.from({ length: 20 }, (_, i) => `value-${i}-${'x'.repeat(100)}`)
      const answers = await Promise.all(
        values.map((value, i) =>
          call(origins[i % origins.length]!, `/set?key=counter&value=${value}`, cookie),
        ),
      )
      for (const answer of answers) {
        if (answer.status !== 200)
          assert.deepEqual([answer.status, answer.body.code], [409, 'ERR_SESSION_CONFLICT'])
      }
      const saved = values.filter((_, i) => answers[i]!.status === 200)
      const { body } = await call(origins[0]!, '/dump', cookie)
      assert.ok(
        saved.includes(body.data?.counter as string),
        'the stored value is one acknowledged write, whole',
      )
    })

    it('stays destroyed when a destroy races 50 writes', { skip }, async () => {
      const cookie = await newSession()
      const writes = Array.from({ length: 50 }, (_, i) =>
        call(origins[i % origins.length]!, `/increment?key=w${i}`, cookie),
      )
      const destroy = call(origins[0]!, '/destroy', cookie)
      const answers = await Promise.all([...writes, destroy])
      for (const answer of answers) {
        if (answer.status !== 200)
          assert.deepEqual([answer.status, answer.body.code], [409, 'ERR_SESSION_DESTROYED'])
      }
      for (const origin of origins) {
        const { body } = await call(origin, '/dump', cookie)
        assert.equal(body.isNew, true, 'the destroyed session never comes back')
      }
    })
  })
}
