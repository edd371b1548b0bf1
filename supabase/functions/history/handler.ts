import { HttpError } from "../_shared/errors.ts";
import { get, handle } from "../_shared/http.ts";
import { json } from "../_shared/responses.ts";
import { intParam, z } from "../_shared/validation.ts";

const query = z.object({
  channel: z.string().regex(/^[A-Za-z0-9:_-]{1,200}$/, "Not a channel name."),
  limit: intParam(1, 1000).optional(),
  direction: z.enum(["backwards", "forwards"]).optional(),
  start: intParam(0, 8.64e15).optional(),
  end: intParam(0, 8.64e15).optional(),
  cursor: z.string().max(500).optional(),
  // Chat: the messages after this seq, oldest first (what a client that saw seq N missed).
  after_seq: intParam(0, Number.MAX_SAFE_INTEGER).optional(),
  // N (the last N messages, 1..100), Ns or Nm (those of the last N seconds / minutes).
  rewind: z.string().regex(/^([1-9]\d{0,3})([sm]?)$/, "Use N, Ns or Nm.").optional(),
});

/** What a page cursor remembers: the query it continues and where it stopped. */
const cursorShape = z.object({
  channel: z.string(),
  direction: z.enum(["backwards", "forwards"]),
  start: z.number().int().min(0).max(8.64e15).nullable(),
  end: z.number().int().min(0).max(8.64e15).nullable(),
  after: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});
type Cursor = z.infer<typeof cursorShape>;

function encodeCursor(cursor: Cursor): string {
  return btoa(JSON.stringify(cursor)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decodeCursor(text: string, channel: string): Cursor {
  let cursor: Cursor | undefined;
  try {
    const decoded = cursorShape.safeParse(
      JSON.parse(atob(text.replace(/-/g, "+").replace(/_/g, "/"))),
    );
    if (decoded.success) cursor = decoded.data;
  } catch {
    // Not base64 or not JSON: refused below like any other bad cursor.
  }
  if (!cursor || cursor.channel !== channel) {
    throw new HttpError(
      400,
      "invalid_request",
      "The cursor is not one this endpoint gave for this channel.",
    );
  }
  return cursor;
}

/** What edge.channel_history answers: a page, and the key the next one starts after. */
interface HistoryPage {
  items: unknown[];
  has_more: boolean;
  next_after_key: number | null;
}

/**
 * GET /functions/v1/history?channel=&limit=&direction=&start=&end=&cursor=, ?channel=&rewind=
 * or ?channel=room:{id}:chat&after_seq=: a channel's persisted messages (edge.channel_history),
 * for callers with subscribe rights.
 */
export const handler = handle(get(
  { caller: "user_or_service", query },
  async ({ query: params, call }) => {
    const paging = params.limit !== undefined || params.direction !== undefined ||
      params.start !== undefined || params.end !== undefined || params.cursor !== undefined;
    if (params.rewind !== undefined && (paging || params.after_seq !== undefined)) {
      throw new HttpError(
        400,
        "invalid_request",
        "rewind cannot be combined with limit, direction, start, end, cursor or after_seq.",
      );
    }
    if (
      params.after_seq !== undefined &&
      (params.direction !== undefined || params.cursor !== undefined ||
        params.start !== undefined || params.end !== undefined)
    ) {
      throw new HttpError(
        400,
        "invalid_request",
        "after_seq reads forwards from a seq: it takes only limit.",
      );
    }
    if (
      params.cursor !== undefined &&
      (params.direction !== undefined || params.start !== undefined || params.end !== undefined)
    ) {
      throw new HttpError(
        400,
        "invalid_request",
        "A cursor carries its own direction, start and end.",
      );
    }
    const cursor = params.cursor === undefined
      ? undefined
      : decodeCursor(params.cursor, params.channel);
    const direction = cursor?.direction ??
      (params.after_seq !== undefined ? "forwards" : params.direction ?? "backwards");
    const start = cursor ? cursor.start : params.start ?? null;
    const end = cursor ? cursor.end : params.end ?? null;
    const limit = params.limit ?? 100;

    let rewindItems: number | null = null;
    let rewindMs: number | null = null;
    if (params.rewind !== undefined) {
      const [, amount, unit] = /^(\d+)([sm]?)$/.exec(params.rewind)!;
      if (unit === "") rewindItems = Number(amount);
      else rewindMs = Number(amount) * (unit === "s" ? 1000 : 60_000);
      if (rewindItems !== null && rewindItems > 100) {
        throw new HttpError(400, "invalid_request", "rewind=N takes at most 100 messages.");
      }
    }

    const page = await call<HistoryPage>((sql) =>
      sql`edge.channel_history(${params.channel}, ${limit}, ${direction}, ${start}, ${end},
                               ${cursor?.after ?? null}, ${rewindItems}, ${rewindMs},
                               ${params.after_seq ?? null})`
    );
    const nextCursor = page.next_after_key !== null
      ? encodeCursor({ channel: params.channel, direction, start, end, after: page.next_after_key })
      : null;
    return json(200, { channel: params.channel, items: page.items, next_cursor: nextCursor });
  },
));
