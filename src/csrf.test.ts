import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { request, SECRET_A } from '../test/support.js'
import { checkCsrf } from './csrf.js'
import { CsrfError } from './errors.js'
import { createSessionManager } from './manager.js'
import { MemoryStore } from './stores/memory.js'

function manager() {
  return createSessionManager<{ cart?: string[] }>({
    store: new MemoryStore({ cleanupIntervalMs: 0 }),
    secrets: [SECRET_A],
  })
}

const post = (token: unknown, extra: Partial<Parameters<typeof checkCsrf>[1]> = {}) => ({
  method: 'POST',
  token,
  host: 'shop.example',
  ...extra,
})

describe('CSRF tokens', () => {
  it('stores a new session the first time a token is asked for, so the login form is protected too', async () => {
    const sessions = manager()
    let token = ''
    const { cookie, result } = await request(sessions, undefined, (s) => {
      token = s.csrfToken()
    })
    assert.equal(result.setCookie.length, 1)
    const { session } = await request(sessions, cookie)
    assert.equal(checkCsrf(session, post(token)), undefined)
  })

  it('gives a different token on every call, each valid for the session', async () => {
    const sessions = manager()
    const tokens: string[] = []
    const { cookie } = await request(sessions, undefined, (s) => tokens.push(s.csrfToken(), s.csrfToken()))
    assert.notEqual(tokens[0], tokens[1])
    const { session } = await request(sessions, cookie)
    for (const token of tokens) assert.equal(session.verifyCsrfToken(token), true)
  })

  it('refuses a missing token, a token from another session and an altered token, with reasons', async () => {
    const sessions = manager()
    let mine = ''
    let theirs = ''
    const { cookie } = await request(sessions, undefined, (s) => {
      mine = s.csrfToken()
    })
    await request(sessions, undefined, (s) => {
      theirs = s.csrfToken()
    })
    const { session } = await request(sessions, cookie)
    const reasonOf = (token: unknown) => checkCsrf(session, post(token))?.reason
    assert.equal(reasonOf(undefined), 'missing-token')
    assert.equal(reasonOf(''), 'missing-token')
    assert.equal(reasonOf(theirs), 'invalid-token')
    assert.equal(reasonOf(`${mine.slice(0, -1)}${mine.endsWith('A') ? 'B' : 'A'}`), 'invalid-token')
    assert.equal(reasonOf(['array']), 'missing-token')
    const error = checkCsrf(session, post(theirs))
    assert.ok(error instanceof CsrfError)
    assert.deepEqual([error.code, error.status], ['ERR_SESSION_CSRF', 403])
  })

  it('lets safe methods through without a token', async () => {
    const { session } = await request(manager(), undefined)
    for (const method of ['GET', 'HEAD', 'OPTIONS', 'TRACE', 'get']) {
      assert.equal(checkCsrf(session, { method, token: undefined }), undefined)
    }
    assert.ok(checkCsrf(session, { method: 'DELETE', token: undefined }))
  })

  it('refuses cross-site requests by Sec-Fetch-Site or Origin even with a valid token', async () => {
    const sessions = manager()
    let token = ''
    const { cookie } = await request(sessions, undefined, (s) => {
      token = s.csrfToken()
    })
    const { session } = await request(sessions, cookie)
    assert.equal(checkCsrf(session, post(token, { secFetchSite: 'cross-site' }))?.reason, 'cross-site')
    assert.equal(checkCsrf(session, post(token, { origin: 'https://evil.example' }))?.reason, 'cross-site')
    assert.equal(checkCsrf(session, post(token, { origin: 'null' }))?.reason, 'cross-site')
    assert.equal(
      checkCsrf(session, post(token, { origin: 'https://shop.example', secFetchSite: 'same-origin' })),
      undefined,
    )
    assert.equal(
      checkCsrf(session, post(token, { origin: 'https://admin.example' }), {
        trustedOrigins: ['https://admin.example'],
      }),
      undefined,
    )
  })

  it('retires every token when the session ID changes on login', async () => {
    const sessions = manager()
    let before = ''
    let after = ''
    const { cookie } = await request(sessions, undefined, async (s) => {
      before = s.csrfToken()
    })
    const { cookie: loggedIn } = await request(sessions, cookie, async (s) => {
      await s.login('alice')
      after = s.csrfToken()
    })
    const { session } = await request(sessions, loggedIn)
    assert.equal(session.verifyCsrfToken(before), false, 'a token planted before login is worthless after it')
    assert.equal(session.verifyCsrfToken(after), true)
  })
})

describe('CSRF tokens and caching', () => {
  it('marks a response that carries a token as private to the session', async () => {
    const sessions = manager()
    const { cookie } = await request(sessions, undefined, (s) => s.csrfToken())
    const { result } = await request(sessions, cookie, (s) => s.csrfToken())
    assert.deepEqual([result.setCookie, result.cacheControl, result.vary], [[], 'no-store', 'Cookie'])
  })
})
