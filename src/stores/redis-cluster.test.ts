// RedisStore on a 3-master Redis Cluster that this file starts from the local redis-server and stops at the
// end. Skipped with a notice when redis-server is not installed, except under CI=true.

import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { Cluster, type Redis } from 'ioredis'
import { createCluster } from 'redis'
import { redisServerAvailable, startRedisCluster, type TestCluster } from '../../test/redis-cluster.js'
import type { StoreRecord } from '../store.js'
import { runStoreContract } from '../testing/store-contract.js'
import { RedisStore } from './redis.js'

const available = redisServerAvailable()
const skip = available ? undefined : 'redis-server 7+ and redis-cli are not installed'
if (skip !== undefined && process.env.CI !== 'true')
  console.warn(`# RedisStore cluster tests skipped: ${skip}`)

let cluster: TestCluster | undefined
let ioCluster: Cluster | undefined
let nodeCluster: Awaited<ReturnType<typeof connectNodeRedis>> | undefined

if (available) {
  before(
    async () => {
      cluster = await startRedisCluster({ masters: 3 })
      ioCluster = new Cluster([...cluster.nodes])
      await new Promise<void>((resolve, reject) => {
        ioCluster!.once('ready', resolve)
        ioCluster!.once('error', reject)
      })
      nodeCluster = await connectNodeRedis(cluster)
    },
    { timeout: 30_000 },
  )

  // Runs even when `before` or a test failed: no server and no temporary directory outlives the file.
  after(async () => {
    await ioCluster?.quit().catch(() => ioCluster?.disconnect())
    await nodeCluster?.close().catch(() => nodeCluster?.destroy())
    await cluster?.stop()
  })
} else if (process.env.CI === 'true') {
  it('starts a Redis Cluster (CI=true: a missing redis-server fails instead of skipping)', () => {
    assert.fail(skip)
  })
}

function connectNodeRedis(started: TestCluster) {
  return createCluster({
    rootNodes: started.nodes.map(({ host, port }) => ({ url: `redis://${host}:${port}` })),
  }).connect()
}

const newPrefix = () => `tessera-test:cluster:${randomUUID()}:`

runStoreContract({
  name: 'RedisStore on Redis Cluster (ioredis Cluster)',
  create: () => new RedisStore({ client: ioCluster!, prefix: newPrefix() }),
  skip,
})

runStoreContract({
  name: 'RedisStore on Redis Cluster (node-redis createCluster)',
  create: () => new RedisStore({ client: nodeCluster!, prefix: newPrefix() }),
  skip,
})

const T = 1_700_000_000_000
const HOUR = 3_600_000
const newKey = () => randomBytes(32).toString('hex')
const record = (options: Partial<StoreRecord> = {}): StoreRecord => ({
  data: '{}',
  expiresAt: T + HOUR,
  version: 1,
  ...options,
})

describe('RedisStore on Redis Cluster', skip === undefined ? {} : { skip }, () => {
  it('spreads records and user indexes over every master, each command and script on one key', async () => {
    const prefix = newPrefix()
    const store = new RedisStore({ client: ioCluster!, prefix })
    const users = Array.from({ length: 12 }, (_, i) => `user-${i}`)
    // 20 rounds of one session per user; sessions of even rounds expire at T + 1000.
    const sessions = Array.from({ length: 240 }, (_, i) => ({
      key: newKey(),
      userId: users[i % users.length]!,
      expires: Math.floor(i / users.length) % 2 === 0,
    }))
    await Promise.all(
      sessions.map(({ key, userId, expires }) =>
        store.create(key, record({ userId, expiresAt: T + (expires ? 1000 : HOUR) }), T),
      ),
    )

    // Every master holds records and user indexes, so the cases below cross slots and nodes throughout.
    const masters = ioCluster!.nodes('master')
    assert.equal(masters.length, 3)
    for (const master of masters) {
      const keys = await scanNode(master, `${prefix}*`)
      assert.ok(
        keys.some((key) => key.startsWith(`${prefix}s:`)),
        `${master.options.port} holds records`,
      )
      assert.ok(
        keys.some((key) => key.startsWith(`${prefix}u:`)),
        `${master.options.port} holds indexes`,
      )
    }

    for (const userId of users) {
      const expected = sessions.filter((s) => s.userId === userId && !s.expires).map((s) => s.key)
      const listed = await store.listByUser(userId, T + 1000)
      assert.deepEqual(listed.map((entry) => entry.key).sort(), expected.sort())
    }
    // Rounds 0 (expiring) and 1 (live) get a later expiry.
    await Promise.all(sessions.slice(0, 24).map(({ key }) => store.touch(key, T + 10 * HOUR, T + 1)))
    assert.equal(await store.cleanup(T + 1000), 120 - 12, 'the expiring sessions, less the 12 touched ones')
    // user-0 has 10 live sessions plus the touched one from round 0; all but that one go.
    assert.equal(await store.destroyByUser('user-0', { exceptKey: sessions[0]!.key }), 10)
    assert.deepEqual(
      (await store.listByUser('user-0', T + 1000)).map((entry) => entry.key),
      [sessions[0]!.key],
    )
  })

  it('falls back to EVAL on nodes whose script cache was flushed, on both drivers', async () => {
    for (const client of [ioCluster!, nodeCluster!]) {
      const store = new RedisStore({ client, prefix: newPrefix() })
      const keys = Array.from({ length: 30 }, newKey)
      for (const master of ioCluster!.nodes('master')) await master.script('FLUSH')
      for (const key of keys) assert.equal(await store.create(key, record({ userId: 'u' }), T), true)
      for (const master of ioCluster!.nodes('master')) await master.script('FLUSH')
      for (const key of keys) assert.equal(await store.touch(key, T + 4 * HOUR, T), true)
      assert.equal((await store.listByUser('u', T)).length, 30)
      assert.equal(await store.destroyByUser('u'), 30)
    }
  })
})

async function scanNode(node: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = []
  let cursor = '0'
  do {
    const [next, batch] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    keys.push(...batch)
    cursor = next
  } while (cursor !== '0')
  return keys
}
