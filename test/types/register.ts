// The one `Register` declaration of this type-test program. Declaration merging is global to a program, so
// every file here (Express, Fastify and Koa read `Register`) sees the same session data type.
import type { AppData } from './helpers.js'

declare module 'tessera' {
  interface Register {
    data: AppData
  }
}
