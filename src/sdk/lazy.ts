/**
 * The SDK's light stand-ins (the request, the response, the request's headers) answer a few
 * members themselves and hand every other member of the WHATWG class to a real object, built or
 * filled on first use. `handOff` makes those hand-offs: each method and getter of `native` the
 * stand-in does not define itself runs on `target(this)`; then `native` goes behind the stand-in's
 * prototype, so `instanceof` holds.
 */
export function handOff<T>(stand: object, native: object, target: (self: T) => object): void {
  for (const key of Reflect.ownKeys(native)) {
    if (key === "constructor" || Object.hasOwn(stand, key)) continue;
    const desc = Object.getOwnPropertyDescriptor(native, key);
    if (typeof desc?.value === "function") {
      const method = desc.value as (...a: unknown[]) => unknown;
      Object.defineProperty(stand, key, {
        value(this: T, ...args: unknown[]) {
          return method.apply(target(this), args);
        },
        writable: true,
        configurable: true,
      });
    } else if (desc?.get) {
      const get = desc.get;
      Object.defineProperty(stand, key, {
        get(this: T) {
          return get.call(target(this));
        },
        configurable: true,
      });
    }
  }
  Object.setPrototypeOf(stand, native);
}
