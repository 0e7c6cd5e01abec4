import type { Readable } from 'node:stream';

/** A handler's answer with a status other than 200, or with extra headers. */
export class JsonReply {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Record<string, string> = {},
  ) {}
}

/** An HTML page (for the links people open from a mail). */
export class HtmlReply {
  constructor(
    readonly status: number,
    readonly html: string,
    readonly headers: Record<string, string> = {},
  ) {}
}

/** A redirect (e.g. to a validated next_link). */
export class RedirectReply {
  constructor(readonly location: string) {}
}

/** Bytes streamed as they are read (a media download), with their headers. */
export class StreamReply {
  constructor(
    readonly status: number,
    readonly stream: Readable,
    readonly headers: Record<string, string>,
  ) {}
}
