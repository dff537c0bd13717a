/**
 * A plugin that takes none of its input while some waits for it, for `stallMs`, has stopped
 * reading: its requests time out one after another, and what waits for it (a request line already
 * started can't be taken back) holds memory for nothing. The watch says so once; the supervisor
 * then kills and restarts it.
 */
export interface InputState {
  /** Bytes waiting to go to the plugin. */
  readonly queued: number;
  /** Bytes it has taken so far. */
  readonly taken: number;
}

export function watchInput(input: InputState, stallMs: number, onStall: () => void): () => void {
  let taken = input.taken;
  let since = Date.now();
  const timer = setInterval(
    () => {
      const now = input.taken;
      if (input.queued === 0 || now > taken) since = Date.now();
      taken = now;
      if (Date.now() - since < stallMs) return;
      clearInterval(timer);
      onStall();
    },
    Math.max(50, Math.min(1000, stallMs / 4)),
  );
  timer.unref();
  return () => clearInterval(timer);
}
