/**
 * Summarises a V8 CPU profile (from `npm run bench -- --profile=<scenario>`, or any `node --cpu-prof`) as the
 * functions with the most self and inclusive time, named by source file and line.
 *
 *   node bench/profile.ts /tmp/tessera-bench-profiles/CPU.….cpuprofile [filter-regexp]
 *
 * tsx compiles each TypeScript file to one long line, so profile positions are mapped back through tsx's own
 * cache (`$TMPDIR/tsx-<uid>/`, one JSON `{ code, map }` per compiled file): the cache entry whose code has the
 * profiled functions at the profiled columns is taken, and its source map gives the original line.
 * Files compiled by bench/build.ts (or any JavaScript file with a `.map` beside it) are mapped through those
 * source maps (the build folder is kept when the run profiles). Plain JavaScript positions are printed as they are.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { SourceMap } from 'node:module'
import { tmpdir, userInfo } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
  columnNumber: number
}
interface ProfileNode {
  id: number
  callFrame: CallFrame
  children?: number[]
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

const [file, filter] = process.argv.slice(2)
if (file === undefined) {
  console.error('usage: node bench/profile.ts <file.cpuprofile> [filter-regexp]')
  process.exit(1)
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
const ROOT = fileURLToPath(new URL('..', import.meta.url))

// -------------------------------------------------------------------------- mapping through tsx's cache

interface Compiled {
  code: string
  map: SourceMap
}

const cacheDir = join(tmpdir(), `tsx-${userInfo().uid}`)
const cache = new Map<string, Compiled[]>() // source path → compiled versions found in tsx's cache
try {
  for (const name of readdirSync(cacheDir)) {
    try {
      const entry = JSON.parse(readFileSync(join(cacheDir, name), 'utf8')) as {
        code?: string
        map?: { sources?: string[] }
      }
      const source = entry.map?.sources?.[0]
      if (typeof entry.code !== 'string' || source === undefined) continue
      const versions = cache.get(source) ?? []
      versions.push({
        code: entry.code,
        map: new SourceMap(entry.map as ConstructorParameters<typeof SourceMap>[0]),
      })
      cache.set(source, versions)
    } catch {
      // not a transform entry
    }
  }
} catch {
  // no cache: positions stay unmapped
}

// The compiled version whose code names the profiled functions at the profiled columns.
const chosen = new Map<string, Compiled | undefined>()
function versionFor(path: string): Compiled | undefined {
  if (chosen.has(path)) return chosen.get(path)
  const frames = profile.nodes.map((node) => node.callFrame).filter((frame) => frame.url.endsWith(path))
  let best: Compiled | undefined
  let bestScore = -1
  for (const version of cache.get(path) ?? []) {
    const lines = version.code.split('\n')
    let score = 0
    for (const frame of frames) {
      const name = frame.functionName.replace(/^#/, '')
      if (name === '') continue
      const text =
        lines[frame.lineNumber]?.slice(Math.max(0, frame.columnNumber - 40), frame.columnNumber + 40) ?? ''
      if (text.includes(name)) score++
    }
    if (score > bestScore) {
      best = version
      bestScore = score
    }
  }
  chosen.set(path, best)
  return best
}

// Files compiled by bench/build.ts carry a source map beside them.
const jsMaps = new Map<string, SourceMap | undefined>()
function jsMapFor(path: string): SourceMap | undefined {
  if (!jsMaps.has(path)) {
    let map: SourceMap | undefined
    try {
      map = new SourceMap(
        JSON.parse(readFileSync(`${path}.map`, 'utf8')) as ConstructorParameters<typeof SourceMap>[0],
      )
    } catch {
      map = undefined
    }
    jsMaps.set(path, map)
  }
  return jsMaps.get(path)
}

function shorten(path: string): string {
  return path.startsWith(ROOT) ? path.slice(ROOT.length) : path
}

function where(frame: CallFrame): string {
  const url = frame.url
  if (url === '') return frame.functionName === '' ? '(native)' : `(${frame.functionName})`
  const path = url.startsWith('file://') ? fileURLToPath(url) : url
  const short = shorten(path)
  // Any compiled file with a source map beside it (bench/build.ts writes them; so does `esbuild --sourcemap`).
  if ((path.endsWith('.js') || path.endsWith('.mjs')) && jsMapFor(path) !== undefined) {
    const entry = jsMapFor(path)?.findEntry(frame.lineNumber, frame.columnNumber) as
      | { originalLine?: number; originalSource?: string }
      | undefined
    if (entry?.originalLine !== undefined && entry.originalSource !== undefined) {
      const source = entry.originalSource.startsWith('file://')
        ? fileURLToPath(entry.originalSource)
        : resolve(dirname(path), entry.originalSource)
      return `${shorten(source)}:${entry.originalLine + 1}`
    }
  }
  if (path.endsWith('.ts')) {
    const version = versionFor(path)
    const entry = version?.map.findEntry(frame.lineNumber, frame.columnNumber) as
      | { originalLine?: number; originalSource?: string }
      | undefined
    if (entry?.originalLine !== undefined) return `${short}:${entry.originalLine + 1}`
  }
  return `${short}:${frame.lineNumber + 1}`
}

// --------------------------------------------------------------------------------------------- summary

const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const parent = new Map<number, number>()
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
const timeOf = new Map<number, number>()
profile.samples.forEach((id, index) => {
  timeOf.set(id, (timeOf.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0))
})
// Percentages are of the busy time: a bench server idles while the other servers of its group are measured.
const idle = [...timeOf].filter(([id]) => byId.get(id)?.callFrame.functionName === '(idle)')
const total = [...timeOf.values()].reduce((a, b) => a + b, 0) - idle.reduce((sum, [, time]) => sum + time, 0)

const label = (node: ProfileNode) =>
  `${node.callFrame.functionName || '(anonymous)'}  ${where(node.callFrame)}`
const self = new Map<string, number>()
const inclusive = new Map<string, number>()
for (const [id, time] of timeOf) {
  const node = byId.get(id)!
  if (node.callFrame.functionName === '(idle)') continue
  self.set(label(node), (self.get(label(node)) ?? 0) + time)
  const seen = new Set<string>()
  for (let current: number | undefined = id; current !== undefined; current = parent.get(current)) {
    const key = label(byId.get(current)!)
    if (seen.has(key)) continue
    seen.add(key)
    inclusive.set(key, (inclusive.get(key) ?? 0) + time)
  }
}

const pattern = filter === undefined ? undefined : new RegExp(filter)
const show = (title: string, table: Map<string, number>, count: number) => {
  console.log(`\n${title}`)
  for (const [key, time] of [...table]
    .filter(([key]) => pattern === undefined || pattern.test(key))
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)) {
    console.log(`${((100 * time) / total).toFixed(1).padStart(5)}%  ${key}`)
  }
}
console.log(`${file}: ${(total / 1e6).toFixed(2)} s busy (percentages are of that)`)
show('self time', self, 40)
show('inclusive time', inclusive, 50)
