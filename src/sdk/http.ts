/** Between the wire's request/response heads and WHATWG Request/Response, for both protocols. */

export type HeaderList = [string, string][];

export interface RequestHead {
  method: string;
  path: string;
  query?: string;
  headers?: HeaderList;
  upgrade?: string;
}

export function headersOf(list: HeaderList | undefined): Headers {
  const headers = new Headers();
  for (const [k, v] of list ?? []) {
    try {
      headers.append(k, v);
    } catch {
      // A header the WHATWG Headers class refuses cannot be shown to the handler.
    }
  }
  return headers;
}

export function urlOf(head: RequestHead, host: string): string {
  return `http://${host}${head.path}${head.query ? `?${head.query}` : ""}`;
}

/** Response headers as the wire wants them: repeated Set-Cookie stays repeated. */
export function headerList(headers: Headers): HeaderList {
  const out: HeaderList = [];
  for (const [k, v] of headers) if (k !== "set-cookie") out.push([k, v]);
  for (const c of headers.getSetCookie()) out.push(["set-cookie", c]);
  return out;
}

export const internalError = (): Response =>
  new Response("internal error\n", { status: 500, headers: { "content-type": "text/plain; charset=utf-8" } });
