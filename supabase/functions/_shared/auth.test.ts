import assert from "node:assert/strict";
import { exportJWK, generateKeyPair, SignJWT } from "npm:jose@6.2.18";
import { jwtSecret, signJwt, userToken } from "../../../local/keys.ts";
import { bearerToken, verifyJwt } from "./auth.ts";
import { HttpError } from "./errors.ts";

Deno.env.set("JWT_SECRET", jwtSecret);
const userId = "00000000-0000-4000-8000-0000000000bb";

async function assertInvalid(token: string, message?: RegExp) {
  await assert.rejects(verifyJwt(token), (error: unknown) => {
    assert.ok(error instanceof HttpError);
    assert.equal(error.status, 401);
    assert.equal(error.code, "invalid_token");
    if (message) assert.match(error.message, message);
    return true;
  });
}

Deno.test("an HS256 user token yields its claims, is_anonymous included", async () => {
  const claims = await verifyJwt(await userToken(userId, { isAnonymous: true }));
  assert.equal(claims.sub, userId);
  assert.equal(claims.role, "authenticated");
  assert.equal(claims.is_anonymous, true);
});

Deno.test("expired, forged and unsigned tokens are invalid_token", async () => {
  await assertInvalid(await userToken(userId, { expiresIn: -1 }), /expired/);
  await assertInvalid(
    await signJwt({ role: "anon", exp: 4e9 }, "a-different-secret-of-at-least-32-characters"),
  );
  const [header, payload] = (await userToken(userId)).split(".");
  await assertInvalid(`${header}.${payload}.`);
  await assertInvalid(`${btoa('{"alg":"none"}').replace(/=/g, "")}.${payload}.`, /alg "none"/);
});

Deno.test("correctly signed tokens whose claims no Supabase token has are invalid_token", async () => {
  // The database casts sub (auth.uid()) and is_anonymous (the channel rules), and reads the
  // claims as jsonb: such tokens used to reach it and answer 500.
  for (
    const sub of ["not-a-uuid", "", "00000000-0000-4000-8000-00000000000g", 42, null, [userId]]
  ) {
    await assertInvalid(await userToken(userId, { sub }), /sub must be a user id/);
  }
  await assertInvalid(await signJwt({ role: "service_role", sub: "admin", exp: 4e9 }), /sub/);
  for (const isAnonymous of ["true", "yes", 1, null, {}]) {
    await assertInvalid(
      await userToken(userId, { is_anonymous: isAnonymous }),
      /is_anonymous must be true or false/,
    );
  }
  const deep = JSON.parse("[".repeat(40) + "]".repeat(40));
  for (const user_metadata of [{ name: "a\u0000b" }, { name: "\ud800" }, { deep }]) {
    await assertInvalid(await userToken(userId, { user_metadata }), /claims may not hold/);
  }
  for (const role of ["postgres", "supabase_admin", "", ["authenticated"]]) {
    await assertInvalid(await userToken(userId, { role }), /role must be/);
  }
  // What Supabase Auth issues still passes: an upper-case uuid, an anonymous user, no sub.
  assert.equal((await verifyJwt(await userToken(userId.toUpperCase()))).sub, userId.toUpperCase());
  assert.equal((await verifyJwt(await signJwt({ role: "anon", exp: 4e9 }))).sub, undefined);
});

Deno.test("a header whose alg is not a string is invalid_token, not 503 unavailable", async () => {
  // `alg: {toString: 1}` threw while the refusal was worded, and the TypeError was taken for a
  // key set that could not be fetched.
  const [, payload, signature] = (await userToken(userId)).split(".");
  const encode = (value: unknown) => btoa(JSON.stringify(value)).replace(/=+$/, "");
  for (const alg of [{ toString: 1 }, ["HS256"], null, 256]) {
    await assertInvalid(`${encode({ alg })}.${payload}.${signature}`, /not accepted/);
  }
  await assertInvalid(`${encode({ typ: "JWT" })}.${payload}.${signature}`, /no alg/);
});

Deno.test("asymmetric tokens are verified against SUPABASE_JWKS", async () => {
  const { publicKey, privateKey } = await generateKeyPair("ES256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "test-key", alg: "ES256", use: "sig" };
  Deno.env.set("SUPABASE_JWKS", JSON.stringify({ keys: [jwk] }));
  const sign = (key: CryptoKey, exp: number) =>
    new SignJWT({ sub: userId, role: "authenticated", is_anonymous: false, exp })
      .setProtectedHeader({ alg: "ES256", kid: "test-key" })
      .sign(key);
  const now = Math.floor(Date.now() / 1000);
  assert.equal((await verifyJwt(await sign(privateKey, now + 60))).sub, userId);
  await assertInvalid(await sign(privateKey, now - 60), /expired/);
  const stranger = await generateKeyPair("ES256");
  await assertInvalid(await sign(stranger.privateKey, now + 60));
});

Deno.test("bearerToken requires an Authorization: Bearer header", () => {
  const request = (headers: Record<string, string>) => new Request("http://x", { headers });
  assert.equal(bearerToken(request({ Authorization: "Bearer abc.def.ghi" })), "abc.def.ghi");
  for (
    const headers of [{}, { Authorization: "abc" }, { Authorization: "Bearer" }] as Record<
      string,
      string
    >[]
  ) {
    assert.throws(
      () => bearerToken(request(headers)),
      (error: unknown) =>
        error instanceof HttpError && error.code === "not_authenticated" && error.status === 401,
    );
  }
});
