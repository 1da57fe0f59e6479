// Many app servers, one store: two demo processes share sessions through PostgreSQL, and through Redis.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, describe, it } from 'node:test'
import { Browser } from './browser.js'
import { type DemoProcess, logIn, logOut, startDemo } from './demo-process.js'
import { cleanupPostgres, cleanupRedis, serviceSkip } from './services.js'

const running: DemoProcess[] = []
after(async () => {
  await Promise.all(running.map((demo) => demo.stop()))
  await cleanupPostgres('tessera_shared_')
  await cleanupRedis('tessera-shared-')
})

const stores = [
  {
    name: 'PostgreSQL',
    url: () =>
      `${process.env.TESSERA_TEST_POSTGRES_URL ?? 'postgres://127.0.0.1:5432/test'}?table=tessera_shared_${randomBytes(4).toString('hex')}`,
    skip: () => serviceSkip('postgres'),
  },
  {
    name: 'Redis',
    url: () =>
      `${process.env.TESSERA_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'}?prefix=tessera-shared-${randomBytes(4).toString('hex')}:`,
    skip: () => serviceSkip('redis'),
  },
]

for (const store of stores) {
  describe(`two demo processes on one ${store.name} store`, async () => {
    const skip = await store.skip()
    it('recognises on the second a login made through the first, and ends it on the first after a logout through the second', {
      skip,
    }, async () => {
      const url = store.url()
      const first = await startDemo(url)
      running.push(first)
      const second = await startDemo(url)
      running.push(second)
      const onFirst = new Browser(first.origin)
      assert.equal((await logIn(onFirst)).status, 303)
      const onSecond = new Browser(second.origin)
      await onSecond.setCookie('__Host-sid', (await onFirst.cookie('__Host-sid'))!)
      assert.match(await (await onSecond.fetch('/profile')).text(), /Welcome, rasmus!/)
      assert.equal((await logOut(onSecond)).status, 303)
      assert.match(await (await onFirst.fetch('/profile')).text(), /Please log in first/)
    })
  })
}
