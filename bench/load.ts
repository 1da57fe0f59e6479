/**
 * The load side: sessions created by real logins, a check that each library really finds them again, and
 * autocannon runs that cycle through the cookies (one request, one session; never one cookie for all).
 */
import { randomBytes } from 'node:crypto'
import { Agent, request } from 'node:http'
import { COOKIE_NAME } from './common.js'
import { requirePackage } from './require.js'

interface HttpResponse {
  readonly status: number
  readonly body: string
  readonly setCookie: readonly string[]
}

function get(agent: Agent, port: number, path: string, cookie?: string): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        agent,
        headers: cookie === undefined ? {} : { cookie },
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            setCookie: res.headers['set-cookie'] ?? [],
          }),
        )
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)))
    req.on('error', reject)
    req.end()
  })
}

// The `name=value` pairs of Set-Cookie headers, as a Cookie request header (cleared cookies left out).
function cookieHeader(setCookie: readonly string[]): string | undefined {
  const pairs = setCookie
    .map((line) => line.split(';', 1)[0]!.trim())
    .filter((pair) => pair.includes('=') && !pair.endsWith('='))
  return pairs.length === 0 ? undefined : pairs.join('; ')
}

/** A cookie of the size a signed session cookie has, for the servers that keep no session. */
function syntheticCookie(): string {
  return `${COOKIE_NAME}=${randomBytes(32).toString('base64url')}.${randomBytes(32).toString('base64url')}`
}

/**
 * Logs in `count` times (16 at a time) and returns one Cookie header per session. For the servers without
 * sessions, returns as many made-up cookies of the same size, so every scenario sends the same bytes.
 */
export async function createSessions(port: number, count: number, sessions: boolean): Promise<string[]> {
  if (!sessions) return Array.from({ length: count }, syntheticCookie)
  const agent = new Agent({ keepAlive: true, maxSockets: 16 })
  const cookies: string[] = new Array(count)
  let next = 0
  const worker = async () => {
    while (next < count) {
      const index = next++
      const response = await get(agent, port, '/login')
      const cookie = cookieHeader(response.setCookie)
      if (response.status !== 200 || cookie === undefined) {
        throw new Error(
          `login answered ${response.status} without a session cookie: ${response.body.slice(0, 200)}`,
        )
      }
      cookies[index] = cookie
    }
  }
  try {
    await Promise.all(Array.from({ length: 16 }, worker))
  } finally {
    agent.destroy()
  }
  return cookies
}

/**
 * Proves the server finds a session again: /inc twice then /read with the cookie the server last sent (a
 * stateless session's new cookie, or the same one). Throws with what went wrong. Uses the last cookie of
 * the list, so the measured runs start from untouched sessions.
 */
export async function checkSessions(
  port: number,
  cookies: readonly string[],
  sessions: boolean,
): Promise<void> {
  if (!sessions) return
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  try {
    let cookie = cookies[cookies.length - 1]!
    for (const [path, expected] of [
      ['/read', '0'],
      ['/inc', '1'],
      ['/inc', '2'],
      ['/read', '2'],
    ] as const) {
      const response = await get(agent, port, path, cookie)
      if (response.status !== 200 || response.body !== expected) {
        throw new Error(
          `session check: GET ${path} answered ${response.status} ${JSON.stringify(response.body.slice(0, 100))}, expected 200 "${expected}"`,
        )
      }
      cookie = cookieHeader(response.setCookie) ?? cookie
    }
    const missing = await get(agent, port, '/read')
    if (missing.status !== 401)
      throw new Error(`session check: /read without a cookie answered ${missing.status}`)
  } finally {
    agent.destroy()
  }
}

// ------------------------------------------------------------------------------------------- autocannon

interface AutocannonRequest {
  method?: string
  path?: string
  headers?: Record<string, string>
  setupRequest?: (request: AutocannonRequest) => AutocannonRequest
}

interface AutocannonResult {
  readonly errors: number
  readonly timeouts: number
  readonly non2xx: number
  readonly mismatches: number
  readonly '2xx': number
  readonly statusCodeStats?: Record<string, { count: number }>
  readonly requests: { readonly average: number; readonly total: number }
  readonly latency: { readonly p50: number; readonly p99: number }
}

interface AutocannonInstance {
  on(event: 'response', listener: (client: unknown, status: number, bytes: number, ms: number) => void): void
  stop(): void
}

type Autocannon = (
  options: {
    url: string
    connections: number
    duration: number
    pipelining: number
    timeout: number
    requests: AutocannonRequest[]
  },
  done: (error: Error | null, result: AutocannonResult) => void,
) => AutocannonInstance

const autocannon = requirePackage<Autocannon>('autocannon')

/** What one run measured. Latencies in milliseconds, computed from every response (µs precision). */
export interface LoadResult {
  readonly requests: number
  readonly seconds: number
  readonly rps: number
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly errors: number
  readonly timeouts: number
  readonly non2xx: number
  readonly statusCodes: Record<string, number>
  /** Every response time of the run, sorted (ms). Not written to the JSON. */
  readonly latencies: Float64Array
}

/** The q-quantile (0…1) of sorted values. */
export function quantile(sorted: Float64Array, q: number): number {
  return sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}

/** Every running autocannon, so a global timeout can stop them. */
const running = new Set<AutocannonInstance>()

export function stopAllLoad(): void {
  for (const instance of running) instance.stop()
  running.clear()
}

/**
 * Runs autocannon against `path` for `seconds`, each request carrying the next cookie of `cookies` (round
 * robin over all connections, so two requests in flight never share a session while cookies ≫ connections).
 */
export function runLoad(options: {
  port: number
  path: string
  cookies: readonly string[]
  connections: number
  seconds: number
}): Promise<LoadResult> {
  const { cookies } = options
  let next = 0
  // autocannon's own histogram keeps whole milliseconds; this keeps every response time as measured.
  let latencies = new Float64Array(1 << 16)
  let count = 0
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint()
    const instance = autocannon(
      {
        url: `http://127.0.0.1:${options.port}`,
        connections: options.connections,
        duration: options.seconds,
        pipelining: 1,
        timeout: 10,
        requests: [
          {
            method: 'GET',
            path: options.path,
            setupRequest: (req) => {
              req.headers = { ...req.headers, cookie: cookies[next++ % cookies.length]! }
              return req
            },
          },
        ],
      },
      (error, result) => {
        running.delete(instance)
        if (error !== null) {
          reject(error)
          return
        }
        const seconds = Number(process.hrtime.bigint() - started) / 1e9
        const sorted = latencies.slice(0, count).sort()
        const at = (q: number) => quantile(sorted, q)
        const statusCodes: Record<string, number> = {}
        for (const [code, { count: n }] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = n
        resolve({
          requests: result['2xx'],
          seconds,
          rps: result['2xx'] / seconds,
          p50: at(0.5),
          p99: at(0.99),
          max: at(1),
          errors: result.errors + result.mismatches,
          timeouts: result.timeouts,
          non2xx: result.non2xx,
          statusCodes,
          latencies: sorted,
        })
      },
    )
    running.add(instance)
    instance.on('response', (_client, _status, _bytes, ms) => {
      if (count === latencies.length) {
        const grown = new Float64Array(latencies.length * 2)
        grown.set(latencies)
        latencies = grown
      }
      latencies[count++] = ms
    })
  })
}
