import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import nunjucks from 'nunjucks';
import type { EmailTemplateName } from './types.js';

/** The templates shipped with Myelin; an admin's custom_template_directory comes first. */
export const DEFAULT_TEMPLATE_DIR = fileURLToPath(new URL('../../templates/', import.meta.url));

/** The language of the templates without a language tag. */
const DEFAULT_LANGUAGE = 'en';

export interface RenderedEmail {
  subject: string;
  text: string;
  html: string;
  /** The language chosen from Accept-Language, or undefined for the default templates. */
  language: string | undefined;
}

export interface TemplatesOptions {
  customDirectory?: string;
  /** Defaults to the shipped templates; tests may point elsewhere. */
  defaultDirectory?: string;
  /** Variables every template sees (a render's own variables win). */
  globals: { app_name: string; server_name: string } & Record<string, unknown>;
  /** Subject line per mail template, already substituted. */
  subjects: Record<EmailTemplateName, string>;
}

/** Language tags from an Accept-Language header, most preferred first (q=0 and malformed parts dropped). */
export function parseAcceptLanguage(header: string | undefined): string[] {
  if (!header) return [];
  const entries: { tag: string; q: number; order: number }[] = [];
  for (const [order, part] of header.slice(0, 1000).split(',').slice(0, 50).entries()) {
    const [rawTag, ...params] = part.split(';');
    const tag = (rawTag ?? '').trim().toLowerCase();
    if (!/^(\*|[a-z]{1,8}(-[a-z0-9]{1,8})*)$/.test(tag)) continue;
    let q = 1;
    for (const param of params) {
      const m = /^\s*q\s*=\s*([0-9](?:\.[0-9]{0,3})?)\s*$/i.exec(param);
      if (m) q = Number(m[1]);
    }
    if (q > 0 && q <= 1) entries.push({ tag, q, order });
  }
  entries.sort((a, b) => b.q - a.q || a.order - b.order);
  return entries.map((e) => e.tag);
}

const TRANSLATED = /^(.+)\.([a-z]{2,3}(?:-[a-z0-9]{1,8})*)\.(html|txt)$/i;

/**
 * Mail and page templates (Jinja syntax, via nunjucks). `.html` templates escape every variable;
 * `.txt` ones do not. `<name>.<lang>.<ext>` is the translation of `<name>.<ext>`.
 */
export class Templates {
  private readonly html: nunjucks.Environment;
  private readonly text: nunjucks.Environment;
  /** `name.ext|lang` for every translated file found. */
  private readonly translations = new Set<string>();
  private readonly directories: string[];

  constructor(private readonly options: TemplatesOptions) {
    this.directories = [options.customDirectory, options.defaultDirectory ?? DEFAULT_TEMPLATE_DIR].filter((d): d is string => d !== undefined);
    for (const dir of this.directories) {
      if (!existsSync(dir)) throw new Error(`template directory ${dir} does not exist`);
      for (const file of readdirSync(dir)) {
        const m = TRANSLATED.exec(file);
        if (m) this.translations.add(`${m[1]}.${m[3]!.toLowerCase()}|${m[2]!.toLowerCase()}`);
      }
    }
    const make = (autoescape: boolean) => {
      const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(this.directories), { autoescape, throwOnUndefined: false });
      // The helpers Synapse offers to its templates, so that an admin's Synapse templates render.
      env.addFilter('localpart_from_email', (address: unknown) => String(address ?? '').split('@')[0] ?? '');
      env.addFilter('format_ts', (ts: unknown) => new Date(Number(ts)).toUTCString());
      return env;
    };
    this.html = make(true);
    this.text = make(false);
  }

  /** Whether a template file exists (custom or shipped). */
  has(file: string): boolean {
    return this.directories.some((dir) => existsSync(`${dir}/${file}`));
  }

  /** Loads the given templates now, so that a broken custom template stops start-up, not a request. */
  check(files: string[]): void {
    for (const file of files) {
      if (!this.has(file)) continue;
      (file.endsWith('.html') ? this.html : this.text).getTemplate(file, true);
    }
  }

  /** The preferred language that has a translation of one of `files`; undefined means the default. */
  pickLanguage(files: string[], acceptLanguage: string | undefined): string | undefined {
    for (const tag of parseAcceptLanguage(acceptLanguage)) {
      if (tag === '*') return undefined;
      const parts = tag.split('-');
      for (let n = parts.length; n > 0; n--) {
        const candidate = parts.slice(0, n).join('-');
        if (candidate === DEFAULT_LANGUAGE) return undefined;
        if (files.some((f) => this.translations.has(`${f}|${candidate}`))) return candidate;
      }
    }
    return undefined;
  }

  private localized(file: string, language: string | undefined): string {
    if (!language || !this.translations.has(`${file}|${language}`)) return file;
    const dot = file.lastIndexOf('.');
    return `${file.slice(0, dot)}.${language}${file.slice(dot)}`;
  }

  private vars(vars: Record<string, unknown>): Record<string, unknown> {
    return { ...this.options.globals, ...vars };
  }

  /** Renders an HTML page (e.g. 'registration_confirmation') in the reader's language when available. */
  renderPage(name: string, vars: Record<string, unknown> = {}, acceptLanguage?: string): string {
    const file = `${name}.html`;
    const language = this.pickLanguage([file], acceptLanguage);
    return this.html.render(this.localized(file, language), this.vars(vars));
  }

  /** Renders a mail from the named files (not translated), under a subject already made. */
  renderMail(files: { html: string; text: string }, subject: string, vars: Record<string, unknown>): RenderedEmail {
    const context = this.vars(vars);
    // The subject holds names people chose: no control character may reach the header.
    // eslint-disable-next-line no-control-regex
    const line = subject.replace(/[\s\x00-\x1f\x7f]+/g, ' ').trim();
    return { subject: line, text: this.text.render(files.text, context), html: this.html.render(files.html, context), language: undefined };
  }

  /** Renders a mail's subject, text and HTML, all in one language (the reader's when available). */
  renderEmail(name: EmailTemplateName, vars: Record<string, unknown> = {}, acceptLanguage?: string): RenderedEmail {
    const files = [`${name}.html`, `${name}.txt`];
    const language = this.pickLanguage(files, acceptLanguage);
    const context = this.vars(vars);
    const subjectFile = `${name}_subject.txt`;
    const translatedSubject = language && this.translations.has(`${subjectFile}|${language}`);
    const subject = translatedSubject ? this.text.render(this.localized(subjectFile, language), context) : this.options.subjects[name];
    return {
      subject: subject.replace(/\s+/g, ' ').trim(),
      text: this.text.render(this.localized(`${name}.txt`, language), context),
      html: this.html.render(this.localized(`${name}.html`, language), context),
      language,
    };
  }
}
