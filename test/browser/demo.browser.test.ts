// The demo in a real browser: Debian's chromium driven by playwright-core (never a browser download). Two
// browser contexts are two devices of one user. Screenshots of each page go to test-output/browser/; with
// TESSERA_UPDATE_SCREENSHOTS=1 (or when it is missing) the sessions page is also copied to docs/demo-sessions.png.
import assert from 'node:assert/strict'
import { copyFileSync, existsSync, mkdirSync } from 'node:fs'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core'
import { createSessionManager } from 'tessera'
import { MemoryStore } from 'tessera/memory'
import { createDemoApp, type DemoData } from '../../demo/app.js'

const CHROMIUM = '/usr/bin/chromium'
const ROOT = join(import.meta.dirname, '../..')
const OUTPUT = join(ROOT, 'test-output/browser')
const DOC_SCREENSHOT = join(ROOT, 'docs/demo-sessions.png')
const SECRET = 'Qm4Tz8Rk2Wv6Yp0Ln3Hs7Dc1Fg5Jb9Xa-eU_iOqXtK'
// The second device presents itself as Firefox on Windows, so the sessions page shows two browser families.
const SECOND_DEVICE_UA = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0'

const missing = !existsSync(CHROMIUM)
if (missing && process.env.CI === 'true') {
  throw new Error(`${CHROMIUM} is missing; .ci/run installs it with apt-get install -y chromium`)
}
if (missing) console.log(`# skipping the browser tests: ${CHROMIUM} is missing (apt-get install -y chromium)`)

describe('the demo in a real browser (chromium)', { skip: missing, timeout: 60_000 }, () => {
  let server: Server
  let store: MemoryStore
  let browser: Browser
  let origin: string
  let laptop: BrowserContext
  let phone: BrowserContext
  let page: Page
  let phonePage: Page

  async function shoot(target: Page, name: string): Promise<string> {
    const path = join(OUTPUT, `${name}.png`)
    await target.screenshot({ path, fullPage: true })
    return path
  }

  async function logIn(target: Page): Promise<void> {
    await target.goto(`${origin}/`)
    await target.getByLabel('Username').fill('rasmus')
    await target.getByLabel('Password').fill('default')
    await Promise.all([
      target.waitForURL(`${origin}/profile`),
      target.getByRole('button', { name: 'Log in' }).click(),
    ])
  }

  before(async () => {
    mkdirSync(OUTPUT, { recursive: true })
    store = new MemoryStore({ cleanupIntervalMs: 0 })
    const sessions = createSessionManager<DemoData>({ store, secrets: [SECRET] })
    server = createDemoApp(sessions, { storeLabel: 'memory:' }).listen(0, '127.0.0.1')
    await new Promise((resolve) => server.once('listening', resolve))
    origin = `http://localhost:${(server.address() as AddressInfo).port}`
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    })
    laptop = await browser.newContext({ viewport: { width: 1200, height: 800 } })
    page = await laptop.newPage()
  })

  after(async () => {
    await laptop?.close()
    await phone?.close()
    await browser?.close()
    server?.closeAllConnections()
    await new Promise((resolve) => server?.close(resolve))
    await store?.close()
  })

  it('logs in, shows the profile with its flash message, and stays logged in on reload', async () => {
    await page.goto(`${origin}/`)
    await shoot(page, 'login')
    await logIn(page)
    await assertVisible(page.getByRole('heading', { name: 'Welcome, rasmus!' }))
    await assertVisible(page.getByRole('status').filter({ hasText: 'Logged in as rasmus.' }))
    await shoot(page, 'profile')
    await page.reload()
    await assertVisible(page.getByRole('heading', { name: 'Welcome, rasmus!' }))
    assert.equal(await page.getByText('Logged in as rasmus.').count(), 0, 'the flash message is shown once')
  })

  it('changes the session with the counter', async () => {
    for (const expected of ['1', '2']) {
      await page.getByRole('button', { name: 'Add one' }).click()
      await assertVisible(page.locator(`#counter:text-is("${expected}")`))
    }
    await page.reload()
    assert.equal(await page.locator('#counter').textContent(), '2', 'kept in the session')
    await shoot(page, 'counter')
  })

  it('sends the session cookie HttpOnly (no script can read it) and SameSite=Lax', async () => {
    const [cookie] = (await laptop.cookies(origin)).filter((candidate) => candidate.name === '__Host-sid')
    assert.ok(cookie, 'the browser holds the session cookie')
    assert.equal(cookie.httpOnly, true)
    assert.equal(cookie.sameSite, 'Lax')
    assert.equal(cookie.secure, true)
    assert.equal(cookie.path, '/')
    assert.equal(await page.evaluate('document.cookie'), '', 'document.cookie cannot see it')
  })

  it('lists a second device on /sessions, revokes it, and the second device is logged out', async () => {
    phone = await browser.newContext({ viewport: { width: 1200, height: 800 }, userAgent: SECOND_DEVICE_UA })
    phonePage = await phone.newPage()
    await logIn(phonePage)
    await page.goto(`${origin}/sessions`)
    const rows = page.locator('tbody tr')
    assert.equal(await rows.count(), 2, 'two sessions listed')
    await assertVisible(page.getByRole('cell', { name: /Chrome on Linux\s+this device/ }))
    await assertVisible(page.getByRole('cell', { name: 'Firefox on Windows' }))
    const listed = await page.evaluate(async () => {
      const response = await fetch('/sessions', { headers: { accept: 'application/json' } })
      return ((await response.json()) as unknown[]).length
    })
    assert.equal(listed, 2, 'the JSON answer lists both')
    const screenshot = await shoot(page, 'sessions')
    if (process.env.TESSERA_UPDATE_SCREENSHOTS === '1' || !existsSync(DOC_SCREENSHOT)) {
      copyFileSync(screenshot, DOC_SCREENSHOT)
    }
    await page.getByRole('button', { name: /^Revoke Firefox on Windows/ }).click()
    await page.waitForLoadState()
    await assertVisible(page.getByRole('status').filter({ hasText: 'That session is logged out.' }))
    assert.equal(await page.locator('tbody tr').count(), 1)
    await phonePage.goto(`${origin}/profile`)
    await assertVisible(phonePage.getByRole('heading', { name: 'Please log in first.' }))
    await page.goto(`${origin}/profile`)
    await assertVisible(page.getByRole('heading', { name: 'Welcome, rasmus!' }))
  })

  it('logs out everywhere else', async () => {
    await logIn(phonePage)
    await page.goto(`${origin}/sessions`)
    assert.equal(await page.locator('tbody tr').count(), 2)
    await page.getByRole('button', { name: 'Log out everywhere else' }).click()
    await page.waitForLoadState()
    await assertVisible(page.getByRole('status').filter({ hasText: 'Logged out 1 other session.' }))
    await phonePage.goto(`${origin}/profile`)
    await assertVisible(phonePage.getByRole('heading', { name: 'Please log in first.' }))
  })

  it('refuses a form post without its CSRF token (403) and keeps the user logged in', async () => {
    const status = await page.evaluate(
      async () => (await fetch('/logout', { method: 'POST', body: new URLSearchParams({}) })).status,
    )
    assert.equal(status, 403)
    await page.goto(`${origin}/profile`)
    await assertVisible(page.getByRole('heading', { name: 'Welcome, rasmus!' }))
  })

  it('logs out', async () => {
    const sessionCookie = async () =>
      (await laptop.cookies(origin)).find((cookie) => cookie.name === '__Host-sid')?.value
    const before = await sessionCookie()
    await page.getByRole('button', { name: 'Log out' }).click()
    await page.waitForURL(`${origin}/`)
    await assertVisible(page.getByRole('heading', { name: 'Log in' }))
    // The login form's CSRF token starts a new anonymous session; the logged-in one is gone for good.
    assert.notEqual(await sessionCookie(), before)
    await page.goto(`${origin}/profile`)
    await assertVisible(page.getByRole('heading', { name: 'Please log in first.' }))
    await shoot(page, 'logged-out')
  })
})

async function assertVisible(locator: ReturnType<Page['locator']>): Promise<void> {
  await locator.first().waitFor({ state: 'visible', timeout: 5_000 })
}
