import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { setBounded } from './bounded.js'

describe('setBounded', () => {
  it('drops the oldest entry for a new key past the limit, and none when a held key is set again', () => {
    const map = new Map<string, number>()
    for (const key of ['a', 'b', 'c']) setBounded(map, key, 1, 3)
    setBounded(map, 'b', 2, 3)
    assert.deepEqual(
      [...map],
      [
        ['a', 1],
        ['b', 2],
        ['c', 1],
      ],
    )
    setBounded(map, 'd', 1, 3)
    assert.deepEqual([...map.keys()], ['b', 'c', 'd'])
  })
})
