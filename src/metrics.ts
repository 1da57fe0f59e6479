/**
 * Session metrics in the Prometheus text format, with no dependency: counters of what the manager did and a
 * histogram of store-call latency, fed by the manager's events. Serve `metrics.render()` at `/metrics`.
 *
 * | metric | type | labels |
 * | --- | --- | --- |
 * | `tessera_sessions_total` | counter | `event`: created, saved, touched, regenerated, logged_in, renewed, destroyed, revoked |
 * | `tessera_sessions_rejected_total` | counter | `reason`: malformed, bad_signature, unknown, expired, garbage, duplicate, invalid |
 * | `tessera_conflicts_total` | counter | |
 * | `tessera_hijack_suspected_total` | counter | `verdict`: allow, reject |
 * | `tessera_store_errors_total` | counter | `operation` |
 * | `tessera_store_duration_seconds` | histogram | `operation`, `outcome`: ok, error |
 *
 * @example
 * const metrics = createMetrics(sessions)
 * app.get('/metrics', (_req, res) => res.type(metrics.contentType).send(metrics.render()))
 *
 * @module
 */
import type { SessionEvents } from './events.js'
import type { SessionManager } from './manager.js'

/** Upper bounds of the latency buckets, in seconds: 0.5 ms to 2.5 s. */
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] as const

interface Histogram {
  counts: number[]
  sum: number
  count: number
}

/** A live view of a manager's metrics. */
export interface SessionMetrics {
  /** The `Content-Type` to serve {@link render} with. */
  readonly contentType: string
  /** Every metric, in the Prometheus text exposition format (version 0.0.4). */
  render(): string
  /** Stops listening to the manager. */
  stop(): void
}

/** Starts counting what `manager` does. */
export function createMetrics(
  manager: SessionManager<object>,
  options: { prefix?: string } = {},
): SessionMetrics {
  const prefix = options.prefix ?? 'tessera_'
  const counters = new Map<string, number>()
  const histograms = new Map<string, Histogram>()
  const count = (key: string) => counters.set(key, (counters.get(key) ?? 0) + 1)

  const lifecycle = [
    'created',
    'saved',
    'touched',
    'regenerated',
    'loggedIn',
    'renewed',
    'revoked',
    'destroyed',
  ] as const
  const stops = [
    ...lifecycle.map((event) => manager.on(event, () => count(`sessions_total{event="${snake(event)}"}`))),
    manager.on('rejected', ({ reason }) => count(`sessions_rejected_total{reason="${snake(reason)}"}`)),
    manager.on('conflict', () => count('conflicts_total')),
    manager.on('hijackSuspected', ({ verdict }) => count(`hijack_suspected_total{verdict="${verdict}"}`)),
    manager.on('storeError', ({ operation }) => count(`store_errors_total{operation="${label(operation)}"}`)),
    manager.on('storeCall', (call: SessionEvents['storeCall']) => {
      const key = `operation="${label(call.operation)}",outcome="${call.ok ? 'ok' : 'error'}"`
      const histogram = histograms.get(key) ?? { counts: BUCKETS.map(() => 0), sum: 0, count: 0 }
      const seconds = call.ms / 1000
      for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) histogram.counts[i]!++
      histogram.sum += seconds
      histogram.count++
      histograms.set(key, histogram)
    }),
  ]

  return {
    contentType: 'text/plain; version=0.0.4; charset=utf-8',
    render() {
      const lines: string[] = []
      const families = new Map<string, string[]>()
      for (const [key, value] of [...counters].sort()) {
        const name = key.split('{')[0]!
        const family = families.get(name) ?? []
        family.push(`${prefix}${key} ${value}`)
        families.set(name, family)
      }
      for (const [name, samples] of families) lines.push(`# TYPE ${prefix}${name} counter`, ...samples)
      if (histograms.size > 0) lines.push(`# TYPE ${prefix}store_duration_seconds histogram`)
      for (const [labels, histogram] of [...histograms].sort()) {
        const name = `${prefix}store_duration_seconds`
        for (const [i, bound] of BUCKETS.entries()) {
          lines.push(`${name}_bucket{${labels},le="${bound}"} ${histogram.counts[i]}`)
        }
        lines.push(`${name}_bucket{${labels},le="+Inf"} ${histogram.count}`)
        lines.push(`${name}_sum{${labels}} ${histogram.sum}`, `${name}_count{${labels}} ${histogram.count}`)
      }
      return `${lines.join('\n')}\n`
    },
    stop() {
      for (const stop of stops) stop()
    },
  }
}

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`).replace(/-/g, '_')
}

// Label values are ours (operation names), but escape them as the format requires anyway.
function label(value: string): string {
  return value.replace(/[\\"\n]/g, (char) => (char === '\n' ? '\\n' : `\\${char}`))
}
