/**
 * What the orchestrator (bench/run.ts) and its child processes share: scenario names, the IPC messages, and
 * the secret every library signs with. Nothing here imports a library under test.
 */

/** One secret for every library, long enough for all of them (iron-session and @fastify/session want ≥ 32). */
export const SECRET = 'bench-secret-6f1c2a9e8b7d4c3f0a5e9d8c7b6a5f4e3d2c1b0a'

/** Every session cookie in the bench is called this, whatever the library. */
export const COOKIE_NAME = 'sid'

/** Idle lifetime given to every library that has one: 30 minutes, tessera's default. */
export const IDLE_MS = 30 * 60_000

export type ScenarioKind = 'ceiling' | 'peer' | 'tessera'
export type Backend = 'redis' | 'postgres'

export interface ScenarioInfo {
  readonly id: string
  readonly label: string
  readonly kind: ScenarioKind
  /**
   * Scenarios of one group run side by side: their servers are all started, then measured in interleaved
   * rounds (A B C, B C A, …), so that the machine's changing background load touches each of them alike.
   * The ratios compare scenarios of one group.
   */
  readonly group: string
  /** false: no session at all (the ceilings); cookies are still sent so the load generator does the same work. */
  readonly sessions: boolean
  /** The session lives in the cookie: a modifying request returns a new cookie, the old one stays valid. */
  readonly stateless?: boolean
  readonly backend?: Backend
  /** A tessera module that must import for this scenario to run (parts written concurrently by others). */
  readonly needsModule?: string
  /** Runs in the full mode only: the quick mode keeps one scenario per store and one peer per framework. */
  readonly fullOnly?: boolean
}

const tessera = 'tessera' as const
const peer = 'peer' as const
const ceiling = 'ceiling' as const

/** The HTTP scenarios, by group, in run order. */
export const SCENARIOS: readonly ScenarioInfo[] = [
  {
    group: 'node',
    id: 'node-bare',
    label: 'node:http, no sessions (ceiling)',
    kind: ceiling,
    sessions: false,
  },
  {
    group: 'node',
    id: 'tessera-node-memory',
    label: 'tessera + node:http + MemoryStore',
    kind: tessera,
    sessions: true,
  },
  {
    group: 'node',
    id: 'tessera-node-sqlite',
    label: 'tessera + node:http + SqliteStore',
    kind: tessera,
    sessions: true,
    needsModule: 'stores/sqlite',
  },
  {
    group: 'express',
    id: 'express-bare',
    label: 'Express 5, no sessions (ceiling)',
    kind: ceiling,
    sessions: false,
  },
  {
    group: 'express',
    id: 'tessera-express-memory',
    label: 'tessera + Express + MemoryStore',
    kind: tessera,
    sessions: true,
  },
  {
    group: 'express',
    id: 'express-session-memory',
    label: 'express-session + MemoryStore',
    kind: peer,
    sessions: true,
  },
  {
    group: 'express',
    id: 'express-session-memorystore',
    label: 'express-session + memorystore',
    kind: peer,
    sessions: true,
    fullOnly: true,
  },
  {
    group: 'express',
    id: 'tessera-express-sqlite',
    label: 'tessera + Express + SqliteStore',
    kind: tessera,
    sessions: true,
    needsModule: 'stores/sqlite',
    fullOnly: true,
  },
  {
    group: 'fastify',
    id: 'fastify-bare',
    label: 'Fastify 5, no sessions (ceiling)',
    kind: ceiling,
    sessions: false,
  },
  {
    group: 'fastify',
    id: 'tessera-fastify-memory',
    label: 'tessera + Fastify + MemoryStore',
    kind: tessera,
    sessions: true,
    needsModule: 'adapters/fastify',
  },
  {
    group: 'fastify',
    id: 'fastify-session',
    label: '@fastify/session (default store)',
    kind: peer,
    sessions: true,
  },
  {
    group: 'stateless',
    id: 'tessera-node-cookie',
    label: 'tessera + node:http + CookieStore (stateless)',
    kind: tessera,
    sessions: true,
    stateless: true,
    needsModule: 'stores/cookie',
  },
  {
    group: 'stateless',
    id: 'iron-session',
    label: 'iron-session + node:http',
    kind: peer,
    sessions: true,
    stateless: true,
  },
  {
    group: 'redis',
    id: 'tessera-express-redis',
    label: 'tessera + Express + RedisStore',
    kind: tessera,
    sessions: true,
    backend: 'redis',
    needsModule: 'stores/redis',
  },
  {
    group: 'redis',
    id: 'express-session-redis',
    label: 'express-session + connect-redis',
    kind: peer,
    sessions: true,
    backend: 'redis',
  },
  {
    group: 'redis',
    id: 'tessera-node-redis',
    label: 'tessera + node:http + RedisStore',
    kind: tessera,
    sessions: true,
    backend: 'redis',
    needsModule: 'stores/redis',
    fullOnly: true,
  },
  {
    group: 'postgres',
    id: 'tessera-node-postgres',
    label: 'tessera + node:http + PostgresStore',
    kind: tessera,
    sessions: true,
    backend: 'postgres',
    needsModule: 'stores/postgres',
  },
  {
    group: 'postgres',
    id: 'tessera-express-postgres',
    label: 'tessera + Express + PostgresStore',
    kind: tessera,
    sessions: true,
    backend: 'postgres',
    needsModule: 'stores/postgres',
    fullOnly: true,
  },
]

/**
 * A scenario whose tessera module (`needsModule`) has no source file yet is listed as "not yet available"
 * rather than measured; one whose file exists but does not import is "skipped" with the error.
 */

/** How a server child is told what to serve (JSON in argv[2]). */
export interface ServerConfig {
  readonly scenario: string
  readonly redisUrl?: string | undefined
  readonly postgresUrl?: string | undefined
  /** A table of its own for this run, dropped at the end. */
  readonly postgresTable?: string | undefined
  readonly sqlitePath?: string | undefined
  /** Key prefix in Redis, so a shared server's other keys are never touched. */
  readonly redisPrefix?: string | undefined
}

export type ToServer = { type: 'memory' } | { type: 'cpu' } | { type: 'stats' } | { type: 'close' }

export interface MemoryReport {
  readonly rss: number
  readonly heapUsed: number
  readonly heapTotal: number
  readonly external: number
  /** heapUsed after a full collection: what the process really keeps. */
  readonly heapUsedAfterGc: number | undefined
}

export type FromServer =
  | { type: 'ready'; port: number }
  | { type: 'failed'; message: string }
  | { type: 'memory'; memory: MemoryReport }
  /** process.cpuUsage() of the server: user and system CPU time in microseconds since it started. */
  | { type: 'cpu'; user: number; system: number }
  | { type: 'stats'; queries: number }
  | { type: 'closed' }

export function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? ` (cause: ${error.cause.message})` : ''
    return `${error.message}${cause}`
  }
  return String(error)
}
