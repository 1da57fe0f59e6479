// Type-level assertions for the type tests in this folder. These files are compiled by
// `tsc -p tsconfig.types.json` (part of `npm run typecheck`) and never run: a wrong type is a compile error.

/** True only when A and B are the same type (not merely assignable either way; `any` equals only `any`). */
export type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false

/** Compiles only when `T` is `true`: `expectType<Equal<typeof x, number | undefined>>()`. */
export function expectType<_T extends true>(): void {}

/** The session data every adapter test declares in tessera's `Register` (see register.ts). */
export type AppData = {
  userId?: string
  visits?: number
  cart?: { sku: string; quantity: number }[]
}
