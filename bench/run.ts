/**
 * `npm run bench` — tessera against its peers, side by side in one run (see docs/benchmarks.md).
 *
 *   npm run bench                      full run (about 8 minutes), also rewrites docs/benchmarks.md
 *   npm run bench -- --quick           under 2 minutes: shorter runs, fewer sessions and scenarios
 *   npm run bench -- --only=tessera-node-memory,node-bare --skip-micro --skip-memory
 *   npm run bench -- --profile=tessera-node-memory   writes a --cpu-prof profile of that server (or a list)
 *
 * Other flags: --rounds=N --slice=SECONDS --warmup=SECONDS --connections=N --sessions=N --memory-sessions=N
 * --budget=SECONDS --pin (server on CPU 1, load generator on CPU 0) --tsx (children under tsx, see build.ts)
 * --no-docs --skip-http; --docs-only rewrites docs/benchmarks.md from bench/results/latest.json (after editing
 * bench/method.md or bench/analysis.md).
 * Everything runs on 127.0.0.1; every child process is ended at the end, on failure, on Ctrl-C, and when
 * the global time limit fires (the run then writes what it has and exits with code 2).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { cpus, freemem, loadavg, tmpdir, totalmem } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type Compiled, compileTree } from './build.js'
import { killAll, killAllNow, pin, spawnNodeScript, spawnTracked, type Tracked } from './children.js'
import {
  errorMessage,
  type FromServer,
  type MemoryReport,
  SCENARIOS,
  type ScenarioInfo,
  type ServerConfig,
  type ToServer,
} from './common.js'
import { checkSessions, createSessions, type LoadResult, quantile, runLoad, stopAllLoad } from './load.js'
import type { MemoryLibrary, MemoryPayload, MemoryResult } from './memory.js'
import type { MicroResult } from './micro.js'
import {
  type BenchResults,
  computeRatios,
  docsPage,
  markdown,
  type RouteResult,
  type ScenarioResult,
  svgChart,
} from './report.js'
import { packageVersion } from './require.js'
import {
  connectPostgres,
  type MonitoredCommands,
  type PostgresService,
  type RedisService,
  startRedis,
} from './services.js'

const BENCH = dirname(fileURLToPath(import.meta.url))
const ROOT = dirname(BENCH)
const RESULTS = join(BENCH, 'results')
const DOCS = join(ROOT, 'docs', 'benchmarks.md')
const DOCS_CHART = join(RESULTS, 'benchmarks.svg')

// ---------------------------------------------------------------------------------------------- options

const argv = process.argv.slice(2)
const flag = (name: string) => argv.includes(`--${name}`)
const value = (name: string) => argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3)
const number = (name: string, fallback: number) => {
  const raw = value(name)
  const parsed = raw === undefined ? Number.NaN : Number(raw)
  return Number.isFinite(parsed) && parsed > 0 ? parsed : fallback
}

const quick = flag('quick')
const only = value('only')?.split(',').filter(Boolean)
const settings = {
  connections: number('connections', 50),
  /** Measured seconds per route and server: `rounds` slices of `slice` seconds. */
  rounds: Math.round(number('rounds', quick ? 2 : 4)),
  slice: number('slice', quick ? 0.5 : 2),
  warmupSeconds: number('warmup', quick ? 0.5 : 1.5),
  sessions: number('sessions', quick ? 200 : 1000),
  pinned: flag('pin'),
  memorySessions: number('memory-sessions', quick ? 20_000 : 100_000),
}
/** The whole run must end within this, children included; past it, what was measured is written and we exit. */
const BUDGET_SECONDS = number('budget', quick ? 108 : 570)
const profiled = value('profile')?.split(',') ?? []
const writeDocs = !quick && only === undefined && !flag('no-docs') && !flag('skip-http')

const started = Date.now()
const elapsed = () => (Date.now() - started) / 1000
const log = (message: string) => console.log(`[${elapsed().toFixed(1).padStart(5)}s] ${message}`)

const notes: string[] = []
const results: BenchResults = {
  tool: 'tessera bench',
  date: new Date().toISOString(),
  mode: quick ? 'quick' : 'full',
  argv,
  totalSeconds: 0,
  machine: {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    v8: process.versions.v8,
    platform: `${process.platform} ${process.arch}`,
    loadavgStart: loadavg(),
    loadavgEnd: [],
  },
  settings,
  versions: Object.fromEntries(
    [
      'autocannon',
      'express',
      'express-session',
      'memorystore',
      'connect-redis',
      'redis',
      'ioredis',
      'pg',
      'iron-session',
      'fastify',
      '@fastify/session',
      '@fastify/cookie',
      'better-sqlite3',
    ].map((name) => [name, packageVersion(name)]),
  ),
  backends: {},
  scenarios: [],
  notYetAvailable: [],
  micro: [],
  memory: [],
  notes,
}

// ------------------------------------------------------------------------------------ output and cleanup

function writeAtomically(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(`${path}.tmp`, text)
  renameSync(`${path}.tmp`, path)
}

function writeResults(): string {
  results.totalSeconds = elapsed()
  results.machine.loadavgEnd = loadavg()
  const order = (id: string) => SCENARIOS.findIndex((info) => info.id === id)
  results.scenarios.sort((a, b) => order(a.id) - order(b.id))
  results.ratios = computeRatios(results)
  const report = markdown(results)
  writeAtomically(join(RESULTS, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`)
  writeAtomically(join(RESULTS, 'latest.md'), report)
  writeAtomically(join(RESULTS, 'latest.svg'), svgChart(results))
  return report
}

let services: { redis?: RedisService | undefined; postgres?: PostgresService | undefined } = {}

async function stopServices(): Promise<void> {
  await Promise.all([services.redis?.stop(), services.postgres?.stop()].map((p) => p?.catch(() => undefined)))
  services = {}
}

let compiled: Compiled | undefined

/** Starts bench/<name>.ts as a child: compiled by compileTree() unless --tsx, else under tsx. */
function startChild(
  name: 'server' | 'micro' | 'memory',
  args: readonly string[],
  label: string,
  flags: readonly string[] = [],
): Tracked {
  if (compiled === undefined) return spawnNodeScript(join(BENCH, `${name}.ts`), args, label, flags)
  return spawnTracked(process.execPath, [...flags, compiled.entry(name), ...args], label, { ipc: true })
}

/** SQLite files of the servers: removed when their server stops, or at the end whatever happened. */
const tempFiles = new Set<string>()

function removeTempFiles(): void {
  for (const path of tempFiles) {
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true })
  }
  tempFiles.clear()
}

function removeBuild(): void {
  // Kept when profiling: bench/profile.ts maps the profiles through its source maps.
  if (profiled.length === 0) compiled?.remove()
}

let finishing = false

async function abort(reason: string, code: number): Promise<never> {
  if (finishing) process.exit(code)
  finishing = true
  console.error(`\n${reason}: stopping every child process and writing what was measured.`)
  notes.push(`${reason}: the run was cut short; missing rows were not measured.`)
  stopAllLoad()
  const hard = setTimeout(() => {
    killAllNow()
    process.exit(code)
  }, 8000)
  await killAll(1000)
  await stopServices()
  removeBuild()
  removeTempFiles()
  try {
    console.log(writeResults())
  } catch (error) {
    console.error('could not write results:', errorMessage(error))
  }
  clearTimeout(hard)
  process.exit(code)
}

const watchdog = setTimeout(
  () => void abort(`global time limit of ${BUDGET_SECONDS} s reached`, 2),
  BUDGET_SECONDS * 1000,
)
process.on('SIGINT', () => void abort('interrupted', 130))
process.on('SIGTERM', () => void abort('terminated', 143))
process.on('exit', killAllNow)

// ---------------------------------------------------------------------------------------- child helpers

function nextMessage<T>(
  tracked: Tracked,
  accept: (message: unknown) => T | undefined,
  timeoutMs: number,
  what: string,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: unknown) => {
      const found = accept(message)
      if (found === undefined) return
      done()
      resolve(found)
    }
    const onExit = () => {
      done()
      reject(
        new Error(
          `${tracked.name} exited while waiting for ${what}: ${tracked.stderr().trim().slice(-1500)}`,
        ),
      )
    }
    const timer = setTimeout(() => {
      done()
      reject(new Error(`${tracked.name}: no ${what} after ${timeoutMs} ms`))
    }, timeoutMs)
    const done = () => {
      clearTimeout(timer)
      tracked.child.off('message', onMessage)
      tracked.child.off('exit', onExit)
    }
    tracked.child.on('message', onMessage)
    tracked.child.once('exit', onExit)
    if (tracked.exited) onExit()
  })
}

function ask<K extends FromServer['type']>(
  tracked: Tracked,
  message: ToServer,
  type: K,
  timeoutMs = 10_000,
): Promise<Extract<FromServer, { type: K }>> {
  const reply = nextMessage(
    tracked,
    (m) => ((m as FromServer).type === type ? (m as Extract<FromServer, { type: K }>) : undefined),
    timeoutMs,
    type,
  )
  if (!tracked.child.connected) return Promise.reject(new Error(`${tracked.name} is gone`))
  // With a callback, a failed send (the child just died) reaches it instead of crashing the run with an
  // 'error' event; the reply then fails on the child's exit or times out.
  tracked.child.send(message, () => undefined)
  return reply
}

// ------------------------------------------------------------------------------------------------ micro

async function runMicro(): Promise<void> {
  log('micro benchmarks…')
  const child = startChild('micro', [JSON.stringify({ quick })], 'micro')
  if (settings.pinned) pin(child.child.pid ?? 0, 1)
  try {
    const { results: micro } = await nextMessage(
      child,
      (m) => ((m as { type?: string }).type === 'micro' ? (m as { results: MicroResult[] }) : undefined),
      quick ? 30_000 : 90_000,
      'micro results',
    )
    results.micro = micro
    for (const entry of micro) {
      const ops =
        entry.opsPerSec === undefined
          ? (entry.note ?? 'n/a')
          : `${Math.round(entry.opsPerSec).toLocaleString('en-US')} ops/s`
      log(`  ${entry.group.padEnd(12)} ${entry.library.padEnd(44)} ${ops}`)
    }
  } catch (error) {
    notes.push(`micro benchmarks failed: ${errorMessage(error)}`)
    log(`micro benchmarks failed: ${errorMessage(error)}`)
  } finally {
    await child.kill()
  }
}

// ----------------------------------------------------------------------------------------------- memory

async function runMemory(): Promise<void> {
  const payloads: MemoryPayload[] = quick ? ['100B'] : ['one-key', '100B']
  const libraries: MemoryLibrary[] = ['tessera', 'express-session', 'memorystore']
  log(`memory per session, ${settings.memorySessions.toLocaleString('en-US')} sessions per store…`)
  for (const payload of payloads) {
    for (const library of libraries) {
      const child = startChild(
        'memory',
        [JSON.stringify({ library, count: settings.memorySessions, payload })],
        `memory ${library}`,
        ['--expose-gc'],
      )
      try {
        const { result } = await nextMessage(
          child,
          (m) =>
            (m as { type?: string }).type === 'memory-result' ? (m as { result: MemoryResult }) : undefined,
          60_000,
          'memory result',
        )
        results.memory.push(result)
        log(
          `  ${library.padEnd(16)} ${payload.padEnd(8)} ${Math.round(result.bytesPerSession)} bytes/session`,
        )
      } catch (error) {
        notes.push(`memory, ${library} (${payload}): ${errorMessage(error)}`)
        log(`  ${library} ${payload} failed: ${errorMessage(error)}`)
      } finally {
        await child.kill()
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------- HTTP

async function moduleImports(name: string): Promise<string | undefined> {
  if (!existsSync(join(ROOT, 'src', `${name}.ts`))) return 'missing'
  try {
    await import(`../src/${name}.js`)
    return undefined
  } catch (error) {
    return `src/${name}.ts does not import (${errorMessage(error).split('\n')[0]})`
  }
}

/** What one server has measured so far on one route, over all its rounds. */
interface Accumulated {
  rps: number[]
  requests: number
  seconds: number
  latencies: Float64Array[]
  errors: number
  timeouts: number
  non2xx: number
  statusCodes: Record<string, number>
  cpuMicros: number
  calls: number
  commands: Record<string, number>
}

const emptyAccumulated = (): Accumulated => ({
  rps: [],
  requests: 0,
  seconds: 0,
  latencies: [],
  errors: 0,
  timeouts: 0,
  non2xx: 0,
  statusCodes: {},
  cpuMicros: 0,
  calls: 0,
  commands: {},
})

/** A server of the group being measured. */
interface Live {
  readonly info: ScenarioInfo
  readonly server: Tracked
  readonly port: number
  readonly cookies: string[]
  readonly routes: { inc: Accumulated; read: Accumulated }
}

const ROUTES = { inc: '/inc', read: '/read' } as const

async function backendCalls(live: Live): Promise<{ total: number; commands?: Record<string, number> }> {
  if (live.info.backend === 'redis' && services.redis !== undefined) {
    const commands = await services.redis.commandStats()
    return { total: Object.values(commands).reduce((a, b) => a + b, 0), commands }
  }
  if (live.info.backend === 'postgres')
    return { total: (await ask(live.server, { type: 'stats' }, 'stats')).queries }
  return { total: 0 }
}

/** One measured slice of load on one route of one server, added to what that server has measured. */
async function measureSlice(live: Live, route: 'inc' | 'read', seconds: number): Promise<void> {
  const acc = live.routes[route]
  const before = live.info.backend === undefined ? undefined : await backendCalls(live)
  const cpuBefore = await ask(live.server, { type: 'cpu' }, 'cpu')
  const load = await runLoad({
    port: live.port,
    path: ROUTES[route],
    cookies: live.cookies,
    connections: settings.connections,
    seconds,
  })
  const cpuAfter = await ask(live.server, { type: 'cpu' }, 'cpu')
  const after = live.info.backend === undefined ? undefined : await backendCalls(live)
  acc.rps.push(load.rps)
  acc.requests += load.requests
  acc.seconds += load.seconds
  acc.latencies.push(load.latencies)
  acc.errors += load.errors
  acc.timeouts += load.timeouts
  acc.non2xx += load.non2xx
  for (const [code, count] of Object.entries(load.statusCodes))
    acc.statusCodes[code] = (acc.statusCodes[code] ?? 0) + count
  acc.cpuMicros += cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system
  if (before !== undefined && after !== undefined) {
    acc.calls += after.total - before.total
    for (const [name, calls] of Object.entries(after.commands ?? {})) {
      const added = calls - (before.commands?.[name] ?? 0)
      if (added > 0) acc.commands[name] = (acc.commands[name] ?? 0) + added
    }
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  if (sorted.length === 0) return Number.NaN
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** The route's figures over all rounds: median req/s of the rounds, percentiles of every response. */
function summarize(live: Live, route: 'inc' | 'read', memory: MemoryReport | undefined): RouteResult {
  const acc = live.routes[route]
  const all = new Float64Array(acc.latencies.reduce((n, part) => n + part.length, 0))
  let offset = 0
  for (const part of acc.latencies) {
    all.set(part, offset)
    offset += part.length
  }
  all.sort()
  // Every response counts for the costs, whatever its status: the server (and the backend) served them all.
  const responses = acc.requests + acc.non2xx
  const result: RouteResult = {
    requests: acc.requests,
    seconds: acc.seconds,
    rps: median(acc.rps),
    p50: quantile(all, 0.5),
    p99: quantile(all, 0.99),
    max: quantile(all, 1),
    errors: acc.errors,
    timeouts: acc.timeouts,
    non2xx: acc.non2xx,
    statusCodes: acc.statusCodes,
    roundsRps: acc.rps,
    ...(responses > 0 && { cpuMicrosPerRequest: acc.cpuMicros / responses }),
    ...(memory !== undefined && { memory }),
    ...(live.info.backend !== undefined &&
      responses > 0 && {
        backendCalls: acc.calls,
        callsPerRequest: acc.calls / responses,
        ...(live.info.backend === 'redis' && {
          commands: Object.fromEntries(
            Object.entries(acc.commands).map(([name, n]) => [name, n / responses]),
          ),
        }),
      }),
  }
  return result
}

// For Redis: callsPerRequest becomes the commands clients sent (MONITOR), executedPerRequest what Redis ran.
function withMonitor(
  result: RouteResult,
  seen: (MonitoredCommands & { responses: number }) | undefined,
): RouteResult {
  if (seen === undefined || seen.responses === 0) return result
  const perRequest = (counts: Record<string, number>) =>
    Object.fromEntries(Object.entries(counts).map(([name, n]) => [name, n / seen.responses]))
  const sent = Object.values(seen.client).reduce((a, b) => a + b, 0)
  return {
    ...result,
    ...(result.callsPerRequest !== undefined && { executedPerRequest: result.callsPerRequest }),
    callsPerRequest: sent / seen.responses,
    monitored: { client: perRequest(seen.client), lua: perRequest(seen.lua) },
  }
}

function logRoute(id: string, route: string, result: RouteResult): void {
  const executed =
    result.executedPerRequest === undefined ? '' : ` (${result.executedPerRequest.toFixed(2)} run)`
  const calls =
    result.callsPerRequest === undefined ? '' : `  ${result.callsPerRequest.toFixed(2)} calls/req${executed}`
  const rounds = (result.roundsRps ?? []).map((rps) => Math.round(rps)).join(' ')
  log(
    `  ${id.padEnd(28)} ${route.padEnd(6)} ${Math.round(result.rps).toString().padStart(6)} req/s [${rounds}]  p50 ${result.p50.toFixed(2)} ms  p99 ${result.p99.toFixed(2)} ms  ${(result.cpuMicrosPerRequest ?? Number.NaN).toFixed(1)} µs CPU/req${calls}`,
  )
}

function serverConfig(info: ScenarioInfo): ServerConfig {
  const sqlitePath = join(tmpdir(), `tessera-bench-${process.pid}-${info.id}.db`)
  if (info.id.includes('sqlite')) tempFiles.add(sqlitePath)
  return {
    scenario: info.id,
    redisUrl: services.redis?.url,
    postgresUrl: services.postgres?.url,
    postgresTable: services.postgres?.table,
    sqlitePath,
    redisPrefix: `bench:${process.pid}:${info.id}:`,
  }
}

async function stopServer(live: Live): Promise<void> {
  await ask(live.server, { type: 'close' }, 'closed', 5000).catch(() => undefined)
  // A profiled server writes its profile as it exits: give it time.
  await live.server.waitExit(profiled.includes(live.info.id) ? 15_000 : 2000)
  await live.server.kill()
  const { sqlitePath } = serverConfig(live.info)
  if (sqlitePath !== undefined) {
    for (const suffix of ['', '-wal', '-shm'])
      await rm(`${sqlitePath}${suffix}`, { force: true }).catch(() => {})
  }
}

/** Seconds a group takes with `rounds` rounds (a generous estimate, for the time budget). */
function groupSeconds(infos: readonly ScenarioInfo[], rounds: number): number {
  const size = infos.length
  const start = 2 + size * (0.6 + settings.sessions / 800)
  const warm = size * settings.warmupSeconds * (quick ? 1 : 2)
  const monitor = infos.filter((info) => info.backend === 'redis').length * 2 * (quick ? 0.8 : 1)
  return start + warm + rounds * 2 * size * (settings.slice + 0.35) + size * 0.5 + monitor
}

/**
 * Measures a group: all its servers up at once, then `settings.rounds` rounds; in each, every server gets a
 * slice of load on /inc, then on /read, starting with a different server each round.
 */
async function runGroup(infos: readonly ScenarioInfo[]): Promise<void> {
  const results_ = infos.map(
    (info): ScenarioResult => ({ id: info.id, label: info.label, kind: info.kind, status: 'failed' }),
  )
  results.scenarios.push(...results_)
  let rounds = settings.rounds
  while (rounds > 1 && elapsed() + groupSeconds(infos, rounds) > BUDGET_SECONDS - 5) rounds--
  if (elapsed() + groupSeconds(infos, rounds) > BUDGET_SECONDS - 5) {
    for (const result of results_) {
      result.status = 'skipped'
      result.reason = 'not enough time left in the run budget'
      log(`notice: skipping ${result.id}: ${result.reason}`)
    }
    return
  }
  if (rounds < settings.rounds)
    notes.push(
      `group ${infos[0]?.group}: ${rounds} rounds instead of ${settings.rounds}, to stay within the time budget`,
    )
  const started = Date.now()
  // Servers start in parallel (compiling is the slow part); sessions are created one server at a time.
  const spawned = await Promise.all(infos.map((info, i) => startServerProcess(info, results_[i]!)))
  const lives: Live[] = []
  for (const [i, pending] of spawned.entries()) {
    if (pending === undefined) continue
    const live = await prepare(pending, results_[i]!)
    if (live !== undefined) lives.push(live)
  }
  try {
    if (settings.warmupSeconds > 0) {
      for (const live of lives) {
        for (const route of quick ? (['inc'] as const) : (['inc', 'read'] as const)) {
          await runLoad({
            port: live.port,
            path: ROUTES[route],
            cookies: live.cookies,
            connections: settings.connections,
            seconds: settings.warmupSeconds,
          })
        }
      }
    }
    for (let round = 0; round < rounds; round++) {
      const order = lives.map((_, i) => lives[(i + round) % lives.length]!)
      for (const route of ['inc', 'read'] as const) {
        for (const live of order) await measureSlice(live, route, settings.slice)
      }
    }
    const monitored = new Map<
      Live,
      Partial<Record<'inc' | 'read', MonitoredCommands & { responses: number }>>
    >()
    for (const live of lives) {
      if (live.info.backend !== 'redis' || services.redis === undefined) continue
      const byRoute: Partial<Record<'inc' | 'read', MonitoredCommands & { responses: number }>> = {}
      for (const route of ['inc', 'read'] as const) {
        const stop = await services.redis.monitor()
        const load = await runLoad({
          port: live.port,
          path: ROUTES[route],
          cookies: live.cookies,
          connections: settings.connections,
          seconds: quick ? 0.3 : 0.5,
        })
        byRoute[route] = { ...(await stop()), responses: load.requests + load.non2xx }
      }
      monitored.set(live, byRoute)
    }
    for (const [i, info] of infos.entries()) {
      const live = lives.find((entry) => entry.info === info)
      if (live === undefined) continue
      const result = results_[i]!
      const { memory } = await ask(live.server, { type: 'memory' }, 'memory')
      result.inc = withMonitor(summarize(live, 'inc', undefined), monitored.get(live)?.inc)
      result.read = withMonitor(summarize(live, 'read', memory), monitored.get(live)?.read)
      result.memory = memory
      logRoute(info.id, 'modify', result.inc)
      logRoute(info.id, 'read', result.read)
      const bad = problems(result.inc) + problems(result.read)
      result.status = bad === 0 ? 'ok' : 'invalid'
      if (bad > 0) {
        result.reason = `${bad} errors or non-2xx responses (${JSON.stringify({ modify: result.inc.statusCodes, read: result.read.statusCodes })})`
        log(`  ${info.id}: INVALID, ${result.reason}`)
      }
    }
  } catch (error) {
    for (const result of results_) {
      if (result.status !== 'failed' || result.reason !== undefined) continue
      result.reason = errorMessage(error).split('\n')[0]!.slice(0, 300)
    }
    log(`  group ${infos[0]?.group} failed: ${errorMessage(error)}`)
  } finally {
    await Promise.all(lives.map(stopServer))
    await Promise.all(spawned.map((pending) => pending?.server.kill()))
    const seconds = (Date.now() - started) / 1000
    for (const result of results_) result.wallSeconds = seconds
  }
}

interface Spawned {
  readonly info: ScenarioInfo
  readonly server: Tracked
  readonly port: number
}

async function startServerProcess(info: ScenarioInfo, result: ScenarioResult): Promise<Spawned | undefined> {
  const flags = ['--expose-gc']
  if (profiled.includes(info.id)) {
    const dir = join(tmpdir(), 'tessera-bench-profiles')
    flags.push('--cpu-prof', `--cpu-prof-dir=${dir}`)
    notes.push(
      `CPU profile of ${info.id} written to ${dir} (summarise: node --import tsx bench/profile.ts <file>)`,
    )
  }
  const server = startChild('server', [JSON.stringify(serverConfig(info))], info.id, flags)
  try {
    const ready = await nextMessage(
      server,
      (m) => {
        const message = m as FromServer
        return message.type === 'ready' || message.type === 'failed' ? message : undefined
      },
      30_000,
      'ready',
    )
    if (ready.type === 'failed') throw new Error(`the server did not start: ${ready.message}`)
    if (settings.pinned) pin(server.child.pid ?? 0, 1)
    return { info, server, port: ready.port }
  } catch (error) {
    result.status = 'failed'
    result.reason = errorMessage(error).split('\n')[0]!.slice(0, 300)
    log(`  ${info.id}: failed: ${result.reason}`)
    await server.kill()
    return undefined
  }
}

async function prepare(spawned: Spawned, result: ScenarioResult): Promise<Live | undefined> {
  const { info, server, port } = spawned
  try {
    const cookies = await createSessions(port, settings.sessions, info.sessions)
    await checkSessions(port, cookies, info.sessions)
    return { info, server, port, cookies, routes: { inc: emptyAccumulated(), read: emptyAccumulated() } }
  } catch (error) {
    result.status = 'failed'
    result.reason = errorMessage(error).split('\n')[0]!.slice(0, 300)
    log(`  ${info.id}: failed: ${result.reason}`)
    await server.kill()
    return undefined
  }
}

function problems(result: Pick<LoadResult, 'errors' | 'timeouts' | 'non2xx'>): number {
  return result.errors + result.timeouts + result.non2xx
}

async function runHttp(): Promise<void> {
  if (only !== undefined) {
    const unknown = only.filter((id) => !SCENARIOS.some((info) => info.id === id))
    if (unknown.length > 0) {
      throw new Error(
        `unknown scenario(s): ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.id).join(', ')}`,
      )
    }
  }
  const selected = SCENARIOS.filter((info) =>
    only === undefined ? !quick || info.fullOnly !== true : only.includes(info.id),
  )
  if (quick && only === undefined) {
    const left = SCENARIOS.filter((info) => info.fullOnly === true).map((info) => info.id)
    notes.push(`quick mode leaves out ${left.join(', ')}`)
  }
  // Modules being written by others, and the services, decide what can run.
  const unavailable = new Map<string, string>()
  for (const info of selected) {
    if (info.needsModule === undefined || unavailable.has(info.needsModule)) continue
    const why = await moduleImports(info.needsModule)
    if (why !== undefined) unavailable.set(info.needsModule, why)
  }
  const runnable = (info: ScenarioInfo) =>
    info.needsModule === undefined || !unavailable.has(info.needsModule)
  const serviceNotes: string[] = []
  if (selected.some((info) => info.backend === 'redis' && runnable(info))) {
    services.redis = await startRedis(serviceNotes)
    if (services.redis !== undefined) {
      results.backends.redis = `${services.redis.origin === 'private' ? 'a private redis-server started for this run' : 'the shared Redis'} at ${services.redis.url}`
      results.backends.redisCounting =
        'every command in INFO commandstats, minus the INFO calls of the counter itself, ÷ responses'
    }
  }
  if (selected.some((info) => info.backend === 'postgres' && runnable(info))) {
    services.postgres = await connectPostgres(serviceNotes)
    if (services.postgres !== undefined) {
      results.backends.postgres = `${services.postgres.url.replace(/\/\/[^@/]*@/, '//…@')}, table ${services.postgres.table} (dropped at the end)`
      results.backends.postgresCounting = services.postgres.counting
    }
    notes.push('no PostgreSQL peer: no express-session store for PostgreSQL (connect-pg-simple) is installed')
  }
  for (const note of serviceNotes) {
    notes.push(note)
    log(`notice: ${note}`)
  }
  const groups = new Map<string, ScenarioInfo[]>()
  for (const info of selected) {
    const missing = info.needsModule === undefined ? undefined : unavailable.get(info.needsModule)
    const why =
      (missing === 'missing' ? undefined : missing) ??
      (info.backend === 'redis' && services.redis === undefined ? 'Redis is not reachable' : undefined) ??
      (info.backend === 'postgres' && services.postgres === undefined
        ? 'PostgreSQL is not reachable'
        : undefined)
    if (missing === 'missing') {
      const entry = { label: info.label, why: `src/${info.needsModule}.ts does not exist yet` }
      results.notYetAvailable.push(entry)
      log(`not yet available: ${entry.label} (${entry.why})`)
    } else if (why !== undefined) {
      log(`notice: skipping ${info.id}: ${why}`)
      results.scenarios.push({
        id: info.id,
        label: info.label,
        kind: info.kind,
        status: 'skipped',
        reason: why,
      })
    } else {
      groups.set(info.group, [...(groups.get(info.group) ?? []), info])
    }
  }
  const count = [...groups.values()].reduce((n, group) => n + group.length, 0)
  log(
    `HTTP: ${count} scenarios in ${groups.size} groups; ${settings.rounds} rounds of ${settings.slice} s per route and server`,
  )
  for (const [name, infos] of groups) {
    log(`group ${name}: ${infos.map((info) => info.id).join(', ')}`)
    await runGroup(infos)
  }
  await stopServices()
}

// ------------------------------------------------------------------------------------------------- main

function analysisText(): string {
  try {
    return readFileSync(join(BENCH, 'analysis.md'), 'utf8').trim()
  } catch {
    return ''
  }
}

function methodText(): string {
  try {
    return readFileSync(join(BENCH, 'method.md'), 'utf8').trim()
  } catch {
    return ''
  }
}

/** --docs-only: docs/benchmarks.md and its chart again from bench/results/latest.json (a full run's). */
function rewriteDocs(): void {
  const saved = JSON.parse(readFileSync(join(RESULTS, 'latest.json'), 'utf8')) as BenchResults
  if (saved.mode !== 'full') throw new Error('bench/results/latest.json is not from a full run')
  saved.ratios = computeRatios(saved)
  writeAtomically(DOCS_CHART, svgChart(saved))
  writeAtomically(DOCS, docsPage(saved, relative(dirname(DOCS), DOCS_CHART), methodText(), analysisText()))
  console.log(`wrote ${relative(ROOT, DOCS)} and ${relative(ROOT, DOCS_CHART)} from the run of ${saved.date}`)
}

async function main(): Promise<void> {
  if (flag('docs-only')) {
    clearTimeout(watchdog)
    finishing = true
    rewriteDocs()
    return
  }
  log(
    `tessera bench, ${quick ? 'quick' : 'full'} mode; budget ${BUDGET_SECONDS} s; ${cpus().length} cores, ${(freemem() / 2 ** 30).toFixed(1)} GiB free, load ${loadavg()
      .map((n) => n.toFixed(2))
      .join(' ')}`,
  )
  if (settings.pinned && !pin(process.pid, 0)) {
    settings.pinned = false
    notes.push('taskset is not usable here: no CPU pinning')
  }
  if (!flag('tsx')) {
    try {
      compiled = await compileTree(ROOT)
      notes.push(
        `tessera and the bench's servers ran compiled by esbuild without keepNames (${compiled.dir}); --tsx runs them under tsx`,
      )
    } catch (error) {
      notes.push(`could not compile the tree with esbuild (${errorMessage(error)}): children run under tsx`)
    }
  }
  if (!flag('skip-micro')) await runMicro()
  if (!flag('skip-memory')) await runMemory()
  if (!flag('skip-http')) await runHttp()
  clearTimeout(watchdog)
  finishing = true
  removeBuild()
  removeTempFiles()
  const report = writeResults()
  console.log(`\n${report}`)
  if (writeDocs) {
    writeAtomically(DOCS_CHART, svgChart(results))
    writeAtomically(
      DOCS,
      docsPage(results, relative(dirname(DOCS), DOCS_CHART), methodText(), analysisText()),
    )
    log(`wrote ${relative(ROOT, DOCS)} and ${relative(ROOT, DOCS_CHART)}`)
  }
  log(`wrote ${relative(ROOT, RESULTS)}/latest.{md,json,svg}; total ${elapsed().toFixed(0)} s`)
}

main().then(
  () => process.exit(0),
  (error: unknown) => void abort(`failed: ${errorMessage(error)}`, 1),
)
