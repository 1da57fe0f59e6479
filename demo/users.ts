// The demo's user table. Passwords are stored as scrypt hashes (RFC 7914) with a per-user salt, never in clear.
import { scrypt, timingSafeEqual } from 'node:crypto'
import { promisify } from 'node:util'

const scryptAsync = promisify(scrypt) as (password: string, salt: Buffer, keylen: number) => Promise<Buffer>

interface UserRecord {
  readonly username: string
  readonly salt: string
  readonly hash: string
}

/** The seed's user: rasmus, password "default". */
const USERS: readonly UserRecord[] = [
  { username: 'rasmus', salt: 'ONiJsmhlAQb8DWwyQMHkpQ', hash: 'QxFAld0dWrrdc6VQWBAhJ-esvg32no_jyr65MAzVVgc' },
]

// Checked against when the username is unknown, so a wrong name costs as much time as a wrong password.
const DECOY: UserRecord = {
  username: '',
  salt: 'AAAAAAAAAAAAAAAAAAAAAA',
  hash: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
}

/** The username when the password matches, otherwise undefined. */
export async function verifyPassword(username: string, password: string): Promise<string | undefined> {
  const user = USERS.find((candidate) => candidate.username === username)
  const record = user ?? DECOY
  const expected = Buffer.from(record.hash, 'base64url')
  const actual = await scryptAsync(
    password.slice(0, 1024),
    Buffer.from(record.salt, 'base64url'),
    expected.length,
  )
  return user !== undefined && timingSafeEqual(actual, expected) ? user.username : undefined
}
