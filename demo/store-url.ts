// Opens the store named by a URL: `memory:` or `sqlite:<path>`.
import type { Store } from 'tessera'
import { MemoryStore } from 'tessera/memory'
import { SqliteStore } from 'tessera/sqlite'

export async function openStore(url: string): Promise<Store> {
  const colon = url.indexOf(':')
  const scheme = colon === -1 ? url : url.slice(0, colon)
  const rest = colon === -1 ? '' : url.slice(colon + 1)
  switch (scheme) {
    case 'memory':
      return new MemoryStore()
    case 'sqlite':
      if (rest === '') throw new Error('sqlite: needs a file path, e.g. sqlite:./data/sessions.db')
      return SqliteStore.open({ path: rest.replace(/^\/\/(?=\/)/, '') })
    default:
      throw new Error(`unknown store ${JSON.stringify(url)}: use memory: or sqlite:<path>`)
  }
}
