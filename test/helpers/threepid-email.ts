import assert from 'node:assert/strict';
import { SmtpSink, type ReceivedMail } from './smtp.js';
import { startTestServer, type Engine, type TestServer, type TestServerOptions } from './server.js';

/** A homeserver that verifies email itself, wired to a real SMTP sink. */
export interface EmailEnv {
  server: TestServer;
  smtp: SmtpSink;
  close(): Promise<void>;
}

export async function startEmailEnv(engine: Engine, overrides: Record<string, unknown> = {}, options: TestServerOptions = {}): Promise<EmailEnv> {
  const smtp = await SmtpSink.started();
  const { email, ...rest } = overrides as { email?: Record<string, unknown> };
  const server = await startTestServer(
    engine,
    { email: smtp.emailConfig(email ?? {}), rc_3pid_validation: { per_second: 1000, burst_count: 1000 }, ...rest },
    options,
  );
  return {
    server,
    smtp,
    async close() {
      await server.close();
      await smtp.stop();
    },
  };
}

/** The validation link in a mail's text part. */
export function linkOf(mail: ReceivedMail): string {
  const m = /https?:\/\/\S+\/submit_token\?\S+/.exec(mail.text);
  assert.ok(m, `no link in mail: ${mail.text}`);
  return m[0];
}

/** The short numeric code in a mail's text part. */
export function codeOf(mail: ReceivedMail): string {
  const m = /code[^0-9\n]*:\s*(\d{6})\b/i.exec(mail.text);
  assert.ok(m, `no code in mail: ${mail.text}`);
  return m[1]!;
}

const decode = (s: string) =>
  s.replace(/&(amp|lt|gt|quot|#39|#x27);/g, (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'", '#x27': "'" })[e]!);

/** The first form of a page, as a browser sees it: where it posts, and its fields. */
export function formOf(html: string, pageUrl: string): { action: string; method: string; fields: URLSearchParams } {
  const form = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html);
  assert.ok(form, `no form on page: ${html.slice(0, 500)}`);
  const attr = (tag: string, name: string) => new RegExp(`\\b${name}\\s*=\\s*"([^"]*)"`, 'i').exec(tag)?.[1];
  const action = new URL(decode(attr(form[1]!, 'action') ?? ''), pageUrl).href;
  const method = (attr(form[1]!, 'method') ?? 'get').toLowerCase();
  const fields = new URLSearchParams();
  for (const input of form[2]!.matchAll(/<input\b[^>]*>/gi)) {
    const name = attr(input[0], 'name');
    if (name !== undefined) fields.append(decode(name), decode(attr(input[0], 'value') ?? ''));
  }
  return { action, method, fields };
}

/** Opens a link in a "browser": GET the page. */
export async function openLink(link: string): Promise<{ status: number; html: string; headers: Headers }> {
  const res = await fetch(link, { redirect: 'manual', headers: { accept: 'text/html' } });
  return { status: res.status, html: await res.text(), headers: res.headers };
}

/** Opens a link and presses the confirmation page's button, as a browser would. */
export async function followLink(link: string): Promise<{ status: number; html: string; headers: Headers; location: string | null }> {
  const pageRes = await openLink(link);
  assert.equal(pageRes.status, 200, `confirmation page: ${pageRes.html.slice(0, 300)}`);
  const form = formOf(pageRes.html, link);
  assert.equal(form.method, 'post');
  const res = await fetch(form.action, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: new URL(link).origin },
    body: form.fields.toString(),
  });
  return { status: res.status, html: await res.text(), headers: res.headers, location: res.headers.get('location') };
}

let counter = 0;
/** A fresh client secret, as a client generates one. */
export function secret(): string {
  return `cs_${Date.now().toString(36)}_${(counter++).toString(36)}_${Math.random().toString(36).slice(2)}`;
}
