// Fails when a subpath in package.json#exports has no built module or no type declarations, or when a
// subpath named in the README is missing from exports (a user would hit ERR_PACKAGE_PATH_NOT_EXPORTED).
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
console.log(`exports: ${Object.keys(pkg.exports).length} subpaths resolve, with types`)
