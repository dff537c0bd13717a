/** The `[admin]` settings: the status page and admin API are off unless enabled. */

export interface AdminConfig {
  /** Serve /admin (the page and the API). Off by default. */
  enabled: boolean;
  /**
   * Set: every client, loopback included, must send `Authorization: Bearer <token>` to the API.
   * Unset: only loopback clients are let in.
   */
  token?: string | undefined;
}

export const DEFAULT_ADMIN: AdminConfig = { enabled: false, token: undefined };

/** Read by the command line (serve and ctl); wins over `token` and `token_file`. */
export const ADMIN_TOKEN_ENV = "PORTICO_ADMIN_TOKEN";

/** A shorter token is guessable: refused, with how to make a good one. */
export const MIN_TOKEN_LENGTH = 16;

/** Why `token` can't be an admin token, or undefined when it can. */
export function tokenProblem(token: string): string | undefined {
  if (token.length < MIN_TOKEN_LENGTH) return `must be at least ${MIN_TOKEN_LENGTH} characters (found ${token.length})`;
  if (!/^[\x21-\x7e]+$/.test(token)) return "must be printable ASCII without spaces (it travels in an HTTP header)";
  return undefined;
}

export const TOKEN_FIX = "make one with `openssl rand -hex 32`";
