import { createServer } from 'node:http'
import { createSessionManager } from 'tessera'
import { MemoryStore } from 'tessera/memory'
import { withSession } from 'tessera/node'

const sessions = createSessionManager<{ visits?: number }>({
  store: new MemoryStore(),
  secrets: [process.env.SESSION_SECRET!], // at least 32 random bytes
})

const server = createServer(
  withSession(sessions, (_req, res, session) => {
    const visits = (session.get('visits') ?? 0) + 1
    session.set('visits', visits) // saved before the response goes out
    res.end(`You have been here ${visits} time(s).\n`)
  }),
)
server.listen(Number(process.env.PORT ?? 3000), () => console.log('listening', server.address()))
