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
