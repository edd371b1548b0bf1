// What the functions' pool sends Postgres, for bench/ingest.ts: a TCP proxy that relays each
// connection both ways and reads the wire protocol as it passes. It counts network round trips
// and keeps each statement with its parameters, so pgbench can run exactly what a request ran.
//
// A round trip starts when the client sends a message while it waits for nothing: every Sync and
// simple Query it sent has been answered by ReadyForQuery (and a Flush it sent has been answered
// by anything). What it sends while answers are outstanding is pipelined and rides in the same
// round trip. The startup and authentication of a connection are not counted. Through a
// transaction pooler every round trip is network time.

/** A statement as the client sent it: its text, its parameters as text (all text format, as
 * postgres.js sends them), and the parameter types Postgres inferred (ParameterDescription). */
export interface SentStatement {
  text: string;
  params: (string | null)[];
  types: number[];
}

/** One round trip: the statements it carries, `parsed` false where it only binds and executes
 * a statement parsed and described in an earlier trip (postgres.js does that for an unnamed
 * statement with parameters, to learn their types first). */
export type RoundTrip = { statement: SentStatement; parsed: boolean }[];

/** Where the proxy listens, and the round trips it saw (since `reset`). */
export interface RoundTripCounter {
  url: string;
  trips: RoundTrip[];
  reset(): void;
  close(): Promise<void>;
}

const sslRequestCode = 80877103;
const gssEncRequestCode = 80877104;
const decoder = new TextDecoder();

/** Splits a byte stream into protocol messages, the first `untyped` of them without a type byte. */
class MessageReader {
  #buffered = new Uint8Array(0);
  constructor(public untyped: number) {}

  *push(chunk: Uint8Array): Generator<{ type: string; body: Uint8Array }> {
    const joined = new Uint8Array(this.#buffered.length + chunk.length);
    joined.set(this.#buffered);
    joined.set(chunk, this.#buffered.length);
    let at = 0;
    for (;;) {
      const typed = this.untyped === 0 ? 1 : 0;
      if (joined.length - at < typed + 4) break;
      const end = at + typed + new DataView(joined.buffer, at + typed, 4).getInt32(0);
      if (joined.length < end) break;
      const type = typed ? String.fromCharCode(joined[at]) : "";
      if (!typed) this.untyped--;
      yield { type, body: joined.subarray(at + typed + 4, end) };
      at = end;
    }
    this.#buffered = joined.slice(at);
  }
}

/** A message body read front to back. */
class BodyReader {
  #at = 0;
  #view: DataView;
  constructor(private body: Uint8Array) {
    this.#view = new DataView(body.buffer, body.byteOffset, body.length);
  }
  string(): string {
    const end = this.body.indexOf(0, this.#at);
    const text = decoder.decode(this.body.subarray(this.#at, end));
    this.#at = end + 1;
    return text;
  }
  int16(): number {
    this.#at += 2;
    return this.#view.getInt16(this.#at - 2);
  }
  int32(): number {
    this.#at += 4;
    return this.#view.getInt32(this.#at - 4);
  }
  bytes(n: number): Uint8Array {
    this.#at += n;
    return this.body.subarray(this.#at - n, this.#at);
  }
}

/** Relays one client connection to Postgres, adding the round trips it sees to `trips`. */
async function relay(client: Deno.Conn, target: Deno.ConnectOptions, counter: RoundTripCounter) {
  const server = await Deno.connect(target);
  const toServer = server.writable.getWriter(), toClient = client.writable.getWriter();
  const fromClient = new MessageReader(1); // the startup message has no type byte
  let serverSingleByte = 0; // answers to SSLRequest / GSSENCRequest: one byte, no framing
  const fromServer = new MessageReader(0);
  let ready = false; // the first ReadyForQuery ends startup and authentication
  let outstanding = 0; // Syncs and simple Queries not yet answered
  let flushed = false; // a Flush was sent: any answer ends the round trip
  let trip: RoundTrip | undefined;
  let unnamed: SentStatement | undefined; // the last statement parsed: what Bind binds
  const describing: SentStatement[] = []; // waiting for their ParameterDescription

  const clientToServer = (async () => {
    for await (const chunk of client.readable) {
      for (const { type, body } of fromClient.push(chunk)) {
        if (type === "") {
          const code = new DataView(body.buffer, body.byteOffset, 4).getInt32(0);
          if (code === sslRequestCode || code === gssEncRequestCode) {
            fromClient.untyped++;
            serverSingleByte++;
          }
          continue;
        }
        if (!ready || type === "X") continue;
        if (!trip) counter.trips.push(trip = []);
        const read = new BodyReader(body);
        if (type === "P") {
          read.string(); // the name: postgres.js's are unnamed (prepare: false)
          const text = read.string();
          const types = Array.from({ length: read.int16() }, () => read.int32());
          unnamed = { text, params: [], types };
          trip.push({ statement: unnamed, parsed: true });
        } else if (type === "Q") {
          trip.push({ statement: { text: read.string(), params: [], types: [] }, parsed: true });
        } else if (type === "D" && unnamed && read.bytes(1)[0] === "S".charCodeAt(0)) {
          describing.push(unnamed);
        } else if (type === "B" && unnamed) {
          read.string(); // portal
          read.string(); // statement
          const formats = read.int16();
          for (let i = 0; i < formats; i++) read.int16();
          unnamed.params = Array.from({ length: read.int16() }, () => {
            const length = read.int32();
            return length < 0 ? null : decoder.decode(read.bytes(length));
          });
          if (!trip.some((step) => step.statement === unnamed)) {
            trip.push({ statement: unnamed, parsed: false });
          }
        }
        if (type === "S" || type === "Q") outstanding++;
        if (type === "H") flushed = true;
      }
      await toServer.write(chunk);
    }
  })();
  const serverToClient = (async () => {
    // Read before relaying: the client may answer at once, and must find the trip ended.
    for await (const chunk of server.readable) {
      let framed = chunk;
      while (serverSingleByte > 0 && framed.length > 0) {
        serverSingleByte--;
        framed = framed.subarray(1);
      }
      for (const { type, body } of fromServer.push(framed)) {
        if (type === "Z") {
          if (!ready) ready = true;
          else outstanding = Math.max(0, outstanding - 1);
        } else if (type === "t") {
          const read = new BodyReader(body);
          const statement = describing.shift();
          if (statement) statement.types = Array.from({ length: read.int16() }, () => read.int32());
        }
        if ((type === "Z" && outstanding === 0) || (flushed && outstanding === 0)) {
          trip = undefined;
          flushed = false;
        }
      }
      await toClient.write(chunk);
    }
  })();
  // When one side ends, end the other: the pool closing its connection ends Postgres's.
  await Promise.race([clientToServer, serverToClient]).catch(() => {});
  await Promise.allSettled([toServer.close(), toClient.close()]);
  await Promise.allSettled([clientToServer, serverToClient]);
}

/** Starts the proxy on `port` in front of the Postgres at `dbUrl`. */
export function startRoundTripCounter(dbUrl: string, port: number): RoundTripCounter {
  const target = new URL(dbUrl);
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const proxied = new URL(dbUrl);
  proxied.port = String(port);
  const relays = new Set<Promise<void>>();
  const counter: RoundTripCounter = {
    url: proxied.href,
    trips: [],
    reset() {
      counter.trips.length = 0;
    },
    async close() {
      listener.close();
      await Promise.allSettled(relays);
    },
  };
  (async () => {
    for await (const client of listener) {
      const relaying = relay(client, {
        hostname: target.hostname,
        port: Number(target.port || 5432),
      }, counter).catch(() => {});
      relays.add(relaying);
      relaying.finally(() => relays.delete(relaying));
    }
  })().catch(() => {}); // the listener was closed
  return counter;
}

/** "select public.send_chat($1, $2) as result" from a statement's text: short, one line. */
function label(text: string): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > 70 ? `${line.slice(0, 67)}...` : line;
}

const isFlush = (trip: RoundTrip) =>
  trip.some((step) => step.statement.text.includes("flush_window"));

/** A request's round trips, without the window flushes that ran after its response. */
export const requestTrips = (trips: RoundTrip[]) => trips.filter((trip) => !isFlush(trip));

/**
 * The round trips per request, from `trips` seen while `requests` requests ran one at a time:
 * the total, the statements, those that belong to window flushes (after the response), and how
 * often each kind of trip occurred, per request.
 */
export function roundTripsPerRequest(trips: RoundTrip[], requests: number) {
  const kinds = new Map<string, number>();
  for (const trip of trips) {
    const kind = trip.map(({ statement, parsed }) =>
      parsed ? label(statement.text) : `(bind, execute) ${label(statement.text)}`
    ).join(" + ");
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  const ofRequests = requestTrips(trips);
  const per = (n: number) => Math.round((n / requests) * 100) / 100;
  return {
    requests,
    round_trips_per_request: per(ofRequests.length),
    statements_per_request: per(ofRequests.flat().filter((step) => step.parsed).length),
    flush_round_trips_per_request: per(trips.length - ofRequests.length),
    by_kind: Object.fromEntries([...kinds].map(([kind, n]) => [kind, per(n)])),
  };
}

/**
 * A pgbench script that sends what one request sent, from its round trips: each statement once,
 * in order, with a trip of several statements as a pipeline. `argument` gives the pgbench
 * expression for a parameter's value (the caller's claims, the room, ...); it is cast to the
 * type Postgres inferred for it (`typeName`), so the call resolves as the original did.
 */
export function pgbenchScriptOf(
  trips: RoundTrip[],
  argument: (value: string | null) => string,
  typeName: (oid: number) => string,
): string {
  return requestTrips(trips).map((trip) => {
    const statements = trip.filter((step) => step.parsed).map(({ statement }) => {
      if (/(?<!:):[A-Za-z_]/.test(statement.text)) {
        throw new Error(`pgbench would read a :name in this as a variable: ${statement.text}`);
      }
      return statement.text.replace(/\$(\d+)/g, (_, n) => {
        const i = Number(n) - 1;
        return `cast(${argument(statement.params[i])} as ${typeName(statement.types[i])})`;
      }) + ";\n";
    });
    return statements.length > 1
      ? `\\startpipeline\n${statements.join("")}\\endpipeline\n`
      : statements.join("");
  }).join("");
}
