import type { IncomingHttpHeaders } from 'node:http';
import { HtmlReply } from '../../http/reply.js';
import type { Services } from '../../services/index.js';

const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'";

/**
 * A page from the templates (Synapse's names, e.g. registration_confirmation), in the reader's
 * language when a translation exists. `formTargets` are origins a form on it may lead to (a
 * next_link the POST redirects to), since browsers apply form-action to the redirect as well.
 */
export function page(
  services: Services,
  name: string,
  vars: Record<string, unknown>,
  headers: IncomingHttpHeaders,
  status = 200,
  formTargets: string[] = [],
): HtmlReply {
  const html = services.templates.renderPage(name, vars, headers['accept-language']);
  const formAction = ["'self'", ...formTargets].join(' ');
  return new HtmlReply(status, html, { 'content-security-policy': `${CSP}; form-action ${formAction}` });
}
