import type { Config } from '../../config/index.js';
import { SMS_TEMPLATE_VARS, type SmsConfig } from '../../config/sections/sms.js';
import type { SmsTemplateName } from '../types.js';

/** The app name in messages: sms.app_name, else email.app_name, else "Matrix". */
export function smsAppName(config: Config): string {
  return config.sms?.app_name ?? config.email?.app_name ?? 'Matrix';
}

/**
 * Fills a flow's template. Only the known placeholders are replaced, each exactly once in one pass,
 * so a value can never introduce another placeholder; control characters are dropped.
 */
export function renderSms(config: SmsConfig, template: SmsTemplateName, vars: Record<string, unknown>): string {
  const text = config.sms_templates[template];
  return text.replace(/\{([a-z_]+)\}/g, (whole, name: string) => {
    if (!(SMS_TEMPLATE_VARS as readonly string[]).includes(name)) return whole;
    const value = vars[name];
    // eslint-disable-next-line no-control-regex -- control characters are exactly what this drops
    return value === undefined || value === null ? '' : String(value).replace(/[\u0000-\u001f\u007f]/g, '');
  });
}
