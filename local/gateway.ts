// The local API gateway on :54321, standing in for the platform's: it routes
// /functions/v1/<name> to supabase/functions/<name>/handler.ts, verifying the JWT first where
// config.toml says verify_jwt (the default), as the hosted platform does, /realtime/v1/* to the
// local Realtime stand-in, /auth/v1/* to the local Auth stand-in and /demo/ to the demo page.
// Local only.
import { parse as parseToml } from "npm:smol-toml@1.9.1";
import { requireClaims } from "../supabase/functions/_shared/auth.ts";
import { HttpError } from "../supabase/functions/_shared/errors.ts";
import type { Handler } from "../supabase/functions/_shared/http.ts";
import { errorResponse } from "../supabase/functions/_shared/responses.ts";

type FunctionConfig = { enabled?: boolean; verify_jwt?: boolean };

export interface GatewayOptions {
  /** The folder holding one sub-folder per function (`supabase/functions`). */
  functionsDir: string;
  /** `supabase/config.toml`, for the `[functions.<name>]` blocks. */
  configPath: string;
  /** Serves /realtime/v1/* (WebSocket upgrades included, so it gets the original request). */
  realtime?: Handler;
  /** Serves /auth/v1/*. */
  auth?: Handler;
  /** Serves /demo and /demo/* (demo/serve.ts). */
  demo?: Handler;
}

// Function slugs as the Supabase CLI accepts them; `_shared` and the like never match.
const slugPattern = /^[A-Za-z][A-Za-z0-9_-]*$/;
// Methods that a server receives but `new Request` refuses (TRACE, TRACK; CONNECT never gets
// this far). They used to fail the gateway with a 500.
const forbiddenMethods = new Set(["TRACE", "TRACK", "CONNECT"]);

export async function createGateway(
  { functionsDir, configPath, realtime, auth, demo }: GatewayOptions,
): Promise<Handler> {
  const config = parseToml(await Deno.readTextFile(configPath)) as {
    functions?: Record<string, FunctionConfig>;
  };
  const handlers = new Map<string, Promise<Handler | undefined>>();
  // Services other than the functions, by path prefix (or the folder itself, which the demo
  // redirects to its slash); each gets the original request.
  const services: [prefix: string, serve: Handler | undefined][] = [
    ["/realtime/v1/", realtime],
    ["/auth/v1/", auth],
    ["/demo/", demo],
  ];

  function loadHandler(name: string): Promise<Handler | undefined> {
    if (!handlers.has(name)) {
      const file = `${functionsDir}/${name}/handler.ts`;
      const loading = Deno.stat(file).then(
        async () => (await import(new URL(`file://${file}`).href)).handler as Handler,
        () => {
          // Only functions that exist are remembered: one entry per name ever asked for would
          // grow without bound, and a function added later would stay a 404.
          handlers.delete(name);
          return undefined;
        },
      );
      handlers.set(name, loading);
    }
    return handlers.get(name)!;
  }

  return async (req) => {
    try {
      const { pathname } = new URL(req.url);
      for (const [prefix, serve] of services) {
        if (serve && (pathname.startsWith(prefix) || pathname === prefix.slice(0, -1))) {
          return await serve(req);
        }
      }
      const match = /^\/functions\/v1\/([^/]+)(\/.*)?$/.exec(pathname);
      if (!match) throw new HttpError(404, "not_found", `Nothing is served at ${pathname}.`);
      const name = match[1];
      const settings = config.functions?.[name] ?? {};
      const handler = slugPattern.test(name) && settings.enabled !== false
        ? await loadHandler(name)
        : undefined;
      if (!handler) throw new HttpError(404, "not_found", `There is no function named "${name}".`);
      // Methods a Request cannot be made with (fetch forbids them): no function serves them.
      if (forbiddenMethods.has(req.method.toUpperCase())) {
        throw new HttpError(405, "method_not_allowed", `${req.method} is not allowed.`, {
          headers: { Allow: "OPTIONS, GET, POST" },
        });
      }
      // The platform lets CORS preflights through without a token.
      if (settings.verify_jwt !== false && req.method !== "OPTIONS") await requireClaims(req);
      const headers = new Headers(req.headers);
      if (!headers.has("x-forwarded-proto")) headers.set("x-forwarded-proto", "https");
      // A new request rather than a copy of `req`: copying would read `req.signal`, which
      // Deno.serve still aborts on success (legacy behaviour) and warns about.
      const body = req.method === "GET" || req.method === "HEAD" ? null : req.body;
      return await handler(new Request(req.url, { method: req.method, headers, body }));
    } catch (error) {
      if (error instanceof HttpError) return errorResponse(error);
      console.error(error);
      return errorResponse(new HttpError(500, "internal_error", "The gateway failed."));
    }
  };
}

/** Serves `handler` on 127.0.0.1:`port`, logging one line per request. */
export function serveGateway(
  handler: Handler,
  port: number,
  log: (line: string) => void = console.log,
): Deno.HttpServer {
  return Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, async (req) => {
    const started = performance.now();
    const response = await handler(req);
    const { pathname, search } = new URL(req.url);
    // Realtime connections carry their key in the query string; keep it out of the log.
    const query = search.replace(/([?&]apikey=)[^&]*/i, "$1[redacted]");
    const ms = (performance.now() - started).toFixed(1);
    log(
      `${new Date().toISOString()} ${req.method} ${pathname}${query} ${response.status} ${ms}ms`,
    );
    return response;
  });
}
