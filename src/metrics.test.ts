import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { fakeClock, request, SECRET_A } from '../test/support.js'
import { createSessionManager } from './manager.js'
import { createMetrics } from './metrics.js'
import { MemoryStore } from './stores/memory.js'

describe('Prometheus metrics', () => {
  it('counts the lifecycle, rejections and store calls in the text format', async () => {
    const clock = fakeClock()
    const manager = createSessionManager<{ visits?: number }>({
      store: new MemoryStore({ cleanupIntervalMs: 0 }),
      secrets: [SECRET_A],
      clock: clock.now,
    })
    const metrics = createMetrics(manager)
    const { cookie } = await request(manager, undefined, (s) => s.set('visits', 1))
    await request(manager, cookie, (s) => s.set('visits', 2))
    await request(manager, `${manager.cookieName}=garbage`)
    await request(manager, cookie, (s) => s.login('alice'))
    const text = metrics.render()
    assert.match(text, /^# TYPE tessera_sessions_total counter$/m)
    assert.match(text, /^tessera_sessions_total\{event="created"\} 2$/m)
    assert.match(text, /^tessera_sessions_total\{event="saved"\} 1$/m)
    assert.match(text, /^tessera_sessions_total\{event="logged_in"\} 1$/m)
    assert.match(text, /^tessera_sessions_rejected_total\{reason="malformed"\} 1$/m)
    assert.match(text, /^# TYPE tessera_store_duration_seconds histogram$/m)
    assert.match(text, /^tessera_store_duration_seconds_count\{operation="get",outcome="ok"\} \d+$/m)
    assert.match(
      text,
      /^tessera_store_duration_seconds_bucket\{operation="create",outcome="ok",le="\+Inf"\} 2$/m,
    )
    for (const line of text.trim().split('\n')) {
      assert.match(line, /^(# TYPE [a-z_]+ (counter|histogram)|[a-z_]+(\{[^}]*\})? [0-9.e+-]+)$/, line)
    }
    metrics.stop()
    await request(manager, undefined, (s) => s.set('visits', 1))
    assert.match(
      metrics.render(),
      /^tessera_sessions_total\{event="created"\} 2$/m,
      'stopped metrics stop counting',
    )
  })
})
