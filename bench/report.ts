/**
 * Turns the results into a Markdown report, a JSON file, an SVG bar chart (written by hand, no dependency) and
 * docs/benchmarks.md.
 */
import { type MemoryReport, SCENARIOS, type ScenarioKind } from './common.js'
import type { LoadResult } from './load.js'
import type { MemoryResult } from './memory.js'
import type { MicroResult } from './micro.js'

export interface RouteResult extends Omit<LoadResult, 'latencies'> {
  /** Requests per second of each round; `rps` is their median. */
  readonly roundsRps?: readonly number[]
  /**
   * CPU time the server process used per response during the measured run (user + system, µs). Much less
   * sensitive than req/s to other work on the machine: it is what a request costs, not how long it waited.
   */
  readonly cpuMicrosPerRequest?: number
  /** Backend commands (Redis) or statements (PostgreSQL) during the measured run. */
  readonly backendCalls?: number
  readonly callsPerRequest?: number
  /**
   * Redis: commands per request executed by the server during the measured rounds (INFO commandstats), Lua
   * scripts' inner commands included. `callsPerRequest` is then the commands clients sent (MONITOR, in a short
   * extra phase): one round trip each unless pipelined.
   */
  readonly commands?: Record<string, number>
  readonly executedPerRequest?: number
  /** Redis: commands per request as MONITOR saw them, sent by the client or run inside scripts. */
  readonly monitored?: { readonly client: Record<string, number>; readonly lua: Record<string, number> }
  readonly memory?: MemoryReport
}

export interface ScenarioResult {
  readonly id: string
  readonly label: string
  readonly kind: ScenarioKind
  /** ok: measured, no error; invalid: measured with errors or non-2xx; failed: could not run; skipped. */
  status: 'ok' | 'invalid' | 'failed' | 'skipped'
  reason?: string
  inc?: RouteResult
  read?: RouteResult
  memory?: MemoryReport
  /** Seconds from spawning the server to its closing. */
  wallSeconds?: number
}

export interface BenchResults {
  readonly tool: 'tessera bench'
  readonly date: string
  readonly mode: 'full' | 'quick'
  readonly argv: readonly string[]
  totalSeconds: number
  readonly machine: {
    readonly cpu: string
    readonly cores: number
    readonly memoryGiB: number
    readonly node: string
    readonly v8: string
    readonly platform: string
    readonly loadavgStart: readonly number[]
    loadavgEnd: readonly number[]
  }
  readonly settings: {
    readonly connections: number
    readonly rounds: number
    readonly slice: number
    readonly warmupSeconds: number
    readonly sessions: number
    readonly pinned: boolean
    readonly memorySessions: number
  }
  readonly versions: Record<string, string>
  readonly backends: { redis?: string; postgres?: string; redisCounting?: string; postgresCounting?: string }
  readonly scenarios: ScenarioResult[]
  readonly notYetAvailable: { label: string; why: string }[]
  micro: MicroResult[]
  memory: MemoryResult[]
  readonly notes: string[]
  ratios?: Ratio[]
}

export interface Ratio {
  readonly topic: string
  readonly tessera: string
  readonly peer: string
  readonly value: number | undefined
  /** HTTP only: peer's server CPU µs per request ÷ tessera's, so higher is better as for `value`. */
  readonly cpuValue?: number | undefined
  /** 'higher' = tessera/peer should be at least target; 'lower' = at most. */
  readonly target?: { readonly value: number; readonly better: 'higher' | 'lower' } | undefined
  readonly met?: boolean | undefined
  readonly detail: string
}

const fmt = {
  int: (value: number | undefined) =>
    value === undefined || Number.isNaN(value) ? '–' : Math.round(value).toLocaleString('en-US'),
  ms: (value: number | undefined) =>
    value === undefined || Number.isNaN(value) ? '–' : value < 10 ? value.toFixed(2) : value.toFixed(1),
  mb: (bytes: number | undefined) => (bytes === undefined ? '–' : (bytes / 1048576).toFixed(1)),
  ratio: (value: number | undefined) =>
    value === undefined || Number.isNaN(value) ? '–' : `${value.toFixed(2)}×`,
  cpu: (value: number | undefined) => (value === undefined || Number.isNaN(value) ? '–' : value.toFixed(1)),
  calls: (value: number | undefined) => (value === undefined ? '–' : value.toFixed(2)),
}

function scenario(results: BenchResults, id: string): ScenarioResult | undefined {
  const found = results.scenarios.find((entry) => entry.id === id)
  return found?.status === 'ok' ? found : undefined
}

function micro(results: BenchResults, group: string, library: string): MicroResult | undefined {
  return results.micro.find(
    (entry) => entry.group === group && entry.library.startsWith(library) && entry.opsPerSec !== undefined,
  )
}

function met(value: number | undefined, target: Ratio['target']): boolean | undefined {
  if (value === undefined || target === undefined) return undefined
  return target.better === 'higher' ? value >= target.value : value <= target.value
}

/** tessera ÷ peer for the pairs the issue cares about; a missing side leaves the value undefined. */
export function computeRatios(results: BenchResults): Ratio[] {
  const ratios: Ratio[] = []
  const http = (
    topic: string,
    tesseraId: string,
    peerId: string,
    target?: { value: number; better: 'higher' | 'lower' },
  ) => {
    const tessera = scenario(results, tesseraId)
    const peer = scenario(results, peerId)
    for (const route of ['inc', 'read'] as const) {
      const a = tessera?.[route]?.rps
      const b = peer?.[route]?.rps
      const value = a !== undefined && b !== undefined ? a / b : undefined
      if (tessera === undefined && peer === undefined) continue
      const cpuA = tessera?.[route]?.cpuMicrosPerRequest
      const cpuB = peer?.[route]?.cpuMicrosPerRequest
      ratios.push({
        topic: `${topic}, ${route === 'inc' ? 'modifying' : 'read-only'} route`,
        tessera: tessera?.label ?? tesseraId,
        peer: peer?.label ?? peerId,
        value,
        cpuValue: cpuA !== undefined && cpuB !== undefined ? cpuB / cpuA : undefined,
        target,
        met: met(value, target),
        detail: `${fmt.int(a)} vs ${fmt.int(b)} req/s; ${fmt.cpu(cpuA)} vs ${fmt.cpu(cpuB)} µs CPU/req`,
      })
    }
  }
  http('node:http + MemoryStore vs the bare ceiling', 'tessera-node-memory', 'node-bare', {
    value: 0.8,
    better: 'higher',
  })
  http('Express + MemoryStore vs Express without sessions', 'tessera-express-memory', 'express-bare', {
    value: 0.9,
    better: 'higher',
  })
  http(
    'Express + MemoryStore vs express-session + MemoryStore',
    'tessera-express-memory',
    'express-session-memory',
  )
  http(
    'Express + MemoryStore vs express-session + memorystore',
    'tessera-express-memory',
    'express-session-memorystore',
  )
  http('Fastify + MemoryStore vs Fastify without sessions', 'tessera-fastify-memory', 'fastify-bare', {
    value: 0.8,
    better: 'higher',
  })
  http('Fastify + MemoryStore vs @fastify/session', 'tessera-fastify-memory', 'fastify-session')
  http('stateless (CookieStore) vs iron-session', 'tessera-node-cookie', 'iron-session', {
    value: 5,
    better: 'higher',
  })
  http('Express + Redis vs express-session + connect-redis', 'tessera-express-redis', 'express-session-redis')

  const microRatio = (
    topic: string,
    group: string,
    peer: string,
    target?: { value: number; better: 'higher' | 'lower' },
  ) => {
    const a = micro(results, group, 'tessera')
    const b = micro(results, group, peer)
    const value =
      a?.opsPerSec !== undefined && b?.opsPerSec !== undefined ? a.opsPerSec / b.opsPerSec : undefined
    if (a === undefined && b === undefined) return
    ratios.push({
      topic,
      tessera: a?.operation ?? 'tessera',
      peer: b?.library ?? peer,
      value,
      target,
      met: met(value, target),
      detail: `${fmt.int(a?.opsPerSec)} vs ${fmt.int(b?.opsPerSec)} ops/s`,
    })
  }
  microRatio('sign a cookie', 'sign', 'cookie-signature')
  microRatio('verify a cookie', 'verify', 'cookie-signature')
  microRatio('generate a session ID', 'id', 'uid-safe')
  for (const size of ['100 B', '1 KB', '3 KB']) {
    const tenfold = { value: 10, better: 'higher' } as const
    microRatio(`seal a ${size} session`, `seal ${size}`, 'iron-session', tenfold)
    microRatio(`unseal a ${size} session`, `unseal ${size}`, 'iron-session', tenfold)
    microRatio(`seal + unseal a ${size} session`, `seal+unseal ${size}`, 'iron-session', tenfold)
  }

  for (const peer of ['express-session', 'memorystore'] as const) {
    for (const payload of ['one-key', '100B'] as const) {
      const a = results.memory.find((entry) => entry.library === 'tessera' && entry.payload === payload)
      const b = results.memory.find((entry) => entry.library === peer && entry.payload === payload)
      if (a === undefined && b === undefined) continue
      const value = a !== undefined && b !== undefined ? a.bytesPerSession / b.bytesPerSession : undefined
      const target = peer === 'express-session' ? ({ value: 0.75, better: 'lower' } as const) : undefined
      ratios.push({
        topic: `bytes per session in memory vs ${peer === 'express-session' ? 'express-session MemoryStore' : 'memorystore'} (${payload === 'one-key' ? 'one key' : '~100 B of data'})`,
        tessera: 'tessera MemoryStore',
        peer: `${peer} ${peer === 'express-session' ? 'MemoryStore' : ''}`.trim(),
        value,
        target,
        met: met(value, target),
        detail: `${fmt.int(a?.bytesPerSession)} vs ${fmt.int(b?.bytesPerSession)} bytes (lower is better)`,
      })
    }
  }
  return ratios
}

function scenarioTable(results: BenchResults): string[] {
  const lines = [
    '| Scenario | modify req/s | p50 ms | p99 ms | CPU µs/req | read req/s | p50 ms | p99 ms | CPU µs/req | errors | RSS MB | heap MB | backend calls/req (modify / read) |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ]
  for (const entry of results.scenarios) {
    const name = entry.kind === 'tessera' ? `**${entry.label}**` : entry.label
    if (entry.status === 'failed' || entry.status === 'skipped') {
      lines.push(`| ${name} | ${entry.status}: ${escapeCell(entry.reason ?? '')} | | | | | | | | | | | |`)
      continue
    }
    const { inc, read } = entry
    const errors =
      (inc ? inc.errors + inc.timeouts + inc.non2xx : 0) +
      (read ? read.errors + read.timeouts + read.non2xx : 0)
    const executed =
      inc?.executedPerRequest !== undefined || read?.executedPerRequest !== undefined
        ? ` (${fmt.calls(inc?.executedPerRequest)} / ${fmt.calls(read?.executedPerRequest)} run by Redis)`
        : ''
    const calls =
      inc?.callsPerRequest !== undefined || read?.callsPerRequest !== undefined
        ? `${fmt.calls(inc?.callsPerRequest)} / ${fmt.calls(read?.callsPerRequest)}${executed}`
        : ''
    const invalid = entry.status === 'invalid' ? ' (INVALID)' : ''
    lines.push(
      `| ${name}${invalid} | ${fmt.int(inc?.rps)} | ${fmt.ms(inc?.p50)} | ${fmt.ms(inc?.p99)} | ${fmt.cpu(inc?.cpuMicrosPerRequest)} | ${fmt.int(read?.rps)} | ${fmt.ms(read?.p50)} | ${fmt.ms(read?.p99)} | ${fmt.cpu(read?.cpuMicrosPerRequest)} | ${errors} | ${fmt.mb(entry.memory?.rss)} | ${fmt.mb(entry.memory?.heapUsed)} | ${calls} |`,
    )
  }
  return lines
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ')
}

function ratioTable(ratios: readonly Ratio[]): string[] {
  const lines = [
    '| tessera ÷ peer | ratio (req/s) | ratio by server CPU per request | target | measured (tessera vs peer) |',
    '| --- | ---: | ---: | --- | --- |',
  ]
  for (const ratio of ratios) {
    const target =
      ratio.target === undefined
        ? ''
        : `${ratio.target.better === 'higher' ? '≥' : '≤'} ${ratio.target.value}× ${ratio.met === undefined ? '' : ratio.met ? '(met)' : '(**missed**)'}`
    const cpu = ratio.cpuValue === undefined ? '' : fmt.ratio(ratio.cpuValue)
    lines.push(`| ${ratio.topic} | ${fmt.ratio(ratio.value)} | ${cpu} | ${target} | ${ratio.detail} |`)
  }
  return lines
}

function microTable(results: BenchResults): string[] {
  const lines = [
    '| what | library | operation | ops/s (median) | µs/op |',
    '| --- | --- | --- | ---: | ---: |',
  ]
  for (const entry of results.micro) {
    const ops = entry.opsPerSec
    lines.push(
      `| ${entry.group} | ${entry.library} | ${entry.operation} | ${ops === undefined ? (entry.note ?? 'n/a') : fmt.int(ops)} | ${ops === undefined ? '' : (1e6 / ops).toFixed(2)} |`,
    )
  }
  return lines
}

function memoryTable(results: BenchResults): string[] {
  const lines = [
    '| store | data | sessions | bytes/session (heap) | data JSON bytes |',
    '| --- | --- | ---: | ---: | ---: |',
  ]
  for (const entry of results.memory) {
    const name = {
      tessera: 'tessera MemoryStore',
      'express-session': 'express-session MemoryStore',
      memorystore: 'memorystore',
    }[entry.library]
    lines.push(
      `| ${name} | ${entry.payload === 'one-key' ? '{ counter }' : '~100 B, 5 keys'} | ${fmt.int(entry.count)} | ${fmt.int(entry.bytesPerSession)} | ${entry.dataBytes} |`,
    )
  }
  return lines
}

function machineLine(results: BenchResults): string {
  const { machine } = results
  return `${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB; Node ${machine.node} (V8 ${machine.v8}), ${machine.platform}; load average ${machine.loadavgStart.map((n) => n.toFixed(2)).join(' ')} at the start, ${machine.loadavgEnd.map((n) => n.toFixed(2)).join(' ')} at the end`
}

function settingsLine(results: BenchResults): string {
  const { settings } = results
  return `${settings.connections} connections; per server and route a ${settings.warmupSeconds} s warm-up, then ${settings.rounds} rounds of ${settings.slice} s interleaved with the other servers of its group (req/s: median of the rounds); ${settings.sessions} distinct sessions per server; ${settings.pinned ? 'server pinned to CPU 1 and load generator to CPU 0' : 'no CPU pinning'}`
}

/** The report printed and written to bench/results/latest.md. */
export function markdown(results: BenchResults): string {
  const ratios = results.ratios ?? []
  const lines = [
    `# tessera benchmark (${results.mode})`,
    '',
    `${results.date}. ${machineLine(results)}.`,
    '',
    `HTTP: ${settingsLine(results)}. Took ${results.totalSeconds.toFixed(0)} s.`,
    '',
    '## Ratios (tessera ÷ peer, same run)',
    '',
    ...ratioTable(ratios),
    '',
    '## HTTP',
    '',
    ...scenarioTable(results),
    '',
    'Not yet available: ' +
      (results.notYetAvailable.length === 0
        ? 'nothing.'
        : `${results.notYetAvailable.map((entry) => `${entry.label} (${entry.why})`).join('; ')}.`),
    '',
    '## Micro',
    '',
    ...microTable(results),
    '',
    '## Memory',
    '',
    ...memoryTable(results),
    '',
  ]
  if (results.notes.length > 0) lines.push('## Notes', '', ...results.notes.map((note) => `- ${note}`), '')
  return lines.join('\n')
}

const COLORS: Record<ScenarioKind, { modify: string; read: string }> = {
  tessera: { modify: '#1f6feb', read: '#79b0ff' },
  peer: { modify: '#6e7781', read: '#b3bac1' },
  ceiling: { modify: '#2da44e', read: '#8fd19e' },
}

function xml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** Horizontal bars, two per scenario (modifying and read-only route), requests per second. */
export function svgChart(results: BenchResults): string {
  const rows = results.scenarios.filter((entry) => entry.inc !== undefined || entry.read !== undefined)
  const max = Math.max(1, ...rows.flatMap((entry) => [entry.inc?.rps ?? 0, entry.read?.rps ?? 0]))
  // A round step giving about five ticks: 1, 2, 2.5 or 5 times a power of ten.
  const rough = max / 5
  const magnitude = 10 ** Math.floor(Math.log10(rough))
  const step = ([1, 2, 2.5, 5, 10].find((m) => m * magnitude >= rough) ?? 10) * magnitude
  const ticks = Math.ceil(max / step)
  const top = ticks * step
  const labelWidth = 330
  const plotWidth = 520
  const barHeight = 11
  const rowHeight = 2 * barHeight + 12
  const header = 74
  const width = labelWidth + plotWidth + 90
  const height = header + rows.length * rowHeight + 40
  const x = (value: number) => labelWidth + (value / top) * plotWidth
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="-apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="12" y="22" font-size="15" font-weight="600">Requests per second (higher is better), ${xml(results.mode)} run of ${xml(results.date.slice(0, 10))}</text>`,
    `<text x="12" y="40" fill="#57606a">${xml(`${results.machine.cpu}, ${results.machine.cores} cores, Node ${results.machine.node}; ${results.settings.connections} connections, ${results.settings.sessions} sessions`)}</text>`,
    `<text x="12" y="56" fill="#57606a">${xml('Compare bars within a group (between dashed lines): groups run minutes apart on a shared machine.')}</text>`,
  ]
  for (let i = 0; i <= ticks; i++) {
    const value = step * i
    const tx = x(value)
    parts.push(
      `<line x1="${tx.toFixed(1)}" y1="${header - 6}" x2="${tx.toFixed(1)}" y2="${header + rows.length * rowHeight}" stroke="#d0d7de" stroke-width="1"/>`,
      `<text x="${tx.toFixed(1)}" y="${header + rows.length * rowHeight + 16}" text-anchor="middle" fill="#57606a">${xml(fmt.int(value))}</text>`,
    )
  }
  const groupOf = (id: string) => SCENARIOS.find((info) => info.id === id)?.group
  rows.forEach((entry, index) => {
    const y = header + index * rowHeight
    if (index > 0 && groupOf(entry.id) !== groupOf(rows[index - 1]!.id)) {
      parts.push(
        `<line x1="12" y1="${y - 6}" x2="${width - 12}" y2="${y - 6}" stroke="#8c959f" stroke-width="1" stroke-dasharray="3 3"/>`,
      )
    }
    const colors = COLORS[entry.kind]
    const weight = entry.kind === 'tessera' ? ' font-weight="600"' : ''
    const invalid = entry.status === 'invalid' ? ' (invalid)' : ''
    parts.push(
      `<text x="${labelWidth - 8}" y="${y + barHeight + 5}" text-anchor="end"${weight}>${xml(entry.label + invalid)}</text>`,
    )
    for (const [offset, route, color] of [
      [0, entry.inc, colors.modify],
      [barHeight + 1, entry.read, colors.read],
    ] as const) {
      if (route === undefined) continue
      const w = Math.max(1, x(route.rps) - labelWidth)
      parts.push(
        `<rect x="${labelWidth}" y="${y + offset}" width="${w.toFixed(1)}" height="${barHeight}" fill="${color}"/>`,
        `<text x="${(labelWidth + w + 4).toFixed(1)}" y="${y + offset + barHeight - 2}" font-size="10" fill="#24292f">${xml(fmt.int(route.rps))}</text>`,
      )
    }
  })
  const legendY = height - 10
  let legendX = 12
  for (const [text, color] of [
    ['tessera, modify', COLORS.tessera.modify],
    ['tessera, read', COLORS.tessera.read],
    ['peer, modify', COLORS.peer.modify],
    ['peer, read', COLORS.peer.read],
    ['no sessions, modify', COLORS.ceiling.modify],
    ['no sessions, read', COLORS.ceiling.read],
  ] as const) {
    parts.push(
      `<rect x="${legendX}" y="${legendY - 9}" width="10" height="10" fill="${color}"/>`,
      `<text x="${legendX + 14}" y="${legendY}" fill="#24292f">${xml(text)}</text>`,
    )
    legendX += 20 + text.length * 6.2
  }
  parts.push('</svg>', '')
  return parts.join('\n')
}

/** docs/benchmarks.md, from a full run; `chartPath` is the chart's path relative to docs/. */
export function docsPage(results: BenchResults, chartPath: string, method: string, analysis: string): string {
  const ratios = results.ratios ?? []
  return [
    '# Benchmarks',
    '',
    'tessera against the session libraries people would pick instead, on the same machine, in the same run.',
    'This machine is small and shared (2 cores, other work running beside the bench), so absolute numbers',
    'move from run to run by ±10 % or more: read the **ratios**, which compare runs made minutes apart under',
    'the same conditions. Regenerate everything on this page with `npm run bench` (about 8 minutes;',
    '`npm run bench -- --quick` takes under 2 and writes only `bench/results/latest.*`).',
    '',
    `Run of ${results.date}: ${machineLine(results)}.`,
    '',
    '## Headline: tessera ÷ peer',
    '',
    ...ratioTable(ratios),
    '',
    `![Requests per second per scenario](${chartPath})`,
    '',
    '## HTTP scenarios',
    '',
    `${settingsLine(results)}. "modify" is \`GET /inc\` (load the session, increment a counter, save it), "read" is`,
    '`GET /read` (load it, return the counter). Latencies are computed from every response; *CPU µs/req* is the',
    "server process's CPU time per response, the figure least disturbed by other work on the machine. Memory is",
    "the server's RSS and V8 heap after all rounds. Backend calls per request: for Redis the commands the client",
    "sent (MONITOR), with in parentheses what Redis ran (INFO commandstats, Lua scripts' inner commands included);",
    'for PostgreSQL the statements sent (see Method). Compare rows within a group: the groups ran minutes apart.',
    '',
    ...scenarioTable(results),
    '',
    'Not yet available: ' +
      (results.notYetAvailable.length === 0
        ? 'nothing.'
        : `${results.notYetAvailable.map((entry) => `${entry.label} (${entry.why})`).join('; ')}.`),
    '',
    '## Micro benchmarks',
    '',
    ...microTable(results),
    '',
    '## Memory per session',
    '',
    ...memoryTable(results),
    '',
    ...(results.notes.length > 0
      ? ['## Notes from the run', '', ...results.notes.map((note) => `- ${note}`), '']
      : []),
    analysis,
    '',
    method,
    '',
  ].join('\n')
}
