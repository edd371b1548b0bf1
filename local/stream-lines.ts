// The lines of a byte stream, for tools that talk to a child process in lines (a benchmark's
// client processes, a test's child holding a stack).

/** The lines of a byte stream (a child's stdout, this process's stdin), without their ends. */
export async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let end: number;
    while ((end = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
    }
  }
}
