/**
 * tessera's engine alone, without HTTP: `load()` then `commit()` over 1,000 sessions in turn, read-only and
 * modifying, on MemoryStore and CookieStore. Give it several builds to compare them on one machine, runs
 * alternating between them (these machines are noisy, so compare medians, never single runs):
 *
 *   npm run build && node --import tsx bench/engine.ts dist /tmp/base/dist
 *
 * where /tmp/base is an older commit checked out and built (`git worktree add /tmp/base <commit>`, then in it
 * `npm ci && npx tsc -p tsconfig.build.json`). Prints µs per request, the median of five alternating runs.
 * With `--alloc` first, prints the bytes allocated per request instead (V8's sampling heap profiler, counting
 * the objects collected since; one run per build): what each request leaves for the garbage collector.
 */
import { execFileSync } from 'node:child_process'
import { Session as Inspector } from 'node:inspector/promises'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

const SESSIONS = 1_000
const REQUESTS = 100_000
const RUNS = 5
const KINDS = ['memory read', 'memory modify', 'cookie read', 'cookie modify'] as const

interface Manager {
  load(request: object): Promise<{ get(key: string): unknown; set(key: string, value: unknown): void }>
  commit(session: object): Promise<{ setCookie: string[] }>
}

// One measurement in this process: µs per request for each kind, with the build at `dist`.
async function measure(dist: string, alloc: boolean): Promise<number[]> {
  const url = (path: string) => pathToFileURL(resolve(dist, path)).href
  const { createSessionManager } = await import(url('index.js'))
  const { MemoryStore } = await import(url('stores/memory.js'))
  const { CookieStore } = await import(url('stores/cookie.js'))
  const request = (cookie: string | undefined) => ({ cookie, host: '127.0.0.1', ip: '127.0.0.1' })
  const results: number[] = []
  for (const kind of KINDS) {
    const [storeName, mode] = kind.split(' ')
    const manager: Manager = createSessionManager({
      store: storeName === 'memory' ? new MemoryStore() : new CookieStore(),
      secrets: ['bench-secret-of-32-random-chars-x9Q2'],
      cookie: { name: 'sid', secure: 'auto' },
    })
    const cookies: string[] = []
    for (let i = 0; i < SESSIONS; i++) {
      const session = await manager.load(request(undefined))
      session.set('counter', 0)
      cookies.push((await manager.commit(session)).setCookie[0]!.split(';', 1)[0]!)
    }
    const run = async (count: number) => {
      for (let i = 0; i < count; i++) {
        const session = await manager.load(request(cookies[i % SESSIONS]))
        if (mode === 'modify') session.set('counter', ((session.get('counter') as number) ?? 0) + 1)
        else session.get('counter')
        await manager.commit(session)
      }
    }
    await run(REQUESTS / 5) // warm-up
    if (alloc) {
      results.push((await allocated(() => run(REQUESTS))) / REQUESTS)
      continue
    }
    const started = process.hrtime.bigint()
    await run(REQUESTS)
    results.push(Number(process.hrtime.bigint() - started) / REQUESTS / 1_000)
  }
  return results
}

interface HeapNode {
  selfSize: number
  children: HeapNode[]
}

// Bytes allocated while `work` runs, whether or not they were collected since.
async function allocated(work: () => Promise<void>): Promise<number> {
  const inspector = new Inspector()
  inspector.connect()
  await inspector.post('HeapProfiler.startSampling', {
    samplingInterval: 1024,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  })
  await work()
  const { profile } = (await inspector.post('HeapProfiler.stopSampling')) as { profile: { head: HeapNode } }
  inspector.disconnect()
  const total = (node: HeapNode): number =>
    node.children.reduce((sum, child) => sum + total(child), node.selfSize)
  return total(profile.head)
}

if (process.argv[2] === '--child') {
  process.stdout.write(JSON.stringify(await measure(process.argv[3]!, process.argv[4] === '--alloc')))
} else {
  const alloc = process.argv[2] === '--alloc'
  const args = process.argv.slice(alloc ? 3 : 2)
  const dists = args.length > 0 ? args : ['dist']
  const samples = dists.map(() => KINDS.map((): number[] => []))
  // Allocation hardly moves between runs, and sampling it is slow: one run each.
  const runs = alloc ? 1 : RUNS
  for (let run = 0; run < runs; run++) {
    for (const [index, dist] of dists.entries()) {
      // A fresh process per measurement: no build warms up the JIT for another.
      const output = execFileSync(process.execPath, [
        ...process.execArgv,
        process.argv[1]!,
        '--child',
        dist,
        ...(alloc ? ['--alloc'] : []),
      ])
      const values = JSON.parse(String(output)) as number[]
      for (const [kind, value] of values.entries()) samples[index]![kind]!.push(value)
    }
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!
  const unit = alloc ? 'bytes allocated per request (sampled)' : 'µs per request'
  console.log(`${unit}, median of ${runs} alternating run(s) (${SESSIONS} sessions in turn)`)
  console.log(['build', ...KINDS].join('\t'))
  for (const [index, dist] of dists.entries()) {
    const digits = alloc ? 0 : 2
    console.log([dist, ...samples[index]!.map((values) => median(values).toFixed(digits))].join('\t'))
  }
}
