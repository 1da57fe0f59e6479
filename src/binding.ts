/**
 * Hijack signals: coarse facts about the client recorded at login (browser and OS family, network prefix),
 * compared on later requests. A change is a *signal*, never proof: phones change networks, browsers update.
 * The application decides what a change means; nothing here authenticates anyone.
 *
 * @module
 */

/** What was recorded at login and what this request shows. */
export interface BindingMismatch {
  readonly userId: string
  /** Which facts changed. */
  readonly changed: readonly ('userAgent' | 'ip')[]
  readonly recorded: { readonly userAgent: string | undefined; readonly ip: string | undefined }
  readonly current: { readonly userAgent: string | undefined; readonly ip: string | undefined }
}

/** Options of the manager's `binding`: off unless given. */
export interface BindingOptions {
  /** Compare the browser and OS family (not the version, which auto-updates change). @default true */
  readonly userAgent?: boolean
  /** Compare the network: IPv4 /24, IPv6 /48. Mobile users change networks often. @default false */
  readonly ipPrefix?: boolean
  /** Decide: `'allow'` the request, or `'reject'` it (the request gets a fresh, anonymous session). */
  readonly onMismatch: (mismatch: BindingMismatch) => 'allow' | 'reject' | Promise<'allow' | 'reject'>
}

const BROWSERS: readonly [string, RegExp][] = [
  ['Edge', /Edg(e|A|iOS)?\//],
  ['Opera', /OPR\/|Opera/],
  ['Samsung Internet', /SamsungBrowser\//],
  ['Firefox', /Firefox\/|FxiOS\//],
  ['Chrome', /Chrome\/|CriOS\//],
  ['Safari', /Version\/[\d.]+.*Safari\//],
]
const SYSTEMS: readonly [string, RegExp][] = [
  ['Android', /Android/],
  ['iOS', /iPhone|iPad|iPod/],
  ['Windows', /Windows/],
  ['macOS', /Mac OS X|Macintosh/],
  ['ChromeOS', /CrOS/],
  ['Linux', /Linux/],
]

/** "Firefox on Linux": the browser and OS family of a User-Agent, or 'other'. */
export function userAgentFamily(userAgent: string | undefined): string {
  if (userAgent === undefined) return 'none'
  const browser = BROWSERS.find(([, pattern]) => pattern.test(userAgent))?.[0] ?? 'other'
  const system = SYSTEMS.find(([, pattern]) => pattern.test(userAgent))?.[0] ?? 'other'
  return `${browser} on ${system}`
}

/** The network an address belongs to: IPv4 /24, IPv6 /48 (IPv4-mapped IPv6 counts as IPv4). */
export function networkPrefix(ip: string | undefined): string {
  if (ip === undefined) return 'none'
  const v4 = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.\d{1,3}$/i.exec(ip)
  if (v4 !== null) return `${v4[1]}.${v4[2]}.${v4[3]}.0/24`
  const groups = expandIpv6(ip)
  return groups === undefined ? ip : `${groups.slice(0, 3).join(':')}::/48`
}

function expandIpv6(ip: string): string[] | undefined {
  const [head = '', tail] = ip.split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  const missing = 8 - left.length - right.length
  if (missing < 0 || (tail === undefined && missing !== 0)) return undefined
  const groups = [...left, ...Array.from({ length: missing }, () => '0'), ...right]
  return groups.every((group) => /^[0-9a-f]{1,4}$/i.test(group))
    ? groups.map((g) => g.toLowerCase())
    : undefined
}

/** The facts that changed between what was recorded and what the request shows, per `options`. */
export function bindingChanges(
  options: BindingOptions,
  recorded: { readonly userAgent?: string | undefined; readonly ip?: string | undefined },
  current: { readonly userAgent?: string | undefined; readonly ip?: string | undefined },
): ('userAgent' | 'ip')[] {
  const changed: ('userAgent' | 'ip')[] = []
  if (
    (options.userAgent ?? true) &&
    userAgentFamily(recorded.userAgent) !== userAgentFamily(current.userAgent)
  ) {
    changed.push('userAgent')
  }
  if (options.ipPrefix === true && networkPrefix(recorded.ip) !== networkPrefix(current.ip))
    changed.push('ip')
  return changed
}
