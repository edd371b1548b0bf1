import assert from "node:assert/strict";
import { SignJWT } from "npm:jose@6.2.18";
import { createGateway, serveGateway } from "./gateway.ts";
import { jwtSecret, signJwt, userToken } from "./keys.ts";
import { calls } from "./fixtures/gateway/functions/echo/handler.ts";

Deno.env.set("JWT_SECRET", jwtSecret);
const fixtures = new URL("./fixtures/gateway", import.meta.url).pathname;
const gateway = await createGateway({
  functionsDir: `${fixtures}/functions`,
  configPath: `${fixtures}/config.toml`,
});
const userId = "00000000-0000-4000-8000-0000000000aa";

async function call(path: string, init: RequestInit = {}) {
  const before = calls.length;
  const response = await gateway(new Request(`http://127.0.0.1:54321${path}`, init));
  return { response, body: await response.json(), reachedFunction: calls.length > before };
}

function bearer(token: string): RequestInit {
  return { headers: { Authorization: `Bearer ${token}` } };
}

async function assertRejected(path: string, init: RequestInit, code: string) {
  const { response, body, reachedFunction } = await call(path, init);
  assert.equal(response.status, 401);
  assert.equal(body.error.code, code);
  assert.equal(typeof body.error.message, "string");
  assert.equal(response.headers.get("access-control-allow-origin"), "*");
  assert.equal(reachedFunction, false, "the function must not run");
}

Deno.test("verify_jwt: a missing token is 401 not_authenticated before the function runs", async () => {
  await assertRejected("/functions/v1/echo", {}, "not_authenticated");
  await assertRejected(
    "/functions/v1/echo",
    { headers: { Authorization: "Basic abc" } },
    "not_authenticated",
  );
});

Deno.test("verify_jwt: a token signed with another secret is 401 invalid_token", async () => {
  const forged = await signJwt(
    { sub: userId, role: "authenticated", exp: Math.floor(Date.now() / 1000) + 60 },
    "another-secret-that-is-at-least-32-characters-long",
  );
  await assertRejected("/functions/v1/echo", bearer(forged), "invalid_token");
});

Deno.test("verify_jwt: an expired token is 401 invalid_token", async () => {
  const { body } = await call(
    "/functions/v1/echo",
    bearer(await userToken(userId, { expiresIn: -10 })),
  );
  assert.match(body.error.message, /expired/);
  await assertRejected(
    "/functions/v1/echo",
    bearer(await userToken(userId, { expiresIn: -10 })),
    "invalid_token",
  );
});

Deno.test("verify_jwt: an unsigned alg:none token is 401 invalid_token", async () => {
  const encode = (value: unknown) =>
    btoa(JSON.stringify(value)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
  const unsigned = `${encode({ alg: "none", typ: "JWT" })}.${
    encode({ sub: userId, role: "service_role", exp: Math.floor(Date.now() / 1000) + 60 })
  }.`;
  await assertRejected("/functions/v1/echo", bearer(unsigned), "invalid_token");
});

Deno.test("verify_jwt: tokens without exp, with a non-API role, or not JWTs are refused", async () => {
  const noExp = await new SignJWT({ sub: userId, role: "authenticated" })
    .setProtectedHeader({ alg: "HS256" })
    .sign(new TextEncoder().encode(jwtSecret));
  await assertRejected("/functions/v1/echo", bearer(noExp), "invalid_token");
  const superuser = await signJwt({ role: "postgres", exp: Math.floor(Date.now() / 1000) + 60 });
  await assertRejected("/functions/v1/echo", bearer(superuser), "invalid_token");
  await assertRejected("/functions/v1/echo", bearer("not-a-jwt"), "invalid_token");
});

Deno.test("verify_jwt: a valid token reaches the function with x-forwarded-proto https", async () => {
  const { response, body, reachedFunction } = await call(
    "/functions/v1/echo",
    bearer(await userToken(userId)),
  );
  assert.equal(response.status, 200);
  assert.equal(reachedFunction, true);
  assert.equal(body.forwardedProto, "https");
});

Deno.test("the gateway keeps an x-forwarded-proto the request already has", async () => {
  const token = await userToken(userId);
  const { body } = await call("/functions/v1/echo", {
    headers: { Authorization: `Bearer ${token}`, "x-forwarded-proto": "http" },
  });
  assert.equal(body.forwardedProto, "http");
});

Deno.test("verify_jwt = false lets a request without a token through", async () => {
  const { response, reachedFunction } = await call("/functions/v1/open");
  assert.equal(response.status, 200);
  assert.equal(reachedFunction, true);
});

Deno.test("a CORS preflight reaches the function without a token", async () => {
  const { body, reachedFunction } = await call("/functions/v1/echo", { method: "OPTIONS" });
  assert.equal(reachedFunction, true);
  assert.equal(body.method, "OPTIONS");
});

Deno.test("unknown, disabled, private and malformed function names are 404 not_found", async () => {
  for (
    const path of [
      "/functions/v1/nope",
      "/functions/v1/disabled",
      "/functions/v1/_shared",
      "/functions/v1/..",
      "/rest/v1/rooms",
    ]
  ) {
    const { response, body, reachedFunction } = await call(path);
    assert.equal(response.status, 404, path);
    assert.equal(body.error.code, "not_found", path);
    assert.equal(reachedFunction, false, path);
  }
});

Deno.test("TRACE and TRACK, which no Request can carry, are 405 in the contract's shape, not 500", async () => {
  // The gateway copies each request for the function; `new Request` refuses these methods.
  const server = serveGateway(gateway, 0, () => {});
  try {
    const { port } = server.addr as Deno.NetAddr;
    for (const method of ["TRACE", "TRACK"]) {
      const connection = await Deno.connect({ hostname: "127.0.0.1", port });
      const request =
        `${method} /functions/v1/open HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`;
      await connection.write(new TextEncoder().encode(request));
      let answer = "";
      const buffer = new Uint8Array(4096);
      for (let n; (n = await connection.read(buffer)) !== null;) {
        answer += new TextDecoder().decode(buffer.subarray(0, n));
      }
      connection.close();
      assert.match(answer, /^HTTP\/1\.1 405 /, method);
      assert.match(answer, /access-control-allow-origin: \*/i, method);
      const body = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4));
      assert.equal(body.error.code, "method_not_allowed", method);
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("a function added after its name was asked for is served (misses are not remembered)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "gateway-late-" });
  try {
    await Deno.writeTextFile(`${dir}/config.toml`, 'project_id = "late"\n');
    const lateGateway = await createGateway({
      functionsDir: `${dir}/functions`,
      configPath: `${dir}/config.toml`,
    });
    const ask = async () => {
      const response = await lateGateway(
        new Request("http://127.0.0.1:54321/functions/v1/late", bearer(await userToken(userId))),
      );
      await response.body?.cancel();
      return response.status;
    };
    assert.equal(await ask(), 404);
    await Deno.mkdir(`${dir}/functions/late`, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/functions/late/handler.ts`,
      'export const handler = () => Promise.resolve(new Response("late"));\n',
    );
    assert.equal(await ask(), 200);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
