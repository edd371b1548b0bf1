// Private-channel authorization exactly as Supabase Realtime runs it against the project
// database (reference/realtime.md §2): RLS on realtime.messages decides, probed with rows that
// are always rolled back. Read (SELECT) at join and on a token refresh; write (INSERT) lazily at
// the first broadcast or presence track.
import type postgres from "npm:postgres@3.4.9";
import type { Claims } from "../../supabase/functions/_shared/auth.ts";

export type Extension = "broadcast" | "presence";

export interface AuthorizationContext {
  /** The sub-topic: the channel name without `realtime:`. */
  topic: string;
  claims: Claims;
  /** On a WebSocket, the `x-*` headers of the upgrade request; on REST, every header. */
  headers: Record<string, string>;
}

/**
 * The request headers RLS sees as `request.headers` (those `keep` accepts), with
 * `x-forwarded-proto: https` unless the request says otherwise, as the platform's proxy (and the
 * local gateway, for functions) adds it.
 */
export function headersForRls(
  req: Request,
  keep: (name: string) => boolean = () => true,
): Record<string, string> {
  return {
    "x-forwarded-proto": "https",
    ...Object.fromEntries([...req.headers].filter(([name]) => keep(name))),
  };
}

/** Which extensions the check covers and what it found for each. */
export type Grants = Partial<Record<Extension, boolean>>;

// Thrown to end the transaction with a rollback once the answer is in hand.
class Rollback extends Error {}

async function rolledBack<T>(
  sql: postgres.Sql,
  work: (tx: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  let result: T;
  try {
    await sql.begin(async (tx) => {
      result = await work(tx);
      throw new Rollback();
    });
  } catch (error) {
    if (!(error instanceof Rollback)) throw error;
  }
  return result!;
}

// Realtime's set_conn_config: every setting transaction-local, role last to take effect.
function setConnConfig(
  tx: postgres.TransactionSql,
  { topic, claims, headers }: AuthorizationContext,
) {
  return tx`select set_config('role', ${claims.role}, true),
                   set_config('realtime.topic', ${topic}, true),
                   set_config('request.jwt.claims', ${JSON.stringify(claims)}, true),
                   set_config('request.jwt.claim.sub', ${claims.sub ?? ""}, true),
                   set_config('request.jwt.claim.role', ${claims.role}, true),
                   set_config('request.headers', ${JSON.stringify(headers)}, true)`;
}

/**
 * The read check: one probe row per extension inserted as the server's own user (so INSERT
 * policies do not apply), then the caller's role and claims, then a SELECT of the probes that
 * RLS filters. A probe that stays visible grants read on its extension.
 */
export function readGrants(
  sql: postgres.Sql,
  context: AuthorizationContext,
  extensions: Extension[],
): Promise<Grants> {
  const probes = extensions.map((extension) => ({ id: crypto.randomUUID(), extension }));
  return rolledBack(sql, async (tx) => {
    await tx`insert into realtime.messages (id, topic, extension, inserted_at, updated_at)
             select probe.id, ${context.topic}, probe.extension,
                    now() at time zone 'utc', now() at time zone 'utc'
             from unnest(${probes.map((p) => p.id)}::uuid[],
                         ${probes.map((p) => p.extension)}::text[]) as probe(id, extension)`;
    await setConnConfig(tx, context);
    const visible = await tx`select m.id from realtime.messages m
                             where m.id in ${tx(probes.map((p) => p.id))}`;
    const seen = new Set(visible.map((row) => row.id as string));
    return Object.fromEntries(probes.map((p) => [p.extension, seen.has(p.id)]));
  });
}

/**
 * The write check: as the caller, try one INSERT per extension, each in a savepoint. Success
 * grants write; an RLS refusal (42501) denies it; any other error fails the check.
 */
export function writeGrants(
  sql: postgres.Sql,
  context: AuthorizationContext,
  extensions: Extension[],
): Promise<Grants> {
  return rolledBack(sql, async (tx) => {
    await setConnConfig(tx, context);
    const grants: Grants = {};
    for (const extension of extensions) {
      try {
        await tx.savepoint((sp) =>
          sp`insert into realtime.messages (topic, extension, inserted_at, updated_at)
             values (${context.topic}, ${extension},
                     now() at time zone 'utc', now() at time zone 'utc')`
        );
        grants[extension] = true;
      } catch (error) {
        if ((error as { code?: string }).code !== "42501") throw error;
        grants[extension] = false;
      }
    }
    return grants;
  });
}
