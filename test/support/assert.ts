import assert from "node:assert/strict";

/**
 * The checked form of `value!`: `value` itself, or an assertion failure naming `what` when it is
 * undefined or null (instead of a TypeError somewhere further on).
 */
export function defined<T>(value: T, what: string): NonNullable<T> {
  assert.ok(value !== undefined && value !== null, `expected ${what}`);
  return value;
}
