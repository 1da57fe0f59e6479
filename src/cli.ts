#!/usr/bin/env node
/**
 * The `tessera` command: inspect and maintain a session store from a shell. `npx tessera --help` lists the
 * commands; docs/cli.md is the reference (every flag, output and exit code).
 *
 * The logic lives in {@link main}, which takes the arguments and where to write, and resolves the exit code,
 * so tests (and other tools) can run it in-process; the bottom of this file runs it when this file is the
 * process's entry point.
 *
 * @module
 */

import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, realpathSync } from 'node:fs'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { SessionConfigError, StoreError } from './errors.js'
import { createSessionManager } from './manager.js'
import { MIN_SECRET_BYTES } from './signer.js'
import type { CleanupOptions, Store } from './store.js'
import { openStore } from './store-url.js'

/** The exit codes of the `tessera` command. */
export const EXIT_CODES = {
  /** The command did what it was asked (including "nothing to do": nothing to purge, no such session). */
  ok: 0,
  /** The store failed: unreachable, timed out, refused a query, or a path that does not exist. */
  failure: 1,
  /** Usage: unknown command or option, a missing or malformed store URL, a command this store cannot do. */
  usage: 2,
  /** A driver package is missing (or installed but cannot load): `npm install pg`, `ioredis`, `better-sqlite3`. */
  driver: 3,
} as const

/** Where {@link main} writes, and the environment it reads (`TESSERA_STORE`, `DEBUG`). */
export interface CliIo {
  readonly stdout: { write(text: string): unknown }
  /** A TTY stderr (`isTTY`) gets a progress bar during long purges; `columns` is its width. */
  readonly stderr: { write(text: string): unknown; readonly isTTY?: boolean; readonly columns?: number }
  readonly env: Readonly<Record<string, string | undefined>>
  /** Clock for the progress display only (stores get `Date.now()`). @default Date.now */
  readonly clock?: (() => number) | undefined
}

const OPTIONS = {
  store: { type: 'string', short: 's' },
  json: { type: 'boolean' },
  timeout: { type: 'string' },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
  user: { type: 'string', short: 'u' },
  session: { type: 'string' },
  'idle-timeout': { type: 'string' },
  print: { type: 'boolean' },
  bytes: { type: 'string' },
} as const

type OptionName = keyof typeof OPTIONS
type Values = { [K in OptionName]?: (typeof OPTIONS)[K]['type'] extends 'string' ? string : boolean }

const STORE_OPTIONS = ['store', 'json', 'timeout'] as const

interface Command {
  readonly options: readonly OptionName[]
  readonly summary: string
  readonly help: string
}

const COMMANDS: Record<string, Command> = {
  stats: {
    options: STORE_OPTIONS,
    summary: 'live sessions, expired ones not cleaned up yet, bytes of session data',
    help: `Usage: tessera stats --store <url> [--json]

Counts what the store holds now: live sessions, expired sessions that cleanup has not deleted yet, and the
bytes of session data. It reads every record (an aggregate query, a directory walk, a Redis SCAN).

Example:
  tessera stats --store postgres://app@db/app
  tessera stats --store sqlite:./data/sessions.db --json`,
  },
  list: {
    options: [...STORE_OPTIONS, 'user', 'idle-timeout'],
    summary: "a user's live sessions: created, last seen, expires, IP, user agent",
    help: `Usage: tessera list --user <id> --store <url> [--idle-timeout <time>] [--json]

Lists the live sessions of one user (bound by session.login(id)), most recently active first. Each session
is shown by its store key (the SHA-256 of its ID, useless as a cookie; the table shows its first 16
characters), never by its ID.

Options:
  -u, --user <id>          the user ID your app passed to login()
      --idle-timeout <t>   the app's idleTimeout, from which "last seen" is derived (default 30m)

Example:
  tessera list --user 42 --store redis://cache:6379`,
  },
  revoke: {
    options: [...STORE_OPTIONS, 'user', 'session'],
    summary: 'end every session of a user (--user), or one session (--session <key>)',
    help: `Usage: tessera revoke --user <id> --store <url> [--json]
       tessera revoke --session <key> [--user <id>] --store <url> [--json]

Ends sessions at once: their next request starts logged out.

  --user <id>                 every session of that user ("log out everywhere"); prints how many
  --session <key>             one session, by the 64-character store key that list --json shows
  --session <prefix> --user   one of that user's sessions, by at least 16 leading characters of its key
                              (what the list table shows); an ambiguous prefix is refused

Revoking a session that is already gone is not an error: it reports 0.

Example:
  tessera revoke --user 42 --store postgres://app@db/app
  tessera revoke --user 42 --session 3f9a0c1b2d4e5f60 --store postgres://app@db/app`,
  },
  'purge-expired': {
    options: STORE_OPTIONS,
    summary: 'delete expired sessions now, with a progress bar on long runs',
    help: `Usage: tessera purge-expired --store <url> [--json]

Deletes the sessions that have expired (the store's cleanup, which its own timer also runs) and prints how
many. On a terminal, a long purge draws a progress bar on stderr. PostgreSQL: when another app server is
sweeping the same table at that moment, this run deletes nothing and reports 0.

Example:
  tessera purge-expired --store sqlite:./data/sessions.db`,
  },
  migrate: {
    options: [...STORE_OPTIONS, 'print'],
    summary: 'create the SQL table (SQLite, PostgreSQL), or print its SQL (--print)',
    help: `Usage: tessera migrate --store <url> [--print] [--json]

Creates the store's table and indexes if they are missing (SQLite, PostgreSQL), with the same SQL the store
runs when it opens; it is idempotent. --print prints that SQL instead, without connecting: for PostgreSQL it
honours ?table= and ?schema= in the URL. Stores without a schema (file, Redis) have nothing to migrate.

Example:
  tessera migrate --store 'postgres://admin@db/app?schema=auth'
  tessera migrate --print --store postgres://db/app | psql "$DATABASE_URL"`,
  },
  secret: {
    options: ['bytes'],
    summary: 'print a new random signing secret',
    help: `Usage: tessera secret [--bytes <n>]

Prints a new random secret (${MIN_SECRET_BYTES} bytes from the system's CSPRNG, base64url) on stdout, and how to
use it on stderr.

Options:
  --bytes <n>   random bytes, at least ${MIN_SECRET_BYTES} (the signer's minimum), at most 1024

Example:
  SESSION_SECRET=$(npx tessera secret)`,
  },
  help: {
    options: [],
    summary: 'this text, or the help of one command',
    help: 'Usage: tessera help [command]',
  },
}

const HELP = `Usage: tessera <command> [options]

Inspects and maintains a tessera session store.

Commands:
${Object.entries(COMMANDS)
  .map(([name, command]) => `  ${name.padEnd(15)}${command.summary}`)
  .join('\n')}

Options:
  -s, --store <url>   the store: sqlite:<path>, file:<dir>, postgres://…, redis://… (default: $TESSERA_STORE)
      --json          print one JSON document on stdout, for scripts
      --timeout <t>   give up connecting to the store after this long: 500ms, 5s, 1m (default 5s)
  -v, --verbose       on failure, print the stack and causes (or set DEBUG)
  -h, --help          this text; tessera <command> --help for one command
  -V, --version       print the version

Exit codes:
  0  done
  1  the store failed: unreachable, timed out, an error
  2  usage: unknown command or option, missing or malformed store URL, a command the store cannot do
  3  a driver package is missing: npm install pg, ioredis (or redis), better-sqlite3

Reference: docs/cli.md`

const DEFAULT_TIMEOUT = 5_000
const DEFAULT_IDLE_TIMEOUT = 30 * 60_000
const MAX_SECRET_BYTES = 1024
const MIN_PREFIX = 16
/** A purge that finishes sooner never draws a progress bar. */
const PROGRESS_DELAY_MS = 300
const PROGRESS_INTERVAL_MS = 100

/** A mistake in how the command was called: exit code 2. */
class UsageError extends Error {}

interface Context {
  readonly io: CliIo
  readonly values: Values
  readonly json: boolean
}

/**
 * Runs the `tessera` command with `argv` (the arguments after the command name) and resolves its exit code
 * (see {@link EXIT_CODES}). Never rejects, and closes every store it opens.
 *
 * @example
 * const code = await main(['stats', '--store', 'sqlite:./data/sessions.db', '--json'], {
 *   stdout: process.stdout,
 *   stderr: process.stderr,
 *   env: process.env,
 * })
 */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  let verbose = Boolean(io.env.DEBUG)
  let storeUrl: string | undefined
  try {
    const { values, positionals } = parse(argv)
    verbose ||= values.verbose === true
    const [name, ...rest] = positionals
    if (name === undefined) {
      if (values.version) return print(io, `${version()}\n`)
      if (values.help) return print(io, `${HELP}\n`)
      io.stderr.write(`${HELP}\n`)
      return EXIT_CODES.usage
    }
    const command = COMMANDS[name]
    if (command === undefined) throw new UsageError(`unknown command ${quote(name)}; run tessera --help`)
    if (values.help) return print(io, `${command.help}\n`)
    if (name === 'help') {
      if (rest.length > 1) throw new UsageError('help takes at most one command')
      if (rest[0] === undefined) return print(io, `${HELP}\n`)
      const topic = COMMANDS[rest[0]]
      if (topic === undefined) throw new UsageError(`unknown command ${quote(rest[0])}; run tessera --help`)
      return print(io, `${topic.help}\n`)
    }
    if (rest.length > 0) throw new UsageError(`unexpected argument ${quote(rest[0]!)} for ${name}`)
    for (const option of Object.keys(values) as OptionName[]) {
      if (option === 'verbose' || command.options.includes(option)) continue
      throw new UsageError(`--${option} is not an option of ${name}; run tessera ${name} --help`)
    }
    const context: Context = { io, values, json: values.json === true }
    if (name === 'secret') return secret(context)
    storeUrl = values.store || io.env.TESSERA_STORE || undefined
    if (storeUrl === undefined) {
      throw new UsageError(
        `${name} needs a store: pass --store <url> or set TESSERA_STORE (e.g. sqlite:./data/sessions.db)`,
      )
    }
    switch (name) {
      case 'stats':
        return await stats(context, storeUrl)
      case 'list':
        return await list(context, storeUrl)
      case 'revoke':
        return await revoke(context, storeUrl)
      case 'purge-expired':
        return await purgeExpired(context, storeUrl)
      default:
        return await migrate(context, storeUrl)
    }
  } catch (error) {
    return fail(io, error, verbose, storeUrl)
  }
}

function parse(argv: readonly string[]): { values: Values; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      options: OPTIONS,
      strict: true,
      allowPositionals: true,
    })
    return { values: values as Values, positionals }
  } catch (error) {
    // parseArgs explains itself ("Unknown option '--x'"); its hint about '--' does not apply here.
    const message = (error as Error).message.replace(/\. To specify a positional argument.*$/s, '')
    throw new UsageError(`${message}; run tessera --help`)
  }
}

// Commands.

async function stats(context: Context, url: string): Promise<number> {
  return withStore(context, url, 'stats', async (store) => {
    if (typeof store.stats !== 'function') {
      throw new UsageError(`this store cannot count its sessions (it has no stats()): ${safeUrl(url)}`)
    }
    const now = Date.now()
    const { live, expired, bytes } = await store.stats(now)
    if (context.json) {
      return printJson(context, {
        store: safeUrl(url),
        at: new Date(now).toISOString(),
        live,
        expired,
        bytes,
      })
    }
    const hint = expired > 0 ? ' (tessera purge-expired deletes them now)' : ''
    return print(
      context.io,
      `store    ${safeUrl(url)}
live     ${count(live)} ${live === 1 ? 'session' : 'sessions'}
expired  ${count(expired)} not cleaned up yet${hint}
data     ${formatBytes(bytes)}
`,
    )
  })
}

async function list(context: Context, url: string): Promise<number> {
  const userId = requireUser(context, 'list')
  const idleTimeout =
    context.values['idle-timeout'] === undefined
      ? DEFAULT_IDLE_TIMEOUT
      : duration(context.values['idle-timeout'], '--idle-timeout')
  return withStore(context, url, 'list', async (store) => {
    // The manager's own listing: the same filtering and "last seen" as the app's "your devices" page.
    const sessions = await managerFor(store, idleTimeout).listSessions(userId)
    if (context.json) {
      return printJson(context, {
        user: userId,
        sessions: sessions.map((session) => ({
          session: session.handle,
          createdAt: session.createdAt.toISOString(),
          authenticatedAt: session.authenticatedAt?.toISOString() ?? null,
          lastSeenAt: session.lastSeenAt.toISOString(),
          expiresAt: session.expiresAt.toISOString(),
          ip: session.ip ?? null,
          userAgent: session.userAgent ?? null,
        })),
      })
    }
    if (sessions.length === 0) return print(context.io, `user ${quote(userId)} has no live sessions\n`)
    const rows = [
      ['SESSION', 'CREATED', 'LAST SEEN', 'EXPIRES', 'IP', 'USER AGENT'],
      ...sessions.map((session) => [
        session.handle.slice(0, MIN_PREFIX),
        time(session.createdAt),
        time(session.lastSeenAt),
        time(session.expiresAt),
        printable(session.ip ?? '-'),
        printable(session.userAgent ?? '-'),
      ]),
    ]
    const plural = sessions.length === 1 ? 'session' : 'sessions'
    return print(
      context.io,
      `${sessions.length} live ${plural} of user ${quote(userId)}, most recently active first:\n${table(rows, context.io.stderr.columns)}`,
    )
  })
}

async function revoke(context: Context, url: string): Promise<number> {
  const { user, session } = context.values
  if (user === undefined && session === undefined) {
    throw new UsageError('revoke needs --user <id>, --session <key>, or both; run tessera revoke --help')
  }
  if (user === '') throw new UsageError('--user must not be empty')
  const key = session?.toLowerCase()
  if (key !== undefined) {
    if (!/^[0-9a-f]+$/.test(key) || key.length > 64) {
      throw new UsageError('--session takes a store key: hexadecimal, as tessera list shows it')
    }
    if (key.length < 64 && (user === undefined || key.length < MIN_PREFIX)) {
      throw new UsageError(
        `--session needs the full 64-character key, or at least ${MIN_PREFIX} characters together with --user`,
      )
    }
  }
  return withStore(context, url, 'revoke', async (store) => {
    if (key === undefined) {
      const revoked = await store.destroyByUser(user!)
      if (context.json) return printJson(context, { user: user!, revoked })
      return print(
        context.io,
        `revoked ${count(revoked)} ${revoked === 1 ? 'session' : 'sessions'} of user ${quote(user!)}\n`,
      )
    }
    let revoked: boolean
    let target = key
    if (user === undefined) {
      // No user to check ownership against: the full key names the session, whoever it belongs to.
      revoked = (await store.get(key, Date.now())) !== undefined
      await store.destroy(key) // an expired leftover goes too
    } else {
      const manager = managerFor(store, DEFAULT_IDLE_TIMEOUT)
      const matches = (await manager.listSessions(user)).filter((s) => s.handle.startsWith(key))
      if (matches.length > 1) {
        throw new UsageError(
          `${matches.length} sessions of user ${quote(user)} start with ${key}: give more characters`,
        )
      }
      target = matches[0]?.handle ?? key
      // revokeSession checks again that the session is this user's before destroying it.
      revoked = matches.length === 1 && (await manager.revokeSession(user, target))
    }
    const shown = target.length === 64 ? `${target.slice(0, MIN_PREFIX)}…` : target
    const whose = user === undefined ? '' : ` of user ${quote(user)}`
    if (context.json) {
      return printJson(context, {
        ...(user !== undefined && { user }),
        session: target,
        revoked: revoked ? 1 : 0,
      })
    }
    return print(
      context.io,
      revoked
        ? `revoked session ${shown}${whose}\n`
        : `no live session ${shown}${whose}: nothing to revoke\n`,
    )
  })
}

async function purgeExpired(context: Context, url: string): Promise<number> {
  return withStore(context, url, 'purge-expired', async (store) => {
    const now = Date.now()
    const progress = context.json || context.io.stderr.isTTY !== true ? undefined : new Progress(context.io)
    // A bar needs a total: count first, when the store can (the count is what this purge will delete).
    if (progress !== undefined && typeof store.stats === 'function') {
      progress.total = (await store.stats(now)).expired
    }
    const options: CleanupOptions = progress === undefined ? {} : { onProgress: (n) => progress.update(n) }
    let deleted: number
    try {
      deleted = await store.cleanup(now, options)
    } finally {
      progress?.clear()
    }
    if (context.json) return printJson(context, { deleted })
    return print(context.io, `deleted ${count(deleted)} expired ${deleted === 1 ? 'session' : 'sessions'}\n`)
  })
}

async function migrate(context: Context, url: string): Promise<number> {
  const scheme = schemeOf(url)
  let sql: string
  let table: string
  let schema: string | undefined
  if (scheme === 'sqlite') {
    const { sqliteSchemaSql } = await import('./stores/sqlite.js')
    table = 'tessera_sessions'
    sql = sqliteSchemaSql({ table })
  } else if (scheme === 'postgres' || scheme === 'postgresql') {
    const { postgresSchemaSql } = await import('./stores/postgres.js')
    const parsed = parseUrl(url)
    table = parsed.searchParams.get('table') ?? 'tessera_sessions'
    schema = parsed.searchParams.get('schema') ?? undefined
    sql = postgresSchemaSql({ table, schema })
  } else {
    const reason = `${scheme}: stores keep no schema; there is nothing to migrate`
    if (context.json) return printJson(context, { store: safeUrl(url), migrated: false, reason })
    // With --print, stdout is SQL for psql: the explanation goes beside it.
    if (context.values.print) context.io.stderr.write(`${reason}\n`)
    else context.io.stdout.write(`${reason}\n`)
    return EXIT_CODES.ok
  }
  if (context.values.print) {
    if (context.json) return printJson(context, { table, schema: schema ?? null, sql })
    return print(context.io, sql)
  }
  // Opening the store runs this SQL (PostgreSQL: after checking whether the table exists).
  return withStore(context, url, 'migrate', async () => {
    const name = schema === undefined ? table : `${schema}.${table}`
    if (context.json) {
      return printJson(context, { store: safeUrl(url), table, schema: schema ?? null, migrated: true })
    }
    return print(context.io, `table ${name} and its indexes are in place (${safeUrl(url)})\n`)
  })
}

function secret(context: Context): number {
  const bytes = context.values.bytes === undefined ? MIN_SECRET_BYTES : Number(context.values.bytes)
  if (!Number.isSafeInteger(bytes) || bytes < MIN_SECRET_BYTES || bytes > MAX_SECRET_BYTES) {
    throw new UsageError(`--bytes must be a whole number from ${MIN_SECRET_BYTES} to ${MAX_SECRET_BYTES}`)
  }
  context.io.stdout.write(`${randomBytes(bytes).toString('base64url')}\n`)
  context.io.stderr.write(
    `Keep it out of source control. Give it to the app as SESSION_SECRET and pass it as
  secrets: [process.env.SESSION_SECRET]
To rotate, put the new secret first and keep the old one until the cookies it signed have expired:
  secrets: [process.env.SESSION_SECRET, process.env.SESSION_SECRET_PREVIOUS]
`,
  )
  return EXIT_CODES.ok
}

// The store.

/**
 * Opens the store named by `url` for a command that needs what the server holds, runs `run`, and closes the
 * store whatever happens.
 */
async function withStore(
  context: Context,
  url: string,
  command: string,
  run: (store: Store) => Promise<number>,
): Promise<number> {
  const scheme = schemeOf(url)
  const timeout =
    context.values.timeout === undefined ? DEFAULT_TIMEOUT : duration(context.values.timeout, '--timeout')
  if (scheme === 'cookie') {
    throw new UsageError(
      `cookie: sessions live sealed in each browser's cookie and the server holds nothing, so ${command} has nothing to work on (to end them early, use CookieStore's validAfter, or rotate the secrets)`,
    )
  }
  if (scheme === 'memory') {
    throw new UsageError(
      `memory: sessions live inside the app's own process; a separate command cannot reach them`,
    )
  }
  if ((scheme === 'sqlite' || scheme === 'file') && command !== 'migrate') {
    // Opening would create a missing file or directory: a typo must not look like an empty store.
    const path = localPath(url)
    if (path !== undefined && !existsSync(path)) {
      throw new StoreError(
        `${scheme}: ${JSON.stringify(path)} does not exist${scheme === 'sqlite' ? ' (tessera migrate creates it)' : ''}`,
      )
    }
  }
  const store = (await withTimeout(openStore(url), timeout, (late) =>
    // It answered after all: release it (the process is about to exit anyway).
    Promise.resolve(late)
      .then((s) => ('close' in s ? s.close() : undefined))
      .catch(() => {}),
  )) as Store
  try {
    return await run(store)
  } finally {
    await store.close().catch(() => {}) // the command's outcome is what matters; close errors are noise
  }
}

async function withTimeout<T>(promise: Promise<T>, ms: number, onLate: (value: T) => unknown): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  let timedOut = false
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true
      reject(new StoreError(`the store did not answer within ${seconds(ms)} (see --timeout)`))
    }, ms)
  })
  promise.then(
    (value) => {
      if (timedOut) onLate(value)
    },
    () => {},
  )
  try {
    return await Promise.race([promise, deadline])
  } finally {
    clearTimeout(timer)
  }
}

/** A manager over the store, for its user listings; it never signs or reads a cookie. */
function managerFor(store: Store, idleTimeout: number) {
  return createSessionManager({
    store,
    // Required by the manager, unused by listing and revoking: a throwaway, never shown.
    secrets: [randomBytes(32).toString('base64url')],
    idleTimeout,
    touchInterval: Math.min(60_000, idleTimeout - 1),
    production: false,
    onWarning: () => {},
  })
}

function requireUser(context: Context, command: string): string {
  const user = context.values.user
  if (user === undefined || user === '') throw new UsageError(`${command} needs --user <id>`)
  return user
}

function schemeOf(url: string): string {
  const colon = url.indexOf(':')
  if (colon <= 0) {
    throw new UsageError(
      `store URL ${JSON.stringify(safeUrl(url))} has no scheme; use sqlite:<path>, file:<dir>, postgres://…, redis://…`,
    )
  }
  return url.slice(0, colon).toLowerCase()
}

/** The local path of a sqlite: or file: URL, as openStore reads it; undefined for special SQLite names. */
function localPath(url: string): string | undefined {
  const rest = url.slice(url.indexOf(':') + 1)
  const path = rest.startsWith('//') ? rest.slice(2) : rest
  if (path === '' || path === ':memory:' || path.startsWith('file:')) return undefined
  return resolve(path)
}

function parseUrl(url: string): URL {
  try {
    return new URL(url)
  } catch {
    throw new UsageError(`store URL ${JSON.stringify(safeUrl(url))} is not a valid URL`)
  }
}

// Errors.

function fail(io: CliIo, error: unknown, verbose: boolean, url: string | undefined): number {
  const code = exitCodeOf(error)
  const clean = (text: string) => redact(text, url)
  let line = error instanceof Error ? error.message : String(error)
  // A store error's own message says what failed; its cause says why ("connect ECONNREFUSED …").
  const cause = error instanceof StoreError ? (error.cause as { message?: unknown } | undefined) : undefined
  if (typeof cause?.message === 'string' && cause.message !== '') line += `: ${cause.message}`
  io.stderr.write(`tessera: ${clean(oneLine(line))}\n`)
  if (verbose) {
    for (let current: unknown = error; current !== undefined && current !== null; ) {
      const stack = current instanceof Error ? (current.stack ?? current.message) : String(current)
      io.stderr.write(`${clean(stack)}\n`)
      current = current instanceof Error ? current.cause : undefined
      if (current !== undefined && current !== null) io.stderr.write('caused by: ')
    }
  } else if (code === EXIT_CODES.failure) {
    io.stderr.write('(run with --verbose for details)\n')
  }
  return code
}

function exitCodeOf(error: unknown): number {
  if (error instanceof UsageError) return EXIT_CODES.usage
  if (error instanceof SessionConfigError)
    return isMissingDriver(error) ? EXIT_CODES.driver : EXIT_CODES.usage
  return EXIT_CODES.failure
}

/** openStore reports a missing driver as a SessionConfigError caused by the failed import. */
function isMissingDriver(error: SessionConfigError): boolean {
  if (/ is installed but failed to load/.test(error.message)) return true
  for (let cause = error.cause; cause instanceof Error; cause = cause.cause) {
    const code = (cause as { code?: unknown }).code
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') return true
  }
  return false
}

/** Removes what the store URL carries that is secret (its password, secret-looking parameters). */
function redact(text: string, url: string | undefined): string {
  let result = text.replace(/\/\/[^@/\s]*@/g, '//***@')
  for (const secret of urlSecrets(url)) result = result.split(secret).join('***')
  return result
}

function urlSecrets(url: string | undefined): string[] {
  if (url === undefined) return []
  const secrets: string[] = []
  try {
    const parsed = new URL(url)
    if (parsed.password !== '') secrets.push(parsed.password, decodeURIComponent(parsed.password))
    for (const [name, value] of parsed.searchParams) {
      if (/pass|secret|token|key/i.test(name) && value !== '') secrets.push(value, encodeURIComponent(value))
    }
  } catch {
    // Not a URL: nothing in it has a place for a secret.
  }
  return secrets.filter((secret) => secret.length >= 3).sort((a, b) => b.length - a.length)
}

/** The store URL as it may be shown: no user info, no secret-looking parameters. */
function safeUrl(url: string): string {
  return printable(redact(url, url))
}

// Output.

function print(io: CliIo, text: string): number {
  io.stdout.write(text)
  return EXIT_CODES.ok
}

function printJson(context: Context, document: Record<string, unknown>): number {
  return print(context.io, `${JSON.stringify(document, null, 2)}\n`)
}

/** Text from the store or the command line, safe for a terminal: control and bidi characters escaped. */
function printable(text: string): string {
  return text.replace(
    /[\p{Cc}\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
}

function quote(text: string): string {
  return JSON.stringify(text)
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ')
}

function count(n: number): string {
  return n.toLocaleString('en-US')
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${count(bytes)} bytes`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes / 1024
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(1)} ${units[unit]} (${count(bytes)} bytes)`
}

function time(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z')
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`
}

/** Columns padded to their widest cell; the last one is cut to the terminal's width, if known. */
function table(rows: readonly string[][], columns: number | undefined): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)))
  return rows
    .map((row) => {
      let line = row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')
      if (columns !== undefined && columns > 20 && line.length > columns)
        line = `${line.slice(0, columns - 1)}…`
      return `${line}\n`
    })
    .join('')
}

/** `30m`, `5s`, `1500ms`, `2h`, `1d`, or a number of milliseconds. */
function duration(text: string, option: string): number {
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim())
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match?.[2] ?? 'ms']
  const ms = match === null || unit === undefined ? Number.NaN : Number(match[1]) * unit
  if (!Number.isSafeInteger(ms) || ms <= 0) {
    throw new UsageError(`${option} takes a duration such as 500ms, 5s, 30m or 12h, got ${quote(text)}`)
  }
  return ms
}

function version(): string {
  // src/cli.ts and dist/cli.js both sit one level below package.json.
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string
  }
  return `tessera ${pkg.version}`
}

/** A progress line on stderr, drawn only once a purge has run for a while, at most ten times a second. */
class Progress {
  total: number | undefined
  readonly #io: CliIo
  readonly #clock: () => number
  readonly #started: number
  #drawn = 0
  #visible = false

  constructor(io: CliIo) {
    this.#io = io
    this.#clock = io.clock ?? Date.now
    this.#started = this.#clock()
  }

  update(deleted: number): void {
    const now = this.#clock()
    if (now - this.#started < PROGRESS_DELAY_MS || now - this.#drawn < PROGRESS_INTERVAL_MS) return
    this.#drawn = now
    this.#visible = true
    const total = this.total
    let line: string
    if (total !== undefined && total > 0) {
      const share = Math.min(1, deleted / total)
      const width = 30
      const filled = Math.round(share * width)
      line = `purging [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${Math.floor(share * 100)}% ${count(deleted)}/${count(total)}`
    } else {
      line = `purging… ${count(deleted)} deleted`
    }
    this.#io.stderr.write(`\r${line}\u001b[K`)
  }

  clear(): void {
    if (this.#visible) this.#io.stderr.write('\r\u001b[K')
    this.#visible = false
  }
}

// Entry point: run when this file is the process's main module (`npx tessera`, `node dist/cli.js`), not when
// imported.
function isEntryPoint(): boolean {
  const entry = process.argv[1]
  if (entry === undefined) return false
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (isEntryPoint()) {
  const code = await main(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
  })
  process.exitCode = code
  // Exit once the output is flushed: a connection a driver keeps open must not hold the command up.
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)))
}
