import { z } from "npm:zod@4.6.7";
import { HttpError } from "./errors.ts";

export { z };

/** Validates `input` with `schema`; 400 `invalid_request` with zod's issues as details. */
export function parse<Schema extends z.ZodType>(schema: Schema, input: unknown): z.infer<Schema> {
  const result = schema.safeParse(input);
  if (!result.success) {
    const details = result.error.issues.map(({ path, code, message }) => ({
      path: path.join("."),
      code,
      message,
    }));
    throw new HttpError(400, "invalid_request", "The request is not valid.", { details });
  }
  return result.data;
}

const maxJsonbDepth = 32;

/**
 * Whether Postgres' jsonb can hold `value`: JSON.parse accepts what jsonb refuses (\u0000, lone
 * UTF-16 surrogates) and nesting deep enough to overflow its parser (more than 32 levels here).
 * Such input is the client's mistake, a 4xx, not a 500 later.
 */
export function jsonbStorable(value: unknown, depth = 0): boolean {
  if (typeof value === "string") return value.isWellFormed() && !value.includes("\u0000");
  if (value === null || typeof value !== "object") return true;
  if (depth >= maxJsonbDepth) return false;
  if (Array.isArray(value)) return value.every((item) => jsonbStorable(item, depth + 1));
  return Object.entries(value).every(([key, item]) =>
    jsonbStorable(key, depth) && jsonbStorable(item, depth + 1)
  );
}

/**
 * A JSON object passed on as it came (a payload, push data, user_info). z.record rebuilds the
 * object by assignment, which drops a `__proto__` key (it sets the copy's prototype instead):
 * the client's data would lose it on the way to the database and the subscribers.
 */
export function jsonObject() {
  return z.custom<Record<string, unknown>>(
    (value) => typeof value === "object" && value !== null && !Array.isArray(value),
    "Expected an object.",
  );
}

/** A whole-number query parameter within [min, max] (digits only: no sign, exponent or hex). */
export function intParam(min: number, max: number) {
  return z.string()
    .regex(/^\d{1,16}$/, "Expected a whole number.")
    .transform(Number)
    .pipe(z.number().min(min).max(max));
}
