import { randomToken } from '../crypto/tokens.js';

/** A commented homeserver.yaml with fresh secrets, in the spirit of Synapse's --generate-config. */
export function generateConfig(serverName: string, options: { postgres?: boolean } = {}): string {
  const database = options.postgres
    ? `database:
  name: psycopg2
  args:
    user: myelin
    # password: set MYELIN__DATABASE__ARGS__PASSWORD in the environment instead of here
    database: myelin
    host: 127.0.0.1
    port: 5432
    cp_max: 10`
    : `database:
  name: sqlite3
  args:
    database: ./data/homeserver.db`;
  return `# Myelin homeserver configuration. Key names follow Synapse's homeserver.yaml.
# Any key can also be set from the environment: MYELIN__<KEY>__<SUBKEY>=value,
# e.g. MYELIN__REGISTRATION_SHARED_SECRET or MYELIN__EMAIL__SMTP_PASS.

# The domain in your users' IDs (@alice:${serverName}). It cannot be changed later.
server_name: "${serverName}"

# The URL clients use to reach this server (and the base of links in mails).
public_baseurl: "https://${serverName}/"

listeners:
  - port: 8008
    bind_addresses: ["127.0.0.1"]
    type: http
    # Set when a reverse proxy in front of Myelin sets X-Forwarded-For. Unlike Synapse, which
    # believes the leftmost entry from whoever connects, Myelin believes the header only from
    # trusted_proxies and takes the rightmost address that is not one of them.
    x_forwarded: true
    # The proxies' addresses or CIDR ranges (or loopback, linklocal, uniquelocal). Default:
    # [loopback], a proxy on this host. A proxy elsewhere (another container, a load balancer)
    # must be listed, or every client is counted as the proxy's address.
    # trusted_proxies: ["10.0.0.0/8"]
    resources:
      - names: [client]

${database}

# The server's Ed25519 signing key, in Synapse's file format (a Synapse key file can be copied
# here). Made on first start when missing; keep it: it signs this server's events. Every process
# on one PostgreSQL database must use the same file.
signing_key_path: "./data/${serverName}.signing.key"

# The room version of new rooms: 10 or 11.
default_room_version: "11"

log_level: info

# Registration. Open registration needs a verification step (email or phone) unless
# enable_registration_without_verification is set, which invites spam bots.
enable_registration: false
enable_registration_without_verification: false
# Require a registration token (made with the admin API, e.g. synadm regtok new) to register.
#registration_requires_token: true

# Lets admins create accounts with \`npm run myelin -- register-user\` and Synapse's shared-secret API.
registration_shared_secret: "${randomToken(32)}"

# Encrypts queued mail and SMS (their links and codes) in the database; the same in every process.
macaroon_secret_key: "${randomToken(32)}"

password_config:
  enabled: true
  # argon2id for new passwords; bcrypt hashes (e.g. imported from Synapse) are still verified.
  algorithm: argon2id
  policy:
    enabled: false
    minimum_length: 8
    require_digit: false
    require_symbol: false
    require_lowercase: false
    require_uppercase: false

# Email: Myelin verifies addresses itself (MSC2263) for registration, password reset and adding an
# address. Same keys as Synapse's email section; templates.custom_template_directory overrides any
# template (Synapse's names) by file name.
#email:
#  smtp_host: mail.${serverName}
#  smtp_port: 587
#  smtp_user: myelin
#  # smtp_pass: set MYELIN__EMAIL__SMTP_PASS in the environment
#  require_transport_security: true
#  notif_from: "%(app)s <noreply@${serverName}>"
#  app_name: Matrix
#  validation_token_lifetime: 1h
#templates:
#  custom_template_directory: /etc/myelin/templates

# Phone numbers: Myelin sends the verification SMS itself.
#sms:
#  provider: twilio            # twilio | webhook | log
#  twilio:
#    account_sid: ACxxxxxxxx
#    # auth_token: set MYELIN__SMS__TWILIO__AUTH_TOKEN in the environment
#    from: "+15005550006"
#  validation_token_lifetime: 10m
#  max_per_number_per_day: 10
#  max_per_hour: 500
#  denied_country_codes: []
#enable_msisdn_password_reset: false

# 3PID rules (Synapse names).
#registrations_require_3pid: [email]
#allowed_local_3pids:
#  - {medium: email, pattern: '.*@${serverName.replace(/\./g, '\\.')}'}
enable_3pid_changes: true
request_token_inhibit_3pid_errors: false
#next_link_domain_whitelist: ["${serverName}"]
rc_3pid_validation: {per_second: 0.003, burst_count: 5}
# Myelin: mailed and texted codes tried against one address per day, over all its sessions
# (5 per session besides). Past it even the right code waits; a mail's link still works.
max_code_attempts_per_address_per_day: 20

# bcrypt cost, used when password_config.algorithm is bcrypt.
bcrypt_rounds: 12

# Rate limits: per_second refills a bucket of burst_count requests.
rc_login:
  address: {per_second: 0.003, burst_count: 5}
  account: {per_second: 0.003, burst_count: 5}
  failed_attempts: {per_second: 0.17, burst_count: 3}
rc_registration: {per_second: 0.17, burst_count: 3}
`;
}
