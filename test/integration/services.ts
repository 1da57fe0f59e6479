// PostgreSQL and Redis for integration tests: skip with a notice on a laptop without them, fail under CI.
import { createConnection } from 'node:net'
import { userInfo } from 'node:os'

const DEFAULTS = {
  postgres: { env: 'TESSERA_TEST_POSTGRES_URL', url: 'postgres://127.0.0.1:5432/test', port: 5432 },
  redis: { env: 'TESSERA_TEST_REDIS_URL', url: 'redis://127.0.0.1:6379', port: 6379 },
} as const

/** undefined when the service answers; otherwise the reason to skip (or a thrown error under CI=true). */
export async function serviceSkip(service: keyof typeof DEFAULTS): Promise<string | undefined> {
  const { env, url } = DEFAULTS[service]
  const target = new URL(process.env[env] ?? url)
  const reachable = await new Promise<boolean>((resolve) => {
    const socket = createConnection({
      host: target.hostname,
      port: Number(target.port || DEFAULTS[service].port),
    })
    socket.setTimeout(2000)
    const settle = (reachable: boolean) => {
      socket.destroy()
      resolve(reachable)
    }
    socket.once('connect', () => settle(true))
    socket.once('error', () => settle(false))
    socket.once('timeout', () => settle(false))
  })
  if (reachable) return undefined
  const reason = `${service} is not reachable at ${target.host}; set ${env} to point these tests at a server`
  if (process.env.CI === 'true') throw new Error(reason)
  console.log(`# skipped: ${reason}`)
  return reason
}

/** Drops the tables whose names start with `prefix` (left by tests), if PostgreSQL is reachable. */
export async function cleanupPostgres(prefix: string): Promise<void> {
  if ((await serviceSkip('postgres').catch(() => 'down')) !== undefined) return
  const { default: pg } = await import('pg')
  const url = new URL(process.env.TESSERA_TEST_POSTGRES_URL ?? DEFAULTS.postgres.url)
  // pg takes the user from $USER only; like psql, fall back to the OS user name.
  if (url.username === '' && !process.env.PGUSER && !process.env.USER) url.username = userInfo().username
  const client = new pg.Client({ connectionString: url.toString() })
  await client.connect()
  try {
    const { rows } = await client.query<{ tablename: string }>(
      "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND starts_with(tablename, $1)",
      [prefix],
    )
    for (const { tablename } of rows) await client.query(`DROP TABLE IF EXISTS "${tablename}"`)
  } finally {
    await client.end()
  }
}

/** Deletes the keys starting with `prefix` (left by tests), if Redis is reachable. */
export async function cleanupRedis(prefix: string): Promise<void> {
  if ((await serviceSkip('redis').catch(() => 'down')) !== undefined) return
  const { Redis } = await import('ioredis')
  const client = new Redis(process.env.TESSERA_TEST_REDIS_URL ?? DEFAULTS.redis.url)
  try {
    let cursor = '0'
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
      if (keys.length > 0) await client.del(...keys)
      cursor = next
    } while (cursor !== '0')
  } finally {
    client.disconnect()
  }
}
