// The README's examples are the files under examples/, shown verbatim; this runs each one as a user would.
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { Browser } from './browser.js'

const root = join(import.meta.dirname, '../..')
const readme = readFileSync(join(root, 'README.md'), 'utf8')

async function run(
  example: string,
  env: Record<string, string> = {},
): Promise<{ origin: string; child: ChildProcess; output: () => string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', example], {
    cwd: root,
    env: { ...process.env, PORT: '0', SESSION_SECRET: 'vN3kQ8xT2mW9pL4rJ7cH1sF6gB0dY5zE-aU_iOqXtK', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stderr!.on('data', (chunk) => (output += chunk))
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${example} did not start:\n${output}`)), 20_000)
    child.stdout!.on('data', (chunk) => {
      output += chunk
      const match = /port: (\d+)/.exec(output)
      if (match) {
        clearTimeout(timer)
        resolve(Number(match[1]))
      }
    })
    child.once('exit', (code) => reject(new Error(`${example} exited with ${code}:\n${output}`)))
  })
  return { origin: `http://localhost:${port}`, child, output: () => output }
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  await exited
}

describe('README examples', () => {
  for (const file of ['examples/node-http.ts', 'examples/express.ts']) {
    it(`shows ${file} verbatim`, () => {
      assert.ok(
        readme.includes(readFileSync(join(root, file), 'utf8').trim()),
        `${file} differs from the README`,
      )
    })
  }

  it('runs the node:http quickstart: the visit count survives between requests', async () => {
    const { origin, child } = await run('examples/node-http.ts')
    try {
      const browser = new Browser(origin)
      assert.match(await (await browser.fetch('/')).text(), /here 1 time/)
      assert.match(await (await browser.fetch('/')).text(), /here 2 time/)
    } finally {
      await stop(child)
    }
  })

  it('runs the Express quickstart: log in, see the profile, log out', async () => {
    const { origin, child } = await run('examples/express.ts')
    try {
      const browser = new Browser(origin)
      assert.match(await (await browser.fetch('/profile')).text(), /Please log in first/)
      assert.equal((await browser.post('/login', { username: 'rasmus', password: 'default' })).status, 303)
      assert.match(await (await browser.fetch('/profile')).text(), /Welcome, rasmus!/)
      await browser.post('/logout')
      assert.match(await (await browser.fetch('/profile')).text(), /Please log in first/)
    } finally {
      await stop(child)
    }
  })
})

describe('docs/operations.md example', () => {
  const operations = readFileSync(join(root, 'docs/operations.md'), 'utf8')
  const dir = mkdtempSync(join(tmpdir(), 'tessera-ops-example-'))
  after(() => rmSync(dir, { recursive: true, force: true }))
  let cookie = '' // a valid session cookie from the first run, presented after the store has gone

  it('shows examples/operations.ts verbatim', () => {
    assert.ok(operations.includes(readFileSync(join(root, 'examples/operations.ts'), 'utf8').trim()))
  })

  it('counts visits, serves Prometheus metrics, logs JSON without IDs, and exits cleanly on SIGTERM', async () => {
    const { origin, child, output } = await run('examples/operations.ts', {
      SESSION_STORE: `sqlite:${join(dir, 'sessions.db')}`,
      LOG_LEVEL: 'debug',
    })
    const browser = new Browser(origin)
    assert.match(await (await browser.fetch('/')).text(), /here 1 time/)
    assert.match(await (await browser.fetch('/')).text(), /here 2 time/)
    assert.match(
      await (await browser.fetch('/metrics')).text(),
      /tessera_sessions_total\{event="created"\} 1/,
    )
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    assert.equal(await exited, 0)
    cookie = (await browser.cookie('sid'))!
    const id = decodeURIComponent(cookie).split('.')[0]!
    assert.match(output(), /"msg":"session created"/)
    assert.ok(!output().includes(id), 'the logs never hold the session ID')
  })

  it('with its store unreachable: the public page fails open with a 200, other pages get a 503 within storeTimeout', async () => {
    const { origin, child } = await run('examples/operations.ts', { SESSION_STORE: 'redis://127.0.0.1:9/0' })
    try {
      assert.notEqual(cookie, '', 'the previous test left a session cookie')
      const home = await fetch(`${origin}/`, { headers: { cookie: `sid=${cookie}` } })
      assert.equal(home.status, 200)
      assert.match(await home.text(), /briefly unavailable/)
      assert.equal(home.headers.get('set-cookie'), null, 'the real session cookie is left alone')
      const started = performance.now()
      const other = await fetch(`${origin}/account`, { headers: { cookie: `sid=${cookie}` } })
      assert.equal(other.status, 503)
      assert.ok(performance.now() - started < 4_000, 'failed within storeTimeout, not hung')
    } finally {
      await stop(child)
    }
  })
})
