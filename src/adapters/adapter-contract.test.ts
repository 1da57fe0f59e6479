// The shared adapter contract against the Foundation adapters: node:http (withSession), Express 5 and 4.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import express, { type NextFunction, type Request, type Response } from 'express'
import express4 from 'express4'
import { contractRoutes, findRoute, runAdapterContract, writeNodeReply } from '../testing/adapter-contract.js'
import { session } from './express.js'
import { withSession } from './node.js'

async function listen(server: Server): Promise<{ origin: string; close(): Promise<void> }> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

runAdapterContract({
  name: 'node:http withSession',
  start: async (manager) =>
    listen(
      createServer(
        withSession(manager, async (req, res, current) => {
          const route = findRoute(req.method, req.url)
          if (route === undefined) res.writeHead(404).end()
          else await writeNodeReply(res, await route.handle(current))
        }),
      ),
    ),
})

for (const [name, framework] of [
  ['Express 5', express],
  ['Express 4', express4],
] as const) {
  runAdapterContract({
    name,
    start: async (manager) => {
      const app = framework()
      app.use(session(manager))
      for (const route of contractRoutes) {
        app[route.method === 'GET' ? 'get' : 'post'](route.path, async (req, res) => {
          await writeNodeReply(res, await route.handle(req.session))
        })
      }
      app.use((error: { status?: number }, _req: Request, res: Response, _next: NextFunction) => {
        res.status(error.status ?? 500).send('handled by the Express error handler')
      })
      return listen(createServer(app))
    },
  })
}
