import { mountPrefixProblem } from "../manifest/index.js";
import { underPrefix } from "../target/index.js";

/** The daemon's own space. A plugin may not take, cover or sit under any of these. */
export const DEFAULT_RESERVED_PREFIXES = ["/health", "/metrics", "/pair", "/admin", "/.well-known"] as const;

export interface Route {
  pluginId: string;
  /** Normalized mount prefix (see manifest.mountPrefixProblem). */
  prefix: string;
  /** Time to the response head. */
  timeoutMs: number;
  /** Streams (protocol v2) with no data either way for this long are cut. */
  idleTimeoutMs: number;
  /** The manifest's max_body_bytes; undefined: the daemon's default for buffered (v1) bodies, none for streamed ones. */
  maxBodyBytes: number | undefined;
}

export type Match = { kind: "reserved"; prefix: string } | { kind: "plugin"; route: Route };

export type RouteErrorReason = "invalid" | "reserved" | "taken";

export class RouteError extends Error {
  constructor(
    readonly reason: RouteErrorReason,
    message: string,
  ) {
    super(message);
    this.name = "RouteError";
  }
}

/**
 * Longest-prefix table over whole path segments.
 *
 * Matching walks the request path's segment boundaries from the longest candidate down and looks
 * each one up in a Map, so its cost grows with the depth of the path, never with the number of
 * routes. Reserved prefixes are compared case-insensitively, so no spelling of `/health` can be
 * claimed by a plugin or routed to one.
 */
export class Router {
  /** Every route, held in one object so that a reload can replace all of them in one assignment. */
  #table: Table = emptyTable();
  readonly #reserved: Map<string, string>;

  constructor(reserved: readonly string[] = DEFAULT_RESERVED_PREFIXES) {
    this.#reserved = new Map();
    for (const r of reserved) {
      const problem = mountPrefixProblem(r);
      if (problem) throw new RouteError("invalid", `reserved prefix "${r}": ${problem}`);
      this.#reserved.set(r.toLowerCase(), r);
    }
  }

  get reservedPrefixes(): string[] {
    return [...this.#reserved.values()];
  }

  /** Adds or replaces `route.pluginId`'s route. Throws RouteError, leaving the table unchanged. */
  register(route: Route): void {
    const problem = mountPrefixProblem(route.prefix);
    if (problem) throw new RouteError("invalid", `plugin "${route.pluginId}": mount_prefix "${route.prefix}": ${problem}`);
    const folded = route.prefix.toLowerCase();
    for (const [reservedFolded, reserved] of this.#reserved) {
      if (underPrefix(folded, reservedFolded) || underPrefix(reservedFolded, folded)) {
        throw new RouteError(
          "reserved",
          `plugin "${route.pluginId}": mount_prefix "${route.prefix}" overlaps the reserved prefix "${reserved}"; choose a prefix outside ${this.reservedPrefixes.join(", ")}`,
        );
      }
    }
    const holder = this.#table.byFoldedPrefix.get(folded);
    if (holder && holder.pluginId !== route.pluginId) {
      throw new RouteError(
        "taken",
        `plugin "${route.pluginId}": mount_prefix "${route.prefix}" is already held by plugin "${holder.pluginId}" ("${holder.prefix}"); give one of them another prefix`,
      );
    }
    this.unregister(route.pluginId);
    const t = this.#table;
    t.byPrefix.set(route.prefix, route);
    t.byFoldedPrefix.set(folded, route);
    t.byPlugin.set(route.pluginId, route);
  }

  unregister(pluginId: string): boolean {
    const t = this.#table;
    const old = t.byPlugin.get(pluginId);
    if (!old) return false;
    t.byPlugin.delete(pluginId);
    t.byPrefix.delete(old.prefix);
    t.byFoldedPrefix.delete(old.prefix.toLowerCase());
    return true;
  }

  /** A copy to plan changes on (same reserved prefixes, same routes); this router is untouched. */
  clone(): Router {
    const copy = new Router(this.reservedPrefixes);
    const t = this.#table;
    copy.#table = { byPrefix: new Map(t.byPrefix), byFoldedPrefix: new Map(t.byFoldedPrefix), byPlugin: new Map(t.byPlugin) };
    return copy;
  }

  /**
   * Takes `plan`'s routes (a clone of this router, changed) as its own in one assignment: a request
   * matched at any moment sees the whole old table or the whole new one, never a mix.
   */
  adopt(plan: Router): void {
    const t = plan.#table;
    plan.#table = emptyTable();
    this.#table = t;
  }

  /** `path` must come from target.normalizeTarget. */
  match(path: string): Match | undefined {
    const reserved = longest(this.#reserved, path.toLowerCase());
    if (reserved !== undefined) return { kind: "reserved", prefix: reserved };
    const route = longest(this.#table.byPrefix, path);
    return route ? { kind: "plugin", route } : undefined;
  }

  routeOf(pluginId: string): Route | undefined {
    return this.#table.byPlugin.get(pluginId);
  }

  /** Every route, sorted by prefix. */
  routes(): Route[] {
    return [...this.#table.byPrefix.values()].sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0));
  }
}

interface Table {
  byPrefix: Map<string, Route>;
  /** Lower-cased prefix → route, to refuse prefixes that differ only in case. */
  byFoldedPrefix: Map<string, Route>;
  byPlugin: Map<string, Route>;
}

function emptyTable(): Table {
  return { byPrefix: new Map(), byFoldedPrefix: new Map(), byPlugin: new Map() };
}

/** The value under the longest key that is a whole-segment prefix of `path`. */
function longest<V>(table: Map<string, V>, path: string): V | undefined {
  let end = path.length;
  while (end > 0) {
    const hit = table.get(end === path.length ? path : path.slice(0, end));
    if (hit !== undefined) return hit;
    end = path.lastIndexOf("/", end - 1);
  }
  return undefined;
}
