// Starts a throwaway Redis Cluster from the local redis-server for tests, and stops it without leftovers.

import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** A running test cluster. */
export interface TestCluster {
  /** One address per master, as `{ host, port }` (what ioredis's `Cluster` takes). */
  readonly nodes: ReadonlyArray<{ host: string; port: number }>
  /** Stops every server (SIGTERM, then SIGKILL after 5 s), waits for them to exit and removes their files. */
  stop(): Promise<void>
}

/** True when `redis-server` and `redis-cli` can be run (version 7 or later: the cluster bus port is set explicitly). */
export function redisServerAvailable(): boolean {
  const server = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
  const cli = spawnSync('redis-cli', ['--version'], { encoding: 'utf8' })
  const major = Number(/v=(\d+)\./.exec(server.stdout ?? '')?.[1])
  return server.status === 0 && cli.status === 0 && major >= 7
}

/**
 * Starts `masters` redis-server processes on free loopback ports, joins them with `redis-cli --cluster
 * create`, and resolves once every node reports `cluster_state:ok`. Nothing is persisted; the working files
 * live in a temporary directory that {@link TestCluster.stop} removes.
 */
export async function startRedisCluster(options: { masters?: number } = {}): Promise<TestCluster> {
  const masters = options.masters ?? 3
  const dir = await mkdtemp(join(tmpdir(), 'tessera-redis-cluster-'))
  const children: ChildProcess[] = []
  // If the test process dies without running its `after` hooks, take the servers down with it.
  const killAll = () => {
    for (const child of children) child.kill('SIGKILL')
  }
  process.once('exit', killAll)

  const stop = async () => {
    process.removeListener('exit', killAll)
    await Promise.all(children.map(terminate))
    await rm(dir, { recursive: true, force: true })
  }

  try {
    // Client and bus ports are both chosen here: the default bus port (port + 10000) may be taken or > 65535.
    const ports = await freePorts(masters * 2)
    const nodes = ports.slice(0, masters).map((port) => ({ host: '127.0.0.1', port }))
    for (const [i, { port }] of nodes.entries()) {
      const config = {
        port: String(port),
        'cluster-port': String(ports[masters + i]),
        bind: '127.0.0.1',
        'cluster-enabled': 'yes',
        'cluster-config-file': join(dir, `nodes-${port}.conf`),
        'cluster-node-timeout': '5000',
        save: '',
        appendonly: 'no',
        dir,
        logfile: join(dir, `redis-${port}.log`),
      }
      const args = Object.entries(config).flatMap(([name, value]) => [`--${name}`, value])
      const child = spawn('redis-server', args, { stdio: 'ignore' })
      child.once('error', () => undefined) // a failed spawn shows up below as a node that never answers
      children.push(child)
    }
    for (const [i, { port }] of nodes.entries()) {
      await waitFor(async () => {
        if (children[i]!.exitCode !== null) {
          const log = await readFile(join(dir, `redis-${port}.log`), 'utf8').catch(() => '(no log)')
          throw new Error(`redis-server on port ${port} exited:\n${log.slice(-2000)}`)
        }
        return (await cli(port, 'PING')) === 'PONG'
      }, `node ${port}`)
    }
    await run(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...nodes.map(({ host, port }) => `${host}:${port}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      { timeout: 20_000 },
    )
    for (const { port } of nodes) {
      await waitFor(
        async () => (await cli(port, 'CLUSTER', 'INFO')).includes('cluster_state:ok'),
        `node ${port}`,
      )
    }
    return { nodes, stop }
  } catch (error) {
    await stop()
    throw error
  }
}

async function cli(port: number, ...command: string[]): Promise<string> {
  try {
    const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...command], {
      timeout: 2000,
    })
    return stdout.trim()
  } catch {
    return ''
  }
}

async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Redis Cluster: ${what} not ready after 15 s`)
    await sleep(50)
  }
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

/** `count` distinct loopback ports that were free a moment ago (all held at once, then released). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, async () => {
      const server = createServer()
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(0, '127.0.0.1', resolve)
      })
      return server
    }),
  )
  const ports = servers.map((server) => (server.address() as { port: number }).port)
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
  return ports
}
