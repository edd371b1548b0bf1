// Rows that realtime.send commits, read from the WAL as Supabase Realtime reads them
// (reference/realtime.md §3): a publication on realtime.messages and a temporary logical slot
// with pgoutput, so only committed rows arrive, in commit order, and nothing is polled. Rows
// committed while the connection is down are never delivered (the slot is temporary), as with
// Realtime.

/** A committed broadcast row, as delivery needs it. */
export interface BroadcastRow {
  id: string;
  topic: string;
  event: string;
  private: boolean;
  /** The payload as JSON text, or the bytes of a binary payload. */
  payload: { json: string } | { binary: Uint8Array };
}

export interface Replication {
  close(): void;
}

const restartDelayMs = 500;

/**
 * Streams every committed broadcast row to `onRow`, restarting the replication worker whenever
 * it fails. Resolves once the first worker streams.
 */
export function streamBroadcasts(
  dbUrl: string,
  onRow: (row: BroadcastRow) => void,
): Promise<Replication> {
  let worker: Worker | undefined;
  let restart: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  let streaming = false;
  let everStreamed = false;
  // A row the fan-out cannot handle must not end the process that hosts the functions too.
  const deliver = (row: BroadcastRow) => {
    try {
      onRow(row);
    } catch (error) {
      console.error("realtime stand-in: a row could not be delivered:", error);
    }
  };
  return new Promise((resolve, reject) => {
    const replication = {
      close() {
        closed = true;
        clearTimeout(restart);
        worker?.terminate();
      },
    };
    const start = () => {
      worker = new Worker(new URL("./replication-worker.ts", import.meta.url).href, {
        type: "module",
      });
      const failed = (reason: string) => {
        worker?.terminate();
        if (closed) return;
        // The first start must work: a stack whose broadcasts go nowhere is not a stack.
        if (!everStreamed) {
          return reject(new Error(`The Realtime stand-in cannot replicate: ${reason}`));
        }
        if (streaming) console.error(`realtime stand-in: replication lost (${reason}); retrying`);
        streaming = false;
        restart = setTimeout(start, restartDelayMs);
      };
      worker.onmessage = ({ data }: MessageEvent<BroadcastRow | "ready" | "failed">) => {
        if (data === "failed") return failed("the stream broke");
        if (data !== "ready") return deliver(data);
        if (everStreamed) console.error("realtime stand-in: replication resumed");
        streaming = everStreamed = true;
        resolve(replication);
      };
      worker.onerror = (event) => {
        event.preventDefault();
        failed(event.message);
      };
      worker.postMessage(dbUrl);
    };
    start();
  });
}
