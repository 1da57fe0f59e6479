// `npm start` as a user runs it: the demo process on the SQLite store keeps sessions across a restart.
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { Browser } from './browser.js'

const dir = mkdtempSync(join(tmpdir(), 'tessera-demo-'))
after(() => rmSync(dir, { recursive: true, force: true }))

async function startDemo(
  env: Record<string, string> = {},
): Promise<{ origin: string; child: ChildProcess; output: () => string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'demo/server.ts', '--port', '0', '--store', `sqlite:${join(dir, 'sessions.db')}`],
    {
      cwd: join(import.meta.dirname, '../..'),
      env: { ...process.env, ...env, NODE_ENV: 'test' },
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
  return { origin, child, output: () => output }
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  await exited
}

describe('the demo process on SQLite', () => {
  it('keeps a logged-in session across a restart', async () => {
    const env = { SESSION_SECRET: 'vN3kQ8xT2mW9pL4rJ7cH1sF6gB0dY5zE-aU_iOqXtK' }
    const first = await startDemo(env)
    const browser = new Browser(first.origin)
    const form = await (await browser.fetch('/')).text()
    const _csrf = /name="_csrf" value="([^"]+)"/.exec(form)![1]!
    assert.equal(
      (await browser.post('/login', { username: 'rasmus', password: 'default', _csrf })).status,
      303,
    )
    assert.match(await (await browser.fetch('/profile')).text(), /Welcome, rasmus!/)
    await stop(first.child)

    const second = await startDemo(env)
    try {
      const again = new Browser(second.origin)
      await again.setCookie('__Host-sid', (await browser.cookie('__Host-sid'))!)
      assert.match(await (await again.fetch('/profile')).text(), /Welcome, rasmus!/)
    } finally {
      await stop(second.child)
    }
  })

  it('without SESSION_SECRET, keeps a development secret under data/ and says so', async () => {
    const demo = await startDemo({ SESSION_SECRET: '' })
    await stop(demo.child)
    assert.match(demo.output(), /SESSION_SECRET is not set/)
  })
})
