// Loaded on the first preview, like sharp: a server with previews off never needs it.
let htmlparser2: Promise<typeof import('htmlparser2')> | undefined;
const loadParser = async () => (await (htmlparser2 ??= import('htmlparser2'))).Parser;

/**
 * OpenGraph data of an HTML page, as Synapse extracts it: the og:, article: and profile: meta
 * properties, twitter: cards for what those lack, and when there is no og:title the first title
 * or heading, no og:image a microdata image or the largest sized image or any image or the icon,
 * no og:description the meta description or a summary of the page's text.
 */

export type OpenGraph = Record<string, string | number | null>;

/** Beyond this many tags of one prefix, a page is taken to be abusive and that prefix is ignored (Synapse's bound). */
const MAX_TAGS_PER_PREFIX = 50;
/** Text collected for a summary; a summary is at most 500 characters. */
const MAX_TEXT = 4096;

/** Elements whose text is no description: not displayed, or not the page's content. */
const TEXT_IGNORED = new Set(['head', 'header', 'nav', 'aside', 'footer', 'script', 'noscript', 'style', 'svg', 'iframe', 'video', 'canvas', 'img', 'picture', 'template', 'title']);
const ROLES_IGNORED = new Set(['directory', 'menu', 'menubar', 'toolbar']);
const TITLE_TAGS = new Set(['title', 'h1', 'h2', 'h3']);

/**
 * The page's text: the charset of a byte order mark, else of the Content-Type header, else of a
 * `<meta>` near the start, else UTF-8 if it is valid UTF-8, else Windows-1252 (which is what
 * pages labelled ISO-8859-1 are read as).
 */
export function decodeHtml(body: Buffer, contentType: string): string {
  if (body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf) return new TextDecoder('utf-8').decode(body);
  if (body[0] === 0xfe && body[1] === 0xff) return new TextDecoder('utf-16be').decode(body);
  if (body[0] === 0xff && body[1] === 0xfe) return new TextDecoder('utf-16le').decode(body);
  const candidates = [charsetParam(contentType), metaCharset(body)];
  for (const label of candidates) {
    if (!label) continue;
    try {
      const decoder = new TextDecoder(label);
      // A page that declares UTF-16 in ASCII cannot be UTF-16 (the spec's rule): UTF-8 then.
      if (decoder.encoding.startsWith('utf-16')) break;
      return decoder.decode(body);
    } catch {
      // an unknown label: try the next source
    }
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    return new TextDecoder('windows-1252').decode(body);
  }
}

function charsetParam(contentType: string): string | undefined {
  return /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(contentType)?.[1];
}

/** `<meta charset=...>` or `<meta http-equiv="Content-Type" content="...; charset=...">` (or an XML declaration) in the first 1024 bytes. */
function metaCharset(body: Buffer): string | undefined {
  const head = body.subarray(0, 1024).toString('latin1');
  return (
    /<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_:.-]+)/i.exec(head)?.[1] ?? /^\s*<\?xml[^>]*encoding\s*=\s*["']([a-zA-Z0-9_:.-]+)["']/i.exec(head)?.[1]
  );
}

interface Candidate {
  src: string;
  area: number;
}

/** The OpenGraph data of a decoded page (URLs as they are written; the caller resolves them). */
export async function parseOpenGraph(html: string): Promise<OpenGraph> {
  const Parser = await loadParser();
  const groups: Record<'og' | 'article' | 'profile' | 'twitter', Map<string, string>> = {
    og: new Map(),
    article: new Map(),
    profile: new Map(),
    twitter: new Map(),
  };
  const overflowed = new Set<string>();
  let title: string | undefined;
  let capturing: { tag: string; text: string } | undefined;
  let itempropImage: string | undefined;
  let metaDescription: string | undefined;
  let icon: string | undefined;
  let firstImage: string | undefined;
  let largest: Candidate | undefined;
  const ignoring: boolean[] = [];
  let ignoredDepth = 0;
  // Text nodes (a paragraph each, as Synapse counts them): the pieces between two tags joined.
  const texts: string[] = [];
  let textLength = 0;
  let pending = '';
  const flush = () => {
    if (pending.trim() !== '' && textLength < MAX_TEXT) {
      texts.push(pending);
      textLength += pending.length;
    }
    pending = '';
  };

  const addTag = (prefix: keyof typeof groups, key: string, value: string) => {
    const group = groups[prefix];
    if (overflowed.has(prefix)) return;
    if (!group.has(key) && group.size >= MAX_TAGS_PER_PREFIX) {
      overflowed.add(prefix);
      group.clear();
      return;
    }
    group.set(key, value);
  };

  const parser = new Parser(
    {
      onopentag(name, attrs) {
        flush();
        const ignored = TEXT_IGNORED.has(name) || ROLES_IGNORED.has(attrs.role ?? '');
        ignoring.push(ignored);
        if (ignored) ignoredDepth++;
        if (title === undefined && capturing === undefined && TITLE_TAGS.has(name)) capturing = { tag: name, text: '' };
        if (name === 'meta') {
          const content = attrs.content;
          if (!content) return;
          const property = attrs.property ?? '';
          const prefix = /^(og|article|profile):/.exec(property)?.[1] as 'og' | 'article' | 'profile' | undefined;
          if (prefix) addTag(prefix, property, content);
          const metaName = attrs.name ?? '';
          if (metaName.startsWith('twitter:')) addTag('twitter', metaName, content);
          if (itempropImage === undefined && /image/i.test(attrs.itemprop ?? '')) itempropImage = content;
          if (metaDescription === undefined && /description/i.test(metaName)) metaDescription = content;
        } else if (name === 'img' && attrs.src) {
          firstImage ??= attrs.src;
          const width = Number(attrs.width);
          const height = Number(attrs.height);
          if (width > 10 && height > 10 && (!largest || width * height > largest.area)) largest = { src: attrs.src, area: width * height };
        } else if (name === 'link' && attrs.href && icon === undefined && (attrs.rel ?? '').toLowerCase().split(/\s+/).includes('icon')) {
          icon = attrs.href;
        }
      },
      ontext(text) {
        if (capturing) capturing.text += text;
        if (ignoredDepth === 0 && textLength < MAX_TEXT && pending.length < MAX_TEXT) pending += text;
      },
      onclosetag(name) {
        flush();
        if (ignoring.pop()) ignoredDepth--;
        if (capturing && capturing.tag === name) {
          const text = capturing.text.trim();
          if (text !== '') title = text.replace(/\s+/g, ' ');
          capturing = undefined;
        }
      },
    },
    { decodeEntities: true, lowerCaseTags: true, lowerCaseAttributeNames: true },
  );
  parser.write(html);
  parser.end();
  flush();

  const og: OpenGraph = Object.fromEntries([...groups.og, ...groups.article, ...groups.profile]);
  for (const [key, value] of groups.twitter) {
    if (key === 'twitter:card' || key === 'twitter:creator' || key === 'twitter:site') continue;
    const ogKey = `og:${key.slice('twitter:'.length)}`;
    if (!(ogKey in og)) og[ogKey] = value;
  }
  if (!('og:title' in og)) og['og:title'] = title ?? null;
  if (!('og:image' in og)) {
    const image = itempropImage ?? largest?.src ?? firstImage ?? icon;
    if (image !== undefined) og['og:image'] = image;
  }
  if (!('og:description' in og)) og['og:description'] = metaDescription ?? summarize(texts);
  else if (typeof og['og:description'] === 'string' && og['og:description'] !== '') og['og:description'] = summarize([og['og:description']]);
  return og;
}

/**
 * A summary of at most 500 characters: paragraphs until there are 200, then cut at a word
 * boundary with an ellipsis if that went past 500 (Synapse's summary).
 */
export function summarize(paragraphs: readonly string[], minSize = 200, maxSize = 500): string | null {
  let description = '';
  for (const paragraph of paragraphs) {
    if (description.length >= minSize) break;
    const text = paragraph.replace(/\s+/g, ' ').trim();
    if (text !== '') description += `${text}\n\n`;
  }
  description = description.trim().replace(/[\t ]+/g, ' ').replace(/[\t \r\n]*[\r\n]+/g, '\n\n');
  if (description.length > maxSize) {
    let cut = '';
    for (const match of description.matchAll(/\s*\S+/g)) {
      const word = match[0];
      if (cut.length + word.length < maxSize) cut += word;
      else {
        if (cut.length < minSize) cut += word;
        break;
      }
    }
    description = `${cut.slice(0, maxSize).trim()}…`;
  }
  return description === '' ? null : description;
}
