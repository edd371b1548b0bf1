// The demo page (API.md §6), served by the local gateway at /demo/. Local only, like the rest of
// the gateway: a hosted app serves its own page from wherever it likes.
//
//   /demo/                     index.html, and the page's own files (demo/*.html|css|js)
//   /demo/whatssound-client.js the client library's bundle (`npm run build`, made again when
//                              client/ is newer than it)
//   /demo/vendor/supabase.js   supabase-js's own browser build (dist/umd) from node_modules: the
//                              same file the CDN serves for a <script> tag, at the pinned version,
//                              with no bundling of ours and no import map (nothing may come
//                              from a CDN here)
//   /demo/local.json           what a hosted app would have from its build settings and the Data
//                              API, which the local stack does not serve: the API URL, the anon
//                              key, the song catalogue and the seeded users' display names
import { db } from "../supabase/functions/_shared/db.ts";
import { HttpError } from "../supabase/functions/_shared/errors.ts";
import type { Handler } from "../supabase/functions/_shared/http.ts";
import { errorResponse } from "../supabase/functions/_shared/responses.ts";
import { anonKey } from "../local/keys.ts";

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const demoDir = `${root}/demo`;
export const clientBundle = `${root}/client/dist/whatssound-client.js`;
const supabaseBrowserBuild = `${root}/node_modules/@supabase/supabase-js/dist/umd/supabase.js`;

const contentTypes: Record<string, string> = {
  html: "text/html; charset=utf-8",
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  png: "image/png",
  svg: "image/svg+xml",
};
// The page's own files: one level, plain names (never the tests, never a path out of demo/).
const pageFile = /^[a-z0-9][a-z0-9-]*\.(html|css|js|svg)$/;

export interface DemoOptions {
  /** The API the page talks to; by default the origin the page was asked for (the gateway). */
  apiUrl?: string;
}

/** Serves /demo and everything below it. */
export function createDemoHandler({ apiUrl }: DemoOptions = {}): Handler {
  return async (req) => {
    try {
      const url = new URL(req.url);
      if (req.method !== "GET" && req.method !== "HEAD") {
        throw new HttpError(405, "method_not_allowed", "The demo page is read with GET.");
      }
      if (url.pathname === "/demo") {
        return new Response(null, { status: 308, headers: { location: `/demo/${url.search}` } });
      }
      const name = url.pathname.slice("/demo/".length);
      const api = apiUrl ?? url.origin;
      if (name === "" || name === "index.html") return await file(`${demoDir}/index.html`, api);
      if (name === "local.json") return await localJson(api);
      if (name === "whatssound-client.js") {
        await ensureClientBundle();
        return await file(clientBundle, api);
      }
      if (name === "vendor/supabase.js") return await file(supabaseBrowserBuild, api);
      if (pageFile.test(name)) return await file(`${demoDir}/${name}`, api);
      throw new HttpError(404, "not_found", `Nothing is served at ${url.pathname}.`);
    } catch (error) {
      if (error instanceof HttpError) return errorResponse(error);
      console.error(error);
      return errorResponse(new HttpError(500, "internal_error", "The demo page failed."));
    }
  };
}

/** The page's headers: revalidated on every load (it changes as you work on it), and a policy
 * that lets it load only its own files and talk only to the API. */
function headers(type: string, api: string): Headers {
  const socket = api.replace(/^http/, "ws");
  return new Headers({
    "content-type": type,
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
    "content-security-policy": [
      "default-src 'self'",
      `connect-src 'self' ${api} ${socket}`,
      "img-src 'self' data:",
      "frame-ancestors 'none'",
    ].join("; "),
  });
}

async function file(path: string, api: string): Promise<Response> {
  const type = contentTypes[path.slice(path.lastIndexOf(".") + 1)];
  let body: Uint8Array;
  try {
    body = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new HttpError(404, "not_found", `${path.slice(root.length + 1)} does not exist.`);
    }
    throw error;
  }
  return new Response(body as Uint8Array<ArrayBuffer>, { headers: headers(type, api) });
}

async function localJson(api: string): Promise<Response> {
  const sql = db();
  const songs = await sql`select id, title, artist, duration_ms from public.songs
                          order by title, id`;
  const people = await sql`select id, raw_user_meta_data ->> 'display_name' as name
                           from auth.users where raw_user_meta_data ? 'display_name'`;
  const body = {
    url: api,
    anon_key: anonKey,
    songs,
    people: Object.fromEntries(people.map((p) => [p.id, p.name])),
  };
  return new Response(JSON.stringify(body), { headers: headers("application/json", api) });
}

let building: Promise<void> | null = null;

/**
 * Builds client/dist/whatssound-client.js with `npm run build` when it is missing or older than
 * the library's sources (or package.json, which holds the build command). One build at a time.
 */
export function ensureClientBundle(): Promise<void> {
  building ??= (async () => {
    try {
      if (!(await bundleIsStale())) return;
      console.log("Building the client library for the demo page (npm run build)...");
      const build = await new Deno.Command("npm", {
        args: ["run", "--silent", "build"],
        cwd: root,
        stdin: "null",
      }).output();
      if (build.code !== 0) {
        throw new Error(`npm run build failed:\n${new TextDecoder().decode(build.stderr)}`);
      }
    } finally {
      building = null;
    }
  })();
  return building;
}

async function bundleIsStale(): Promise<boolean> {
  const built = await Deno.stat(clientBundle).then((s) => s.mtime!.getTime(), () => null);
  if (built === null) return true;
  const sources = [`${root}/package.json`];
  for await (const entry of Deno.readDir(`${root}/client`)) {
    if (entry.isFile && entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts")) {
      sources.push(`${root}/client/${entry.name}`);
    }
  }
  for (const source of sources) {
    if ((await Deno.stat(source)).mtime!.getTime() > built) return true;
  }
  return false;
}
