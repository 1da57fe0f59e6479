// Shared test fixtures: secrets, an injectable clock, a store that counts its calls, and a one-request driver.
import { type SpawnSyncReturns, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

import {
  type CommitResult,
  createSessionManager,
  type SessionManager,
  type SessionManagerOptions,
  type SessionRequest,
  type SessionWarning,
} from '../src/manager.js'
import type { Session } from '../src/session.js'
import type { Store } from '../src/store.js'
import { MemoryStore } from '../src/stores/memory.js'

/** Two fixed, random-looking 32-byte secrets (tests must be repeatable; real apps use crypto.randomBytes). */
export const SECRET_A = 'vN3kQ8xT2mW9pL4rJ7cH1sF6gB0dY5zE-aU_iOqXtK'
export const SECRET_B = 'Zr8Lw2Qp5Xn9Tc4Jv7Hb1Md6Gk3Fy0Ss-eA_uIoWqE'

export const T0 = 1_700_000_000_000

/** A clock the test moves by hand. */
export function fakeClock(start = T0): { now: () => number; advance: (ms: number) => void } {
  let current = start
  return { now: () => current, advance: (ms) => (current += ms) }
}

export type StoreMethod =
  | 'get'
  | 'create'
  | 'update'
  | 'touch'
  | 'destroy'
  | 'listByUser'
  | 'destroyByUser'
  | 'cleanup'

/** Wraps a store and records every call, so tests can prove that a path made no store call at all. */
export function spyStore<S extends Store>(
  store: S,
): {
  store: S
  calls: { method: StoreMethod; key: unknown }[]
  count: (m?: StoreMethod) => number
  reset: () => void
} {
  const calls: { method: StoreMethod; key: unknown }[] = []
  const methods: StoreMethod[] = [
    'get',
    'create',
    'update',
    'touch',
    'destroy',
    'listByUser',
    'destroyByUser',
    'cleanup',
  ]
  const proxy = new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver)
      if (typeof value === 'function' && methods.includes(property as StoreMethod)) {
        return (...args: unknown[]) => {
          calls.push({ method: property as StoreMethod, key: args[0] })
          return Reflect.apply(value, target, args)
        }
      }
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
  return {
    store: proxy,
    calls,
    count: (method) =>
      method === undefined ? calls.length : calls.filter((c) => c.method === method).length,
    reset: () => {
      calls.length = 0
    },
  }
}

/** A manager over a spied MemoryStore, on a fake clock (T0), collecting its warnings; `options` override. */
export function setupManager<Data extends object>(options: Partial<SessionManagerOptions> = {}) {
  const clock = fakeClock()
  const memory = new MemoryStore({ cleanupIntervalMs: 0 })
  const spy = spyStore(memory)
  const warnings: SessionWarning[] = []
  const manager = createSessionManager<Data>({
    store: spy.store,
    secrets: [SECRET_A],
    clock: clock.now,
    onWarning: (warning) => warnings.push(warning),
    ...options,
  })
  return { manager, memory, spy, clock, warnings }
}

/** One request: load with `cookie`, let `handle` work on the session, commit. */
export async function request<Data extends object>(
  manager: SessionManager<Data>,
  cookie: string | undefined,
  handle: (session: Session<Data>) => unknown = () => undefined,
  extra: Partial<SessionRequest> = {},
): Promise<{ session: Session<Data>; result: CommitResult; cookie: string | undefined }> {
  const session = await manager.load({ cookie, host: 'localhost:3000', ...extra })
  await handle(session)
  const result = await manager.commit(session)
  return { session, result, cookie: nextCookie(cookie, result.setCookie, manager.cookieName) }
}

/** The Cookie header a browser would send next, given the Set-Cookie headers it just received. */
export function nextCookie(
  previous: string | undefined,
  setCookie: readonly string[],
  name: string,
): string | undefined {
  const mine = setCookie.find((header) => header.startsWith(`${name}=`))
  if (mine === undefined) return previous
  if (/;\s*Max-Age=0/i.test(mine)) return undefined
  return mine.slice(0, mine.indexOf(';'))
}

/** The value of an attribute in a Set-Cookie header, or true for a flag, or undefined. */
export function attribute(setCookie: string, name: string): string | true | undefined {
  for (const part of setCookie.split(';').slice(1)) {
    const [key, ...value] = part.trim().split('=')
    if (key?.toLowerCase() === name.toLowerCase()) return value.length === 0 ? true : value.join('=')
  }
  return undefined
}

/**
 * Runs an ES module `script` in a child Node process (under tsx) where the packages in `hidden` cannot be
 * resolved, as if they were not installed: how the stores' "missing driver" errors are tested.
 */
export function runWithoutPackages(
  hidden: readonly string[],
  script: string,
  options: { env?: NodeJS.ProcessEnv; timeout?: number } = {},
): SpawnSyncReturns<string> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-hidden-'))
  try {
    const hooks = join(dir, 'hide.mjs')
    writeFileSync(
      hooks,
      `const hidden = ${JSON.stringify(hidden)}
      export function resolve(specifier, context, next) {
        return next(hidden.includes(specifier) ? './missing/' + specifier + '.js' : specifier, context)
      }`,
    )
    const register = join(dir, 'register.mjs')
    writeFileSync(
      register,
      `import { register } from 'node:module'\nregister(${JSON.stringify(pathToFileURL(hooks).href)})`,
    )
    return spawnSync(
      process.execPath,
      ['--import', 'tsx', '--import', pathToFileURL(register).href, '--input-type=module', '-e', script],
      { timeout: options.timeout ?? 20_000, encoding: 'utf8', env: options.env ?? process.env },
    )
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
