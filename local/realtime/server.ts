// The local Realtime stand-in: what Supabase Realtime does for this project, on one process, for
// development and CI only (production uses Supabase Realtime). The gateway hands it
// /realtime/v1/*: the WebSocket endpoint (each socket a Connection) and the REST broadcast
// endpoints (rest.ts). It delivers the rows realtime.send commits (read from the WAL), relays
// client broadcasts and keeps presence (through the registry, hub.ts), and authorizes private
// channels with Realtime's own RLS probes.
import postgres from "npm:postgres@3.4.9";
import { headersForRls } from "./authorization.ts";
import { Connection } from "./connection.ts";
import { Hub } from "./hub.ts";
import { startJanitor } from "./janitor.ts";
import { supportedVsns, type Vsn } from "./protocol.ts";
import { type BroadcastRow, type Replication, streamBroadcasts } from "./replication.ts";
import { isRestBroadcast, realtimeError, restBroadcast } from "./rest.ts";
import { TokenError, verifyToken } from "./tokens.ts";

export class RealtimeServer {
  readonly #hub = new Hub();
  readonly #sql: postgres.Sql;
  #sockets = new Set<Connection>();
  #replication?: Replication;
  #janitor?: { stop(): void };

  private constructor(sql: postgres.Sql) {
    this.#sql = sql;
  }

  /** Connects to the project database as Realtime does (as the superuser supabase_admin:
   * `adminUrl`), keeps the partitions of realtime.messages and starts streaming what
   * realtime.send commits. */
  static async start(adminUrl: string): Promise<RealtimeServer> {
    const server = new RealtimeServer(
      postgres(adminUrl, { max: 4, prepare: false, onnotice: () => {} }),
    );
    server.#janitor = await startJanitor(server.#sql);
    server.#replication = await streamBroadcasts(adminUrl, (row) => server.#deliverRow(row));
    return server;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.close(1001, "server shutting down");
    this.#janitor?.stop();
    this.#replication?.close();
    await this.#sql.end({ timeout: 1 });
  }

  /** Serves /realtime/v1/*. */
  handle(req: Request): Promise<Response> {
    const { pathname } = new URL(req.url);
    if (pathname === "/realtime/v1/websocket") return this.#connect(req);
    if (isRestBroadcast(pathname)) return restBroadcast({ hub: this.#hub, sql: this.#sql }, req);
    return Promise.resolve(realtimeError(404, `Nothing is served at ${pathname}.`));
  }

  async #connect(req: Request): Promise<Response> {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return realtimeError(400, "This endpoint takes WebSocket connections.");
    }
    const params = new URL(req.url).searchParams;
    const vsn = (params.get("vsn") ?? "1.0.0") as Vsn;
    // Phoenix refuses a serializer version it does not know before anything else.
    if (!supportedVsns.includes(vsn)) return new Response(null, { status: 403 });
    const apiKey = req.headers.get("x-api-key") ?? params.get("apikey");
    if (!apiKey) return Response.json({ error: "API key is missing" }, { status: 401 });
    try {
      await verifyToken(apiKey);
    } catch (error) {
      if (!(error instanceof TokenError)) throw error;
      // At connect Realtime does not say how long ago.
      const message = error.expired ? "Token has expired" : error.message;
      return Response.json({ error: message }, { status: 401 });
    }
    // On a socket RLS sees the `x-*` headers of the upgrade; read them before it closes the request.
    const headers = headersForRls(req, (name) => name.startsWith("x-"));
    let upgraded: ReturnType<typeof Deno.upgradeWebSocket>;
    try {
      upgraded = Deno.upgradeWebSocket(req);
    } catch (error) {
      // An `Upgrade: websocket` request without the rest of the handshake.
      return realtimeError(
        400,
        error instanceof Error ? error.message : "Bad WebSocket handshake.",
      );
    }
    this.#sockets.add(
      new Connection({
        hub: this.#hub,
        sql: this.#sql,
        ws: upgraded.socket,
        vsn,
        apiKey,
        headers,
        onClosed: (socket) => this.#sockets.delete(socket),
      }),
    );
    return upgraded.response;
  }

  #deliverRow(row: BroadcastRow): void {
    this.#hub.broadcast({
      topic: row.topic,
      isPrivate: row.private,
      event: row.event,
      payload: row.payload,
      meta: { id: row.id },
    });
  }
}
