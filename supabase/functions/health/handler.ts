import { db } from "../_shared/db.ts";
import { get, handle } from "../_shared/http.ts";
import { json } from "../_shared/responses.ts";

/**
 * GET /functions/v1/health (with the anon key or any valid token): 200 `{status, db, migration}`
 * with the newest applied migration version (null before the first `db push`), or 503
 * `unavailable` when the database cannot be reached (the shared wrapper maps connection failures).
 */
export const handler = handle(get({ caller: "any_token" }, async () => {
  const sql = db();
  const [{ pushed }] = await sql`
    select to_regclass('supabase_migrations.schema_migrations') is not null as pushed`;
  const migration = pushed
    ? (await sql`select max(version) as version from supabase_migrations.schema_migrations`)[0]
      .version
    : null;
  return json(200, { status: "ok", db: "ok", migration });
}));
