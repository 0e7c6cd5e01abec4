import type { Clock } from '../../clock.js';
import type { Config } from '../../config/index.js';
import { isEmailConfigured } from '../../config/sections/email.js';
import type { EmailTemplateName, Outbox } from '../../delivery/types.js';
import type { Store } from '../../storage/index.js';
import { requireString, type JsonObject } from '../../validate.js';
import { addressBucket, type RateLimiter } from '../ratelimiter.js';
import { canonicaliseEmail } from './address.js';
import { ensureFlowOpen, ensureThreepidAllowed, isNextLinkHostAllowed, ownerRefusal, parseTokenRequest, unsupportedMedium } from './policy.js';
import { LinkRejected, type ThreepidFlow, type ValidationSessionService } from './validation-sessions.js';
import { absolute, emailLinkPath, submitTokenPath } from './urls.js';

export interface EmailValidationDeps {
  config: Config;
  store: Store;
  clock: Clock;
  limiter: RateLimiter;
  sessions: ValidationSessionService;
  outbox: Outbox;
  /** Renders mails; used to give refused requests the cost of a real one (see requestToken). */
  templates?: MailRenderer;
  publicBaseUrl: string;
  passwordsEnabled: () => boolean;
}

export interface MailRenderer {
  renderEmail(name: EmailTemplateName, vars: Record<string, unknown>, acceptLanguage?: string): unknown;
}

/** What the request tells of the client: its IP (for rate limits) and Accept-Language (for the mail). */
export interface ClientInfo {
  ip: string;
  acceptLanguage?: string;
}

/** The link's query: which session, its client secret, and the link token. */
export interface LinkParams {
  sid: string;
  client_secret: string;
  token: string;
}

/** Mail template per flow. */
const TEMPLATES: Record<ThreepidFlow, EmailTemplateName> = {
  registration: 'registration',
  password_reset: 'password_reset',
  add_threepid: 'add_threepid',
};

/**
 * Email validation as MSC2263 has it: Myelin mails a link (to a confirmation page) and a short code
 * itself. The generic session rules live in ValidationSessionService; this adds the email policy.
 */
export class EmailValidationService {
  constructor(private readonly deps: EmailValidationDeps) {}

  get enabled(): boolean {
    return isEmailConfigured(this.deps.config);
  }

  private get tokenLifetimeMs(): number {
    return this.deps.config.email?.validation_token_lifetime ?? 3_600_000;
  }

  async requestToken(flow: ThreepidFlow, body: JsonObject, ctx: ClientInfo): Promise<{ sid: string; submit_url: string }> {
    const { config, store, limiter, sessions, outbox, publicBaseUrl } = this.deps;
    const params = parseTokenRequest(body, config);
    const address = canonicaliseEmail(requireString(body, 'email', 512));
    ensureFlowOpen(config, flow, this.deps.passwordsEnabled(), 'email addresses');
    if (!this.enabled) throw unsupportedMedium(config, 'email', params.idServer);
    ensureThreepidAllowed(config, 'email', address);
    await limiter.takeAll([`3pid:ip:${addressBucket(ctx.ip)}`, `3pid:address:email:${address}`], config.rc_3pid_validation);

    const owner = await store.threepids.findUser('email', address);
    const refusal = ownerRefusal(flow, owner, config.request_token_inhibit_3pid_errors, 'Email');
    // With inhibit on, a refused request still makes a session (never validatable: nobody gets its
    // secrets) so the answer looks like any other, and the owner is told instead where it helps.
    const template: EmailTemplateName | null =
      refusal === undefined ? TEMPLATES[flow] : refusal === 'in_use' && flow === 'registration' ? 'already_in_use' : null;

    const { sid } = await sessions.request({
      medium: 'email',
      address,
      flow,
      clientSecret: params.clientSecret,
      sendAttempt: params.sendAttempt,
      nextLink: params.nextLink,
      withLink: true,
      tokenLifetimeMs: this.tokenLifetimeMs,
      deliver: async (work, d) => {
        const link = new URL(absolute(publicBaseUrl, emailLinkPath(flow)));
        link.searchParams.set('token', d.linkToken!);
        link.searchParams.set('client_secret', params.clientSecret);
        link.searchParams.set('sid', d.sid);
        if (template === null) {
          // Nothing is sent, but the mail is rendered all the same so the answer takes as long.
          this.deps.templates?.renderEmail(TEMPLATES[flow], { link: link.href, code: d.code }, ctx.acceptLanguage);
          return;
        }
        const vars = template === 'already_in_use' ? {} : { link: link.href, code: d.code };
        await outbox.within(work).enqueue(
          { channel: 'email', to: address, template, vars, acceptLanguage: ctx.acceptLanguage },
          { dedupeKey: `email:${d.sid}:${d.sendAttempt}` },
        );
      },
    });
    return { sid, submit_url: absolute(publicBaseUrl, submitTokenPath(flow, 'email')) };
  }

  /** GET of a link: whether it would work (and where success would lead). Never validates anything. */
  async checkLink(flow: ThreepidFlow, link: LinkParams): Promise<{ nextLink: string | null } | false> {
    try {
      const row = await this.deps.sessions.checkLink({ ...this.linkArgs(link), medium: 'email', flow });
      return { nextLink: this.allowedNextLink(row.next_link) };
    } catch (err) {
      if (err instanceof LinkRejected) return false;
      throw err;
    }
  }

  /**
   * POST from the confirmation page: validates the session. Returns where to send the browser
   * (next_link, when still allowed) or null for the success page; false when the link is no good.
   */
  async confirmLink(flow: ThreepidFlow, link: LinkParams): Promise<{ nextLink: string | null } | false> {
    try {
      const row = await this.deps.sessions.submitLink({ ...this.linkArgs(link), medium: 'email', flow });
      return { nextLink: this.allowedNextLink(row.next_link) };
    } catch (err) {
      if (err instanceof LinkRejected) return false;
      throw err;
    }
  }

  /** The next_link a session stored, if the current config still allows it. */
  allowedNextLink(nextLink: string | null): string | null {
    if (nextLink === null) return null;
    try {
      const url = new URL(nextLink);
      if ((url.protocol === 'http:' || url.protocol === 'https:') && isNextLinkHostAllowed(this.deps.config, url)) return url.href;
    } catch {
      return null;
    }
    return null;
  }

  private linkArgs(link: LinkParams) {
    return { sid: link.sid, clientSecret: link.client_secret, token: link.token };
  }
}
