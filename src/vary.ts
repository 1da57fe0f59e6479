// One rule for every adapter: add a header name to a Vary value unless it (or `*`) is already listed.

/** The Vary value with `name` added, or undefined when `current` already covers it. */
export function withVary(current: string, name: string): string | undefined {
  const listed = current.split(',').map((entry) => entry.trim().toLowerCase())
  if (listed.includes('*') || listed.includes(name.toLowerCase())) return undefined
  return current.trim() === '' ? name : `${current}, ${name}`
}
