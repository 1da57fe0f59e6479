import express from 'express'
import { createSessionManager } from 'tessera'
import { session } from 'tessera/express'
import { SqliteStore } from 'tessera/sqlite'

// Declare the session's data once; req.session is typed everywhere after this.
declare module 'tessera' {
  interface Register {
    data: { userId?: string }
  }
}

const sessions = createSessionManager({
  store: await SqliteStore.open({ path: './data/example-sessions.db' }),
  secrets: [process.env.SESSION_SECRET!],
})

const app = express()
app.use(express.urlencoded({ extended: false }))
app.use(session(sessions))

app.post('/login', async (req, res) => {
  const userId = await checkPassword(req.body.username, req.body.password)
  if (userId === undefined) return void res.status(401).send('Wrong username or password')
  await req.session.regenerate() // new ID on login: defeats session fixation
  req.session.set('userId', userId)
  res.redirect(303, '/profile')
})

app.get('/profile', (req, res) => {
  const userId = req.session.get('userId')
  if (userId === undefined) return void res.status(401).send('Please log in first')
  res.send(`Welcome, ${userId}!`)
})

app.post('/logout', async (req, res) => {
  await req.session.destroy() // deletes it from the store and clears the cookie
  res.redirect(303, '/')
})

async function checkPassword(username: unknown, password: unknown): Promise<string | undefined> {
  // Replace with your user table and a password hash (scrypt, argon2, bcrypt).
  return username === 'rasmus' && password === 'default' ? 'rasmus' : undefined
}

const server = app.listen(Number(process.env.PORT ?? 3000), () => console.log('listening', server.address()))
