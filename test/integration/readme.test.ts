// The README's examples are the files under examples/, shown verbatim; this runs each one as a user would.
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { Browser } from './browser.js'

const root = join(import.meta.dirname, '../..')
const readme = readFileSync(join(root, 'README.md'), 'utf8')

async function run(example: string): Promise<{ origin: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', example], {
    cwd: root,
    env: { ...process.env, PORT: '0', SESSION_SECRET: 'vN3kQ8xT2mW9pL4rJ7cH1sF6gB0dY5zE-aU_iOqXtK' },
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
  return { origin: `http://localhost:${port}`, child }
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
