// Fails when a subpath in package.json#exports has no built module or no type declarations, when a command in
// package.json#bin is not built or does not run, or when a subpath named in the README is missing from exports
// (a user would hit ERR_PACKAGE_PATH_NOT_EXPORTED).
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'

const pkg = JSON.parse(readFileSync('package.json', 'utf8'))
const problems = []
for (const [subpath, target] of Object.entries(pkg.exports)) {
  if (typeof target === 'string') continue
  for (const file of [target.types, target.default]) {
    if (!existsSync(file)) problems.push(`${subpath}: ${file} does not exist (run npm run build)`)
  }
  const specifier = subpath === '.' ? pkg.name : `${pkg.name}/${subpath.slice(2)}`
  try {
    await import(specifier)
  } catch (error) {
    problems.push(`${specifier}: import failed: ${error.message}`)
  }
}
// Every command in package.json#bin must be built, start with a shebang, and run (`npx tessera --help`).
for (const [name, file] of Object.entries(pkg.bin ?? {})) {
  if (!existsSync(file)) {
    problems.push(`bin ${name}: ${file} does not exist (run npm run build)`)
    continue
  }
  if (!readFileSync(file, 'utf8').startsWith('#!/usr/bin/env node\n'))
    problems.push(`bin ${name}: ${file} does not start with #!/usr/bin/env node`)
  const help = spawnSync(process.execPath, [file, '--help'], { encoding: 'utf8', timeout: 10_000 })
  if (help.status !== 0 || !help.stdout.includes(`Usage: ${name}`))
    problems.push(`bin ${name}: ${file} --help failed (exit ${help.status}): ${help.stderr}`)
}
const readme = readFileSync('README.md', 'utf8')
for (const [, subpath] of readme.matchAll(/from '(tessera(?:\/[a-z-]+)?)'/g)) {
  const key = subpath === pkg.name ? '.' : `./${subpath.slice(pkg.name.length + 1)}`
  if (!(key in pkg.exports))
    problems.push(`README imports ${subpath}, which package.json#exports does not list`)
}
if (problems.length > 0) {
  console.error(problems.join('\n'))
  process.exit(1)
}
console.log(
  `exports: ${Object.keys(pkg.exports).length} subpaths resolve, with types; bin: ${Object.keys(pkg.bin ?? {}).length} command(s) run`,
)
