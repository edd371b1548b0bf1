// What the local Auth stand-in keeps, in the tables Supabase Auth keeps it in: users in
// auth.users (passwords hashed with bcrypt by pgcrypto, as GoTrue's bcrypt hashes look), sessions
// in auth.sessions, each with its refresh tokens in auth.refresh_tokens and how it was signed in
// (auth.mfa_amr_claims, the `amr` claim).
import type postgres from "npm:postgres@3.4.9";
import { type AmrEntry, newRefreshToken } from "./tokens.ts";

/** An auth.users row, as the stand-in reads it. */
export interface UserRow {
  id: string;
  aud: string | null;
  role: string | null;
  email: string | null;
  email_confirmed_at: Date | null;
  phone: string | null;
  phone_confirmed_at: Date | null;
  last_sign_in_at: Date | null;
  raw_app_meta_data: Record<string, unknown> | null;
  raw_user_meta_data: Record<string, unknown> | null;
  created_at: Date | null;
  updated_at: Date | null;
  is_anonymous: boolean;
}

/** A signed-in session: its user, id, current refresh token and `amr`. */
export interface SessionGrant {
  user: UserRow;
  sessionId: string;
  refreshToken: string;
  amr: AmrEntry[];
}

export type RefreshOutcome =
  | { granted: SessionGrant }
  | { refused: "refresh_token_not_found" | "refresh_token_already_used" };

export type LogoutScope = "global" | "local" | "others";

// GoTrue's single instance.
const instanceId = "00000000-0000-0000-0000-000000000000";
// GoTrue hashes with Go's bcrypt default cost.
const bcryptCost = 10;

const userColumns = (sql: postgres.Sql | postgres.TransactionSql) =>
  sql`u.id, u.aud, u.role, u.email, u.email_confirmed_at, u.phone, u.phone_confirmed_at,
      u.last_sign_in_at, u.raw_app_meta_data, u.raw_user_meta_data, u.created_at, u.updated_at,
      u.is_anonymous`;

export class AuthStore {
  constructor(readonly sql: postgres.Sql) {}

  /** Creates a confirmed user with `email` and `password` and signs them in; undefined when
   * the address is taken. */
  signUp(
    email: string,
    password: string,
    data: Record<string, unknown>,
  ): Promise<SessionGrant | undefined> {
    return this.sql.begin(async (tx) => {
      const [user] = await tx<UserRow[]>`
        insert into auth.users as u (instance_id, id, aud, role, email, encrypted_password,
          email_confirmed_at, last_sign_in_at, raw_app_meta_data, raw_user_meta_data, created_at,
          updated_at, is_anonymous)
        select ${instanceId}, gen_random_uuid(), 'authenticated', 'authenticated', ${email},
          extensions.crypt(${password}, extensions.gen_salt('bf', ${bcryptCost})), now(), now(),
          ${tx.json({ provider: "email", providers: ["email"] })}, ${tx.json(data as never)},
          now(), now(), false
        where not exists (select from auth.users where lower(email) = ${email}
                                                   and is_sso_user = false)
        on conflict (email) where (is_sso_user = false) do nothing
        returning ${userColumns(tx)}`;
      if (!user) return undefined;
      return await startSession(tx, user, "password");
    });
  }

  /** Creates an anonymous user and signs them in. */
  signUpAnonymously(data: Record<string, unknown>): Promise<SessionGrant> {
    return this.sql.begin(async (tx) => {
      const [user] = await tx<UserRow[]>`
        insert into auth.users as u (instance_id, id, aud, role, last_sign_in_at,
          raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_anonymous)
        values (${instanceId}, gen_random_uuid(), 'authenticated', 'authenticated', now(),
          '{}', ${tx.json(data as never)}, now(), now(), true)
        returning ${userColumns(tx)}`;
      return await startSession(tx, user, "anonymous");
    });
  }

  /** The user with `email` (any case) and whether `password` is theirs; a user without a
   * password never matches. */
  async findByPassword(
    email: string,
    password: string,
  ): Promise<{ user: UserRow; passwordMatches: boolean } | undefined> {
    const [found] = await this.sql<(UserRow & { password_matches: boolean })[]>`
      select ${userColumns(this.sql)},
             coalesce(u.encrypted_password like '$2_$%'
                      and u.encrypted_password = extensions.crypt(${password}, u.encrypted_password),
                      false) as password_matches
      from auth.users u
      where lower(u.email) = ${email} and u.is_sso_user = false`;
    if (!found) return undefined;
    const { password_matches: passwordMatches, ...user } = found;
    return { user, passwordMatches };
  }

  /** Signs `user` in with a new session. */
  signIn(user: UserRow, method: string): Promise<SessionGrant> {
    return this.sql.begin(async (tx) => {
      const [signedIn] = await tx<UserRow[]>`
        update auth.users u set last_sign_in_at = now() where u.id = ${user.id}
        returning ${userColumns(tx)}`;
      return await startSession(tx, signedIn ?? user, method);
    });
  }

  /**
   * Exchanges a refresh token, serialised per session (the session row is locked):
   * - the session's current token: it is revoked and its child becomes current;
   * - the token the current one replaced, within `reuseIntervalS` of that: the current token
   *   again (a client that lost the answer, or refreshed twice at once);
   * - any other revoked token: reuse, so the whole session ends (every token of it, and its
   *   access tokens fail at /user).
   */
  refresh(token: string, reuseIntervalS: number): Promise<RefreshOutcome> {
    return this.sql.begin(async (tx): Promise<RefreshOutcome> => {
      const [presented] = await tx<
        { id: string; revoked: boolean; session_id: string; user_id: string; reusable: boolean }[]
      >`
        select t.id, t.revoked, t.session_id, s.user_id,
               now() <= t.updated_at + make_interval(secs => ${reuseIntervalS}) as reusable
        from auth.refresh_tokens t
        join auth.sessions s on s.id = t.session_id
        where t.token = ${token}
        for update`;
      if (!presented) return { refused: "refresh_token_not_found" };
      let issued: string;
      if (!presented.revoked) {
        issued = newRefreshToken();
        await tx`
          with revoked as (
            update auth.refresh_tokens set revoked = true, updated_at = now()
            where id = ${presented.id}
          )
          insert into auth.refresh_tokens (instance_id, token, user_id, revoked, created_at,
                                           updated_at, parent, session_id)
          values (${instanceId}, ${issued}, ${presented.user_id}, false, now(), now(), ${token},
                  ${presented.session_id})`;
      } else {
        const [current] = await tx<{ token: string }[]>`
          select token from auth.refresh_tokens
          where session_id = ${presented.session_id} and not revoked and parent = ${token}`;
        if (!current || !presented.reusable) {
          await tx`delete from auth.sessions where id = ${presented.session_id}`;
          return { refused: "refresh_token_already_used" };
        }
        issued = current.token;
      }
      const [user] = await tx<UserRow[]>`
        with refreshed as (
          update auth.sessions set refreshed_at = now() at time zone 'utc', updated_at = now()
          where id = ${presented.session_id}
        )
        select ${userColumns(tx)} from auth.users u where u.id = ${presented.user_id}`;
      const amr = await amrOf(tx, presented.session_id);
      return { granted: { user, sessionId: presented.session_id, refreshToken: issued, amr } };
    });
  }

  async user(id: string): Promise<UserRow | undefined> {
    const [user] = await this.sql<UserRow[]>`
      select ${userColumns(this.sql)} from auth.users u where u.id = ${id}`;
    return user;
  }

  async sessionExists(id: string): Promise<boolean> {
    const [found] = await this.sql`select from auth.sessions where id = ${id}`;
    return found !== undefined;
  }

  /** Ends the sessions `scope` names: all of the user's, this one, or all but this one. */
  async logout(userId: string, sessionId: string | undefined, scope: LogoutScope): Promise<void> {
    if (scope === "local" && sessionId) {
      await this.sql`delete from auth.sessions where id = ${sessionId}`;
    } else if (scope === "others" && sessionId) {
      await this.sql`delete from auth.sessions where user_id = ${userId} and id <> ${sessionId}`;
    } else {
      await this.sql`delete from auth.sessions where user_id = ${userId}`;
    }
  }
}

/** A new session of `user` signed in by `method`, with its first refresh token. */
async function startSession(
  tx: postgres.TransactionSql,
  user: UserRow,
  method: string,
): Promise<SessionGrant> {
  const refreshToken = newRefreshToken();
  const [session] = await tx<{ id: string; amr_at: number }[]>`
    with session as (
      insert into auth.sessions (id, user_id, created_at, updated_at, aal)
      values (gen_random_uuid(), ${user.id}, now(), now(), 'aal1')
      returning id
    ), amr as (
      insert into auth.mfa_amr_claims (id, session_id, created_at, updated_at,
                                       authentication_method)
      select gen_random_uuid(), session.id, now(), now(), ${method} from session
      returning updated_at
    ), refresh_token as (
      insert into auth.refresh_tokens (instance_id, token, user_id, revoked, created_at,
                                       updated_at, session_id)
      select ${instanceId}, ${refreshToken}, ${user.id}, false, now(), now(), session.id
      from session
    )
    select session.id, floor(extract(epoch from amr.updated_at))::int as amr_at from session, amr`;
  return {
    user,
    sessionId: session.id,
    refreshToken,
    amr: [{ method, timestamp: session.amr_at }],
  };
}

async function amrOf(tx: postgres.TransactionSql, sessionId: string): Promise<AmrEntry[]> {
  const rows = await tx<{ method: string; timestamp: number }[]>`
    select authentication_method as method, floor(extract(epoch from updated_at))::int as timestamp
    from auth.mfa_amr_claims where session_id = ${sessionId}
    order by updated_at desc`;
  return rows.map(({ method, timestamp }) => ({ method, timestamp }));
}
