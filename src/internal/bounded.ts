/**
 * Sets `key` in `map`, first dropping the oldest entry when a new key would take the map past `limit`: the
 * memories of verified tokens, parsed records, opened values and derived keys, oldest out first.
 */
export function setBounded<K, V>(map: Map<K, V>, key: K, value: V, limit: number): void {
  if (map.size >= limit && !map.has(key)) map.delete(map.keys().next().value as K)
  map.set(key, value)
}
