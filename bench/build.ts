/**
 * Compiles the working tree (src/ and the bench's child entries) to plain JavaScript in a temporary folder,
 * with esbuild (tsx's own compiler), before the children start.
 *
 * Why not run the children under tsx as well: tsx always compiles with esbuild's `keepNames`, which wraps
 * every named function created at run time in `__name(fn, "name")`, an `Object.defineProperty` call. Code that
 * makes named closures per request (tessera's node adapter does) then pays for it on every request, while the
 * peers, shipped as JavaScript, do not. Compiled without `keepNames`, tessera runs as its users run `dist/`.
 * `--tsx` runs the children under tsx anyway.
 */
import { mkdirSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'

/** Where the compiled tree is, and how to start one of the bench's entries from it. */
export interface Compiled {
  readonly dir: string
  /** The compiled entry for `bench/<name>.ts`. */
  entry(name: string): string
  remove(): void
}

function typescriptFiles(dir: string, into: string[]): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) typescriptFiles(path, into)
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts')) into.push(path)
  }
  return into
}

/** Compiles `root`'s src/ and bench/ into a fresh temporary folder that sees `root`'s node_modules. */
export async function compileTree(root: string): Promise<Compiled> {
  const { build, stop } = await import('esbuild')
  const dir = join(tmpdir(), `tessera-bench-build-${process.pid}`)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  // ESM like the project, and the project's packages resolvable from the compiled files.
  writeFileSync(join(dir, 'package.json'), '{ "type": "module", "private": true }\n')
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir')
  const files = typescriptFiles(join(root, 'src'), typescriptFiles(join(root, 'bench'), []))
  await build({
    entryPoints: files,
    outdir: dir,
    outbase: root,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: 'external', // bench/profile.ts maps profiles through these
    logLevel: 'silent',
  }).finally(() => stop()) // ends esbuild's service process
  return {
    dir,
    entry: (name) => join(dir, relative(root, join(root, 'bench', `${name}.js`))),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  }
}
