/**
 * The backends: a private redis-server for this run (so INFO commandstats counts this bench's commands and
 * nobody else's), and the machine's PostgreSQL with a table of this run's own.
 */
import { spawnSync } from 'node:child_process'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { spawnTracked, type Tracked } from './children.js'
import { errorMessage } from './common.js'

/** A free TCP port on 127.0.0.1 (free when asked: the race is harmless for a bench). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject()))
    })
  })
}

interface RedisCommandClient {
  connect(): Promise<unknown>
  info(section: string): Promise<string>
  monitor(callback: (line: string) => void): Promise<void>
  quit(): Promise<unknown>
  destroy(): void
}

/** Commands seen by MONITOR, by name: sent by clients, or run inside Lua scripts. */
export interface MonitoredCommands {
  readonly client: Record<string, number>
  readonly lua: Record<string, number>
}

/** A Redis the bench can use, and a way to count the commands it served. */
export interface RedisService {
  readonly url: string
  /** 'private' when the bench started its own redis-server. */
  readonly origin: 'private' | 'shared'
  /** Total calls of every command so far, minus the INFO calls this counter made itself. */
  commands(): Promise<number>
  /** Calls per command so far. */
  commandStats(): Promise<Record<string, number>>
  /**
   * Starts MONITOR on a connection of its own; the function returned stops it and resolves what it saw.
   * MONITOR slows Redis down, so it runs only in a short extra phase, never while throughput is measured.
   */
  monitor(): Promise<() => Promise<MonitoredCommands>>
  stop(): Promise<void>
}

async function redisClient(url: string): Promise<RedisCommandClient> {
  const { createClient } = await import('redis')
  const client = createClient({ url, socket: { connectTimeout: 2000, reconnectStrategy: false } })
  client.on('error', () => {})
  await client.connect()
  return client as unknown as RedisCommandClient
}

function parseCommandStats(info: string): Record<string, number> {
  const stats: Record<string, number> = {}
  for (const line of info.split(/\r?\n/)) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line)
    if (match !== null) stats[match[1]!] = Number(match[2])
  }
  return stats
}

/**
 * Starts a private redis-server on a free loopback port (no persistence); falls back to the machine's Redis
 * at 127.0.0.1:6379, whose counts then include other clients' commands. Undefined when neither works.
 */
export async function startRedis(notes: string[]): Promise<RedisService | undefined> {
  let child: Tracked | undefined
  let url: string | undefined
  let origin: 'private' | 'shared' = 'private'
  const found = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
  if (found.status === 0) {
    const port = await freePort()
    child = spawnTracked(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        tmpdir(),
        '--logfile',
        '',
        '--loglevel',
        'warning',
      ],
      'redis-server',
    )
    url = `redis://127.0.0.1:${port}`
  } else {
    origin = 'shared'
    url = 'redis://127.0.0.1:6379'
    notes.push(
      'no redis-server binary: using the Redis at 127.0.0.1:6379, whose command counts include other clients',
    )
  }
  let client: RedisCommandClient | undefined
  for (let attempt = 0; attempt < 40 && client === undefined; attempt++) {
    try {
      client = await redisClient(url)
    } catch (error) {
      if (attempt === 39 || child?.exited) {
        notes.push(`Redis not reachable at ${url}: ${errorMessage(error)}`)
        await child?.kill()
        return undefined
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  const connected = client!
  let infoCalls = 0
  const commandStats = async () => {
    const stats = parseCommandStats(await connected.info('commandstats'))
    infoCalls++
    // Each INFO shows up in the next one's counts; take this counter's own calls out.
    if (stats.info !== undefined) stats.info -= infoCalls - 1
    if (stats.info === 0) delete stats.info
    return stats
  }
  const monitor = async () => {
    const watcher = await redisClient(url!)
    const seen: MonitoredCommands = { client: {}, lua: {} }
    // 1700000000.123456 [0 127.0.0.1:40000] "get" "key"   — or [0 lua] for a command run by a script
    await watcher.monitor((line) => {
      const match = /^\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"/.exec(String(line))
      if (match === null) return
      const name = match[2]!.toLowerCase()
      const bucket = match[1] === 'lua' ? seen.lua : seen.client
      bucket[name] = (bucket[name] ?? 0) + 1
    })
    return async () => {
      await new Promise((resolve) => setTimeout(resolve, 150)) // the last lines still on their way
      watcher.destroy()
      return seen
    }
  }
  return {
    url,
    origin,
    commandStats,
    monitor,
    commands: async () => Object.values(await commandStats()).reduce((sum, calls) => sum + calls, 0),
    stop: async () => {
      await connected.quit().catch(() => connected.destroy())
      await child?.kill()
    },
  }
}

export interface PostgresService {
  readonly url: string
  /** The table the tessera servers of this run share; dropped by stop(). */
  readonly table: string
  /** How statements are counted, for the report. */
  readonly counting: string
  stop(): Promise<void>
}

/** Connects to the machine's PostgreSQL (TESSERA_BENCH_POSTGRES_URL, else postgres@127.0.0.1:5432/postgres). */
export async function connectPostgres(notes: string[]): Promise<PostgresService | undefined> {
  const url = process.env.TESSERA_BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
  const { default: pg } = await import('pg')
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 })
  client.on('error', () => {})
  try {
    await client.connect()
  } catch (error) {
    notes.push(`PostgreSQL not reachable at ${url}: ${errorMessage(error)}`)
    await client.end().catch(() => {})
    return undefined
  }
  let counting =
    "statements sent to PostgreSQL, counted at each pooled connection's query() in the server process"
  try {
    const { rows } = await client.query<{ setting: string }>(
      "select setting from pg_settings where name = 'shared_preload_libraries'",
    )
    if (!(rows[0]?.setting ?? '').includes('pg_stat_statements')) {
      counting +=
        '; pg_stat_statements is not loaded on this server (shared_preload_libraries), so it cannot be used'
    }
  } catch {
    // the note is only a nicety
  }
  const table = `tessera_bench_${process.pid}_${Date.now().toString(36)}`
  return {
    url,
    table,
    counting,
    stop: async () => {
      try {
        await client.query(`drop table if exists "${table}"`)
      } catch (error) {
        notes.push(`could not drop the bench table ${table}: ${errorMessage(error)}`)
      }
      await client.end().catch(() => {})
    },
  }
}
