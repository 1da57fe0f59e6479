// `npm start` as a user runs it: the demo process on the SQLite store keeps sessions across a restart.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { Browser } from './browser.js'
import { startDemo } from './demo-process.js'

const dir = mkdtempSync(join(tmpdir(), 'tessera-demo-'))
after(() => rmSync(dir, { recursive: true, force: true }))

describe('the demo process on SQLite', () => {
  it('keeps a logged-in session across a restart', async () => {
    const store = `sqlite:${join(dir, 'sessions.db')}`
    const first = await startDemo(store)
    const browser = new Browser(first.origin)
    const form = await (await browser.fetch('/')).text()
    const _csrf = /name="_csrf" value="([^"]+)"/.exec(form)![1]!
    assert.equal(
      (await browser.post('/login', { username: 'rasmus', password: 'default', _csrf })).status,
      303,
    )
    assert.match(await (await browser.fetch('/profile')).text(), /Welcome, rasmus!/)
    await first.stop()

    const second = await startDemo(store)
    try {
      const again = new Browser(second.origin)
      await again.setCookie('__Host-sid', (await browser.cookie('__Host-sid'))!)
      assert.match(await (await again.fetch('/profile')).text(), /Welcome, rasmus!/)
    } finally {
      await second.stop()
    }
  })

  it('without SESSION_SECRET, keeps a development secret under data/ and says so', async () => {
    const demo = await startDemo(`sqlite:${join(dir, 'sessions.db')}`, { SESSION_SECRET: '' })
    await demo.stop()
    assert.match(demo.output(), /SESSION_SECRET is not set/)
  })
})
