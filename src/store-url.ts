/**
 * One string names a store: `memory:`, `sqlite:./data/sessions.db`, `file:./data/sessions`,
 * `postgres://user@host/db?table=sessions`, `redis://host:6379?prefix=app:`. Each store's module is loaded
 * only when its scheme is used, so the core keeps no dependency on any driver.
 *
 * @module
 */
import { SessionConfigError } from './errors.js'
import type { Store } from './store.js'
import type { CookieStore } from './stores/cookie.js'

/** Options of {@link openStore}. */
export interface OpenStoreOptions {
  /** PostgreSQL and Redis: connect in the background instead of failing when the server is down now. */
  readonly lazy?: boolean
}

/** The schemes {@link openStore} understands. */
export const STORE_SCHEMES = [
  'memory',
  'sqlite',
  'file',
  'postgres',
  'postgresql',
  'redis',
  'rediss',
] as const

/**
 * Opens the store named by `url`. The store owns what it opened: `await store.close()` releases it.
 *
 * | URL | store |
 * | --- | --- |
 * | `memory:` | `MemoryStore` (one process, lost on restart) |
 * | `sqlite:<path>` | `SqliteStore` on a file (better-sqlite3) |
 * | `file:<directory>` | `FileStore`, one file per session |
 * | `postgres://…` or `postgresql://…` | `PostgresStore` (pg); `?table=` and `?schema=` pick the table |
 * | `redis://…` or `rediss://…` | `RedisStore` (ioredis or redis); `?prefix=` sets the key prefix |
 * | `cookie:` (or `cookie:signed`) | `CookieStore`: stateless, the session sealed (or only signed) in the cookie |
 *
 * @example
 * const store = await openStore(process.env.SESSION_STORE ?? 'sqlite:./data/sessions.db')
 * With `lazy: true`, a PostgreSQL or Redis store is returned at once and connects in the background,
 * retrying until the server answers: the app starts while the backend is down, its requests fail with a
 * `StoreError` (503) until it is up, and then it serves with no restart. Without it (the default), opening
 * fails fast when the server cannot be reached, so a wrong URL stops a deploy instead of every request.
 *
 * @throws {SessionConfigError} for an unknown scheme, a malformed URL or a missing driver package.
 * @throws {StoreError} when the server cannot be reached (not with `lazy`).
 */
export async function openStore(url: string, options: OpenStoreOptions = {}): Promise<Store | CookieStore> {
  const lazy = options.lazy === true
  const colon = typeof url === 'string' ? url.indexOf(':') : -1
  if (colon <= 0)
    throw new SessionConfigError(`store URL ${describe(url)} has no scheme; use one of ${schemes()}`)
  const scheme = url.slice(0, colon).toLowerCase()
  const rest = url.slice(colon + 1)
  switch (scheme) {
    case 'memory': {
      const { MemoryStore } = await load<typeof import('./stores/memory.js')>('./stores/memory.js')
      return new MemoryStore()
    }
    case 'sqlite': {
      const { SqliteStore } = await load<typeof import('./stores/sqlite.js')>('./stores/sqlite.js')
      return SqliteStore.open({ path: localPath(rest, url) })
    }
    case 'file': {
      const { FileStore } = await load<typeof import('./stores/file.js')>('./stores/file.js')
      return new FileStore({ directory: localPath(rest, url) })
    }
    case 'postgres':
    case 'postgresql': {
      const { PostgresStore } = await load<typeof import('./stores/postgres.js')>('./stores/postgres.js')
      const parsed = parse(url)
      const table = takeParam(parsed, 'table')
      const schema = takeParam(parsed, 'schema')
      return PostgresStore.open({
        connectionString: parsed.toString(),
        ...(table !== undefined && { table }),
        ...(schema !== undefined && { schema }),
        lazy,
      })
    }
    case 'redis':
    case 'rediss': {
      const { RedisStore } = await load<typeof import('./stores/redis.js')>('./stores/redis.js')
      const parsed = parse(url)
      const prefix = takeParam(parsed, 'prefix')
      return RedisStore.open({ url: parsed.toString(), ...(prefix !== undefined && { prefix }), lazy })
    }
    case 'cookie': {
      const { CookieStore } = await load<typeof import('./stores/cookie.js')>('./stores/cookie.js')
      if (rest !== '' && rest !== 'signed')
        throw new SessionConfigError('use cookie: (sealed) or cookie:signed (readable, signed)')
      return new CookieStore({ signedOnly: rest === 'signed' })
    }
    default:
      throw new SessionConfigError(`unknown store scheme "${scheme}:"; use one of ${schemes()}`)
  }
}

// A variable specifier, so that bundlers (esbuild, webpack, Vercel's and Cloudflare's) leave the Node-only
// stores out of an edge bundle: a store's module is loaded only when its scheme is used, at run time.
function load<Module>(specifier: string): Promise<Module> {
  return import(specifier)
}

// `sqlite:./x.db`, `sqlite:/abs/x.db` and `sqlite:///abs/x.db` all name a local path.
function localPath(rest: string, url: string): string {
  const path = rest.startsWith('//') ? rest.slice(2) : rest
  if (path === '')
    throw new SessionConfigError(`store URL ${describe(url)} needs a path, e.g. sqlite:./data/sessions.db`)
  return path
}

function parse(url: string): URL {
  try {
    return new URL(url)
  } catch (error) {
    throw new SessionConfigError(`store URL ${describe(url)} is not a valid URL`, { cause: error })
  }
}

// Our own parameters are removed so the driver never sees options it does not know.
function takeParam(url: URL, name: string): string | undefined {
  const value = url.searchParams.get(name) ?? undefined
  url.searchParams.delete(name)
  return value
}

function schemes(): string {
  return STORE_SCHEMES.map((scheme) => `${scheme}:`).join(', ')
}

// Never echo credentials from a URL into an error message.
function describe(url: unknown): string {
  if (typeof url !== 'string') return typeof url
  return JSON.stringify(url.replace(/\/\/[^@/]*@/, '//***@').slice(0, 80))
}
