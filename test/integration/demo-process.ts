// Runs the demo as `npm start` would, as a child process on a free port, for tests across processes.
import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import type { Browser } from './browser.js'

export const DEMO_SECRET = 'vN3kQ8xT2mW9pL4rJ7cH1sF6gB0dY5zE-aU_iOqXtK'

export interface DemoProcess {
  readonly origin: string
  readonly child: ChildProcess
  output(): string
  stop(): Promise<void>
}

export async function startDemo(store: string, env: Record<string, string> = {}): Promise<DemoProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'demo/server.ts', '--port', '0', '--store', store],
    {
      cwd: join(import.meta.dirname, '../..'),
      env: { ...process.env, SESSION_SECRET: DEMO_SECRET, ...env, NODE_ENV: 'test' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let output = ''
  child.stdout!.on('data', (chunk) => (output += chunk))
  child.stderr!.on('data', (chunk) => (output += chunk))
  const origin = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`demo did not start:\n${output}`)), 20_000)
    child.stdout!.on('data', () => {
      const match = /on (http:\/\/localhost:\d+)/.exec(output)
      if (match) {
        clearTimeout(timer)
        resolve(match[1]!)
      }
    })
    child.once('exit', (code) => reject(new Error(`demo exited with ${code}:\n${output}`)))
  })
  return {
    origin,
    child,
    output: () => output,
    stop: async () => {
      if (child.exitCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    },
  }
}

/** The CSRF token of the first form on `path`. */
export async function formToken(browser: Browser, path = '/'): Promise<string> {
  const html = await (await browser.fetch(path)).text()
  const match = /name="_csrf" value="([^"]+)"/.exec(html)
  if (match === null) throw new Error(`no CSRF field on ${path}`)
  return match[1]!
}

export async function logIn(browser: Browser): Promise<Response> {
  return browser.post('/login', { username: 'rasmus', password: 'default', _csrf: await formToken(browser) })
}

export async function logOut(browser: Browser): Promise<Response> {
  return browser.post('/logout', { _csrf: await formToken(browser, '/profile') })
}
