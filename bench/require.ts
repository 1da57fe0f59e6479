/**
 * Loads CommonJS packages that ship no types (express-session, memorystore, autocannon, cookie-signature,
 * uid-safe) with `require`, typed by the caller's own narrow interface.
 */
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

const requireHere = createRequire(import.meta.url)

/** `require(name)` from the project, typed as `T`. */
export function requirePackage<T>(name: string): T {
  return requireHere(name) as T
}

/**
 * `require(name)` as express-session itself resolves it, so the bench measures the copy express-session
 * really uses (its own cookie-signature 1.0.x, say, not the newer one at the top of node_modules).
 * Undefined when it cannot be resolved.
 */
export function requireAsExpressSession<T>(name: string): { module: T; version: string } | undefined {
  try {
    const fromSession = createRequire(requireHere.resolve('express-session'))
    const path = fromSession.resolve(name)
    const version = readVersion(fromSession, name)
    return { module: fromSession(path) as T, version }
  } catch {
    return undefined
  }
}

// The package.json above the package's entry point (some packages do not export ./package.json).
function readVersion(from: NodeJS.Require, name: string): string {
  try {
    let dir = dirname(from.resolve(name))
    for (;;) {
      const file = join(dir, 'package.json')
      if (existsSync(file)) {
        const manifest = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string }
        if (manifest.name === name) return manifest.version ?? '?'
      }
      const parent = dirname(dir)
      if (parent === dir) return '?'
      dir = parent
    }
  } catch {
    return '?'
  }
}

/** The installed version of a package, or '?' */
export function packageVersion(name: string): string {
  return readVersion(requireHere, name)
}
