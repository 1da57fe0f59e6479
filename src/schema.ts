/**
 * Validation of session data on load against any Standard Schema validator (zod, valibot, arktype…: the
 * common `~standard` interface, https://standardschema.dev), with no dependency on any of them. Data that
 * fails (say, after a deploy changed its shape) is migrated by your function or dropped to a fresh session;
 * it is never passed on as the wrong type.
 *
 * @module
 */

/** The Standard Schema v1 interface, as every compliant validator exposes it. */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  readonly '~standard': {
    readonly version: 1
    readonly vendor: string
    readonly validate: (value: unknown) => StandardResult<Output> | Promise<StandardResult<Output>>
    readonly types?: { readonly input: Input; readonly output: Output } | undefined
  }
}

export type StandardResult<Output> =
  | { readonly value: Output; readonly issues?: undefined }
  | { readonly issues: readonly StandardIssue[] }

export interface StandardIssue {
  readonly message: string
  readonly path?: readonly (PropertyKey | { readonly key: PropertyKey })[] | undefined
}

/**
 * Turns data that failed validation into data that may pass (it is validated again), or undefined to drop
 * the session. Receives the stored data and what the validator said.
 */
export type SessionMigration = (data: Record<string, unknown>, issues: readonly StandardIssue[]) => unknown

/** The validated (possibly migrated) data, or undefined when the session must be dropped. */
export async function validateSessionData(
  schema: StandardSchemaV1,
  migrate: SessionMigration | undefined,
  data: Record<string, unknown>,
): Promise<Record<string, unknown> | undefined> {
  const first = await schema['~standard'].validate(data)
  if (first.issues === undefined) return asRecord(first.value)
  if (migrate === undefined) return undefined
  const migrated = migrate(data, first.issues)
  if (migrated === undefined) return undefined
  const second = await schema['~standard'].validate(migrated)
  return second.issues === undefined ? asRecord(second.value) : undefined
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined
}
