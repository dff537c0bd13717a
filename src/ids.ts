/**
 * Fresh UUIDs (RFC 9562 version 4 layout) for request ids, inboxes and nexo's event and message
 * ids: several per request. crypto.randomUUID costs a random draw and a 16-byte serialisation
 * each; here the first 74 bits are drawn once per process and the last 48 count, so each id is a
 * slice and a hex number. Ids stay unique (a counter never repeats within a process, and processes
 * differ in their random part); they are names, not secrets, so being guessable costs nothing.
 */
import { randomUUID } from "node:crypto";

/** The random part, "xxxxxxxx-xxxx-4xxx-yxxx-": everything but the last 12 hex digits. */
let base = randomUUID().slice(0, 24);
let counter = 0;
const WRAP = 2 ** 48;

export function newUuid(): string {
  counter++;
  if (counter === WRAP) {
    // 2^48 ids later: draw a new random part rather than repeat one.
    base = randomUUID().slice(0, 24);
    counter = 1;
  }
  return base + counter.toString(16).padStart(12, "0");
}
