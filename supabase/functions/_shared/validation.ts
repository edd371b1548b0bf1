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
    throw new HttpError(400, "invalid_request", "The request is not valid.", details);
  }
  return result.data;
}

/** The query string as an object (a repeated parameter keeps its last value). */
export function queryOf(req: Request): Record<string, string> {
  return Object.fromEntries(new URL(req.url).searchParams);
}

/** A whole-number query parameter within [min, max] (digits only: no sign, exponent or hex). */
export function intParam(min: number, max: number) {
  return z.string()
    .regex(/^\d{1,16}$/, "Expected a whole number.")
    .transform(Number)
    .pipe(z.number().min(min).max(max));
}
