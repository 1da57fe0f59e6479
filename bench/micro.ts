/**
 * Micro benchmarks, in a child process of their own (`node --import tsx bench/micro.ts '{"quick":false}'`):
 * plain loops timed with process.hrtime.bigint, a warm-up, several rounds, the median reported.
 * Sends `{ type: 'micro', results }` over IPC (or prints JSON without a parent).
 */
import { randomUUID } from 'node:crypto'
import { deflateRawSync } from 'node:zlib'
import { COOKIE_NAME, errorMessage, IDLE_MS, SECRET } from './common.js'
import { packageVersion, requireAsExpressSession } from './require.js'

export interface MicroResult {
  readonly group: string
  readonly library: string
  readonly operation: string
  /** Median operations per second over the rounds; undefined when the library part is not available. */
  readonly opsPerSec: number | undefined
  readonly rounds: readonly number[]
  readonly note?: string
}

const options = JSON.parse(process.argv[2] ?? '{}') as { quick?: boolean }

// Session data of about `bytes` bytes of JSON: a user with roles and a cart of items.
function sessionOfSize(bytes: number): Record<string, unknown> {
  const cart: { sku: string; quantity: number; title: string }[] = []
  const data = { userId: 'user-48213', name: 'Ada Lovelace', roles: ['reader'], cart }
  for (let i = 0; JSON.stringify(data).length < bytes - 40; i++) {
    cart.push({ sku: `SKU-${10_000 + i * 37}`, quantity: (i % 3) + 1, title: `Item ${i}` })
  }
  return data
}
const SEALED_PAYLOADS: readonly (readonly [string, Record<string, unknown>])[] = [
  ['100 B', sessionOfSize(100)],
  ['1 KB', sessionOfSize(1_024)],
  ['3 KB', sessionOfSize(3_072)],
]

const WARMUP_MS = options.quick === true ? 60 : 250
const ROUNDS = options.quick === true ? 3 : 5
const ROUND_MS = options.quick === true ? 60 : 150

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

let sink: unknown // keeps results alive so the optimiser cannot drop the work

type Batch = (n: number) => unknown

async function timed(run: Batch, n: number): Promise<number> {
  const start = process.hrtime.bigint()
  sink = await run(n)
  return Number(process.hrtime.bigint() - start) / 1e9
}

// Warm-up doubles the batch until one takes long enough, which also calibrates the batch size of a round.
async function calibrate(run: Batch): Promise<number> {
  let n = 16
  let elapsed = await timed(run, n)
  let warm = elapsed
  while (elapsed < WARMUP_MS / 1000 / 4 || warm < WARMUP_MS / 1000) {
    if (elapsed < WARMUP_MS / 1000 / 4) n *= 2
    elapsed = await timed(run, n)
    warm += elapsed
  }
  return Math.max(1, Math.round((n / elapsed) * (ROUND_MS / 1000)))
}

function loop<T>(operation: () => T): (n: number) => T | undefined {
  return (n) => {
    let last: T | undefined
    for (let i = 0; i < n; i++) last = operation()
    return last
  }
}

function loopAsync<T>(operation: () => Promise<T>): (n: number) => Promise<T | undefined> {
  return async (n) => {
    let last: T | undefined
    for (let i = 0; i < n; i++) last = await operation()
    return last
  }
}

const results: MicroResult[] = []

interface Contender {
  readonly library: string
  readonly operation: string
  /** Undefined when that library's part is not available; `note` says why. */
  readonly make?: (() => Batch | Promise<Batch>) | undefined
  readonly note?: string
}

/**
 * Measures the contenders of one group with their rounds interleaved (A B C, A B C, …), so a change in the
 * machine's background load during the group touches every contender alike. Median of the rounds.
 */
async function group(name: string, contenders: readonly Contender[]): Promise<void> {
  const ready: { contender: Contender; run: Batch; n: number; rounds: number[] }[] = []
  for (const contender of contenders) {
    const { library, operation, note } = contender
    if (contender.make === undefined) {
      results.push({
        group: name,
        library,
        operation,
        opsPerSec: undefined,
        rounds: [],
        ...(note !== undefined && { note }),
      })
      continue
    }
    try {
      const run = await contender.make()
      ready.push({ contender, run, n: await calibrate(run), rounds: [] })
    } catch (error) {
      results.push({
        group: name,
        library,
        operation,
        opsPerSec: undefined,
        rounds: [],
        note: `failed: ${errorMessage(error)}`,
      })
    }
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const entry of ready) entry.rounds.push(entry.n / (await timed(entry.run, entry.n)))
  }
  for (const { contender, rounds } of ready) {
    const { library, operation, note } = contender
    results.push({
      group: name,
      library,
      operation,
      opsPerSec: median(rounds),
      rounds,
      ...(note !== undefined && { note }),
    })
  }
}

async function optionalImport<T>(load: () => Promise<T>): Promise<T | undefined> {
  try {
    return await load()
  } catch {
    return undefined
  }
}

async function main(): Promise<void> {
  const { CookieSigner } = await import('../src/signer.js')
  const { generateSessionId } = await import('../src/index.js')
  const { serializePayload, parsePayload } = await import('../src/payload.js')

  // ------------------------------------------------------------------------------------ sign / verify
  const id = generateSessionId()
  const signer = new CookieSigner([SECRET], COOKIE_NAME)
  const signed = signer.sign(id)
  type CookieSignature = {
    sign(value: string, secret: string): string
    unsign(value: string, secret: string): string | false
  }
  const signature = requireAsExpressSession<CookieSignature>('cookie-signature')
  const label =
    signature === undefined ? 'cookie-signature' : `cookie-signature ${signature.version} (express-session's)`
  const missing = 'not resolvable from express-session'
  // express-session's own session IDs are uid-safe(24): 32 characters.
  const esId = 'aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW'
  const esSigned = signature?.module.sign(esId, SECRET)
  await group('sign', [
    {
      library: 'tessera',
      operation: 'CookieSigner.sign() (HMAC-SHA256)',
      make: () => loop(() => signer.sign(id)),
    },
    {
      library: label,
      operation: 'sign() (HMAC-SHA256)',
      make: signature && (() => loop(() => signature.module.sign(esId, SECRET))),
      ...(signature === undefined && { note: missing }),
    },
  ])
  await group('verify', [
    {
      library: 'tessera',
      operation: 'CookieSigner.unsign() (constant time)',
      make: () => loop(() => signer.unsign(signed)),
    },
    {
      library: label,
      operation: 'unsign() (re-sign, compare SHA-1s)',
      make:
        signature && esSigned !== undefined
          ? () => loop(() => signature.module.unsign(esSigned, SECRET))
          : undefined,
      ...(signature === undefined && { note: missing }),
    },
  ])

  // ---------------------------------------------------------------------------------------------- IDs
  type UidSafe = { sync(bytes: number): string }
  const uid = requireAsExpressSession<UidSafe>('uid-safe')
  await group('id', [
    { library: 'tessera', operation: 'generateSessionId() (256 bits)', make: () => loop(generateSessionId) },
    {
      library: uid === undefined ? 'uid-safe' : `uid-safe ${uid.version} (express-session's)`,
      operation: 'uid.sync(24) (192 bits)',
      make: uid && (() => loop(() => uid.module.sync(24))),
      ...(uid === undefined && { note: missing }),
    },
    {
      library: 'node:crypto',
      operation: 'crypto.randomUUID() (122 bits)',
      make: () => loop(() => randomUUID()),
    },
  ])

  // -------------------------------------------------------------------------------------- seal / unseal
  // The same session data through both libraries, at the three sizes issue #4 names: about 100 B, 1 KB and
  // 3 KB of JSON (a user, roles, a cart that grows).
  const now = Date.now()
  const meta = { createdAt: now, absoluteExpiresAt: now + 12 * 3_600_000 }
  const iron = await optionalImport(() => import('iron-session'))
  const ironLabel = `iron-session ${packageVersion('iron-session')}`
  const ironOptions = { password: SECRET, ttl: IDLE_MS / 1000 }
  const ironNote = iron === undefined ? { note: 'iron-session does not import' } : {}
  const sealer = await optionalImport(() => import('../src/sealer.js'))
  const unavailable = { note: 'not yet available (src/sealer.ts missing or failing to import)' }
  // What the manager seals and opens in stateless mode: `expiresAt.payload`, AES-256-GCM, JSON included.
  const seal = sealer === undefined ? undefined : new sealer.Sealer([SECRET], COOKIE_NAME)
  const open = async (value: string) => {
    const opened = await seal?.open(value)
    if (opened === undefined) throw new Error('did not open')
    return parsePayload(opened.plaintext.slice(opened.plaintext.indexOf('.') + 1), 1 << 20)
  }
  for (const [size, data] of SEALED_PAYLOADS) {
    const plaintext = () => `${now + IDLE_MS}.${serializePayload(meta, data)}`
    const sealed = await seal?.seal(plaintext())
    const ironSealed = iron === undefined ? undefined : await iron.sealData(data, ironOptions)
    await group(`seal ${size}`, [
      {
        library: 'tessera',
        operation: 'Sealer.seal() (AES-256-GCM), JSON included',
        make: seal && (() => loopAsync(() => seal.seal(plaintext()))),
        ...(seal === undefined && unavailable),
      },
      {
        library: ironLabel,
        operation: 'sealData()',
        make: iron && (() => loopAsync(() => iron.sealData(data, ironOptions))),
        ...ironNote,
      },
    ])
    await group(`unseal ${size}`, [
      {
        library: 'tessera',
        operation: 'Sealer.open(), JSON parse included',
        make: sealed === undefined ? undefined : () => loopAsync(() => open(sealed)),
        ...(seal === undefined && unavailable),
      },
      {
        library: ironLabel,
        operation: 'unsealData()',
        make:
          iron && ironSealed !== undefined
            ? () => loopAsync(() => iron.unsealData(ironSealed, ironOptions))
            : undefined,
        ...ironNote,
      },
    ])
    await group(`seal+unseal ${size}`, [
      {
        library: 'tessera',
        operation: 'seal then open',
        make: seal && (() => loopAsync(async () => open(await seal.seal(plaintext())))),
        ...(seal === undefined && unavailable),
      },
      {
        library: ironLabel,
        operation: 'sealData() then unsealData()',
        make:
          iron &&
          (() => loopAsync(async () => iron.unsealData(await iron.sealData(data, ironOptions), ironOptions))),
        ...ironNote,
      },
    ])
    // Compression, which tessera does not offer (CRIME/BREACH: the length of compressed secret-bearing data
    // tells an attacker who controls part of it what the rest is). Measured so the cost of that choice is known.
    const json = plaintext()
    const deflated = deflateRawSync(json)
    // A sealed cookie is `t2.<hour>.` and the base64url of nonce (12 B), ciphertext and tag (16 B).
    const cookieBytes = (plaintextBytes: number) =>
      (sealed?.length ?? 0) -
      Math.ceil(((Buffer.byteLength(json) + 28) * 4) / 3) +
      Math.ceil(((plaintextBytes + 28) * 4) / 3)
    await group(`compression ${size}`, [
      {
        library: 'tessera',
        operation: `seal as shipped: ${json.length} B of JSON, a ${cookieBytes(json.length)} B cookie`,
        make: seal && (() => loopAsync(() => seal.seal(plaintext()))),
        ...(seal === undefined && unavailable),
      },
      {
        library: 'deflate-raw (not offered)',
        operation: `deflate, then seal: ${deflated.length} B compressed, a ${cookieBytes(deflated.length)} B cookie`,
        make: seal && (() => loopAsync(() => seal.seal(deflateRawSync(plaintext()).toString('latin1')))),
        ...(seal === undefined && unavailable),
      },
    ])
  }

  // ------------------------------------------------------------------ the engine alone, no HTTP, no socket
  const { createSessionManager } = await import('../src/index.js')
  const { MemoryStore } = await import('../src/stores/memory.js')
  const request = (cookie: string | undefined) => ({
    cookie,
    host: '127.0.0.1',
    ip: '127.0.0.1',
    encrypted: false,
  })
  // A manager over `store` and the Cookie header of one session holding { counter: 0 } in it.
  const engine = async (store: object) => {
    const manager = createSessionManager<{ counter?: number }>({
      store: store as Parameters<typeof createSessionManager>[0]['store'],
      secrets: [SECRET],
      cookie: { name: COOKIE_NAME, secure: 'auto' },
    })
    const first = await manager.load(request(undefined))
    first.set('counter', 0)
    const cookie = (await manager.commit(first)).setCookie[0]!.split(';', 1)[0]!
    const read = () =>
      loopAsync(async () => {
        const session = await manager.load(request(cookie))
        sink = session.get('counter')
        return manager.commit(session)
      })
    const modify = () =>
      loopAsync(async () => {
        const session = await manager.load(request(cookie))
        session.set('counter', (session.get('counter') ?? 0) + 1)
        return manager.commit(session)
      })
    return { read, modify }
  }
  const memory = await engine(new MemoryStore())
  const cookieModule = await optionalImport(() => import('../src/stores/cookie.js'))
  const stateless = cookieModule === undefined ? undefined : await engine(new cookieModule.CookieStore())
  const noCookieStore = { note: 'not yet available (src/stores/cookie.ts missing or failing to import)' }
  await group('engine', [
    { library: 'tessera', operation: 'load + commit, read-only (MemoryStore)', make: memory.read },
    { library: 'tessera', operation: 'load + set + commit (MemoryStore)', make: memory.modify },
    {
      library: 'tessera',
      operation: 'load + commit, read-only (CookieStore)',
      make: stateless?.read,
      ...(stateless === undefined && noCookieStore),
    },
    {
      library: 'tessera',
      operation: 'load + set + commit (CookieStore)',
      make: stateless?.modify,
      ...(stateless === undefined && noCookieStore),
    },
  ])

  if (process.send !== undefined) process.send({ type: 'micro', results })
  else console.log(JSON.stringify(results, null, 2))
  void sink
}

main().then(
  () => setImmediate(() => process.exit(0)),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  },
)
