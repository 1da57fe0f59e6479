/**
 * Every process the bench starts goes through here, so that all of them are ended at the end, on an error,
 * on Ctrl-C and when the global time limit fires.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'

export interface Tracked {
  readonly child: ChildProcess
  readonly name: string
  readonly exited: boolean
  /** The output it wrote to stderr (the last 4 KB), for error messages. */
  readonly stderr: () => string
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  kill(graceMs?: number): Promise<void>
  /** Resolves true once it has exited by itself, false if it still runs after `ms`. */
  waitExit(ms: number): Promise<boolean>
}

const live = new Set<Tracked>()

/** Starts a process and keeps track of it until it exits. */
export function spawnTracked(
  command: string,
  args: readonly string[],
  name: string,
  options: { ipc?: boolean; env?: NodeJS.ProcessEnv; echo?: boolean } = {},
): Tracked {
  const child = spawn(command, args, {
    stdio: options.ipc === true ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
    env: options.env ?? process.env,
  })
  let stderr = ''
  let exited = false
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true
      live.delete(tracked)
      resolve()
    })
    // 'error' can come more than once (a spawn failure, a send on a closed channel): never unhandled.
    child.on('error', (error) => {
      stderr += `\n${error.message}`
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) return
      exited = true
      live.delete(tracked)
      resolve()
    })
  })
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4096)
    if (options.echo === true) process.stderr.write(chunk)
  })
  child.stdout?.on('data', (chunk: Buffer) => {
    if (options.echo === true) process.stdout.write(chunk)
  })
  const tracked: Tracked = {
    child,
    name,
    get exited() {
      return exited
    },
    stderr: () => stderr,
    waitExit(ms) {
      if (exited) return Promise.resolve(true)
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), ms)
        void exit.then(() => {
          clearTimeout(timer)
          resolve(true)
        })
      })
    },
    async kill(graceMs = 2000) {
      if (exited) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
      await exit
      clearTimeout(timer)
    },
  }
  live.add(tracked)
  return tracked
}

/** Starts a TypeScript entry of the bench under tsx, with an IPC channel. */
export function spawnNodeScript(
  script: string,
  args: readonly string[],
  name: string,
  nodeFlags: readonly string[] = [],
): Tracked {
  return spawnTracked(process.execPath, [...nodeFlags, '--import', 'tsx', script, ...args], name, {
    ipc: true,
  })
}

/** Ends every process still running, politely first. */
export async function killAll(graceMs = 1500): Promise<void> {
  await Promise.all([...live].map((tracked) => tracked.kill(graceMs)))
}

/** Last resort on exit: SIGKILL whatever is left, synchronously. */
export function killAllNow(): void {
  for (const tracked of live) {
    try {
      tracked.child.kill('SIGKILL')
    } catch {
      // already gone
    }
  }
}

let canPin: boolean | undefined

/** Pins all threads of `pid` to `cpu` with taskset; false when that is not possible here. */
export function pin(pid: number, cpu: number): boolean {
  if (canPin === false) return false
  const result = spawnSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' })
  canPin = result.status === 0
  return canPin
}
