import { createHash, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A fake identity server (identity service API v2) on 127.0.0.1, for the homeserver's bind and
 * unbind calls. It checks each unbind as a real one would: the X-Matrix Authorization header is
 * parsed, the origin's key fetched from the homeserver's GET /_matrix/key/v2/server (itself
 * checked against its own signature), and the signature verified over the canonical JSON of
 * {method, uri, origin, destination, content}, with destination its own name and the user's
 * server the origin. A request that fails any check is refused (403 M_FORBIDDEN) and recorded as
 * refused. Its canonical JSON and signature checks are its own, not the homeserver's code.
 */

export interface UnbindCall {
  /** The X-Matrix parameters. */
  auth: Record<string, string>;
  body: { mxid?: string; threepid?: { medium?: string; address?: string } };
  /** Why the request was refused; undefined when its signature was good. */
  refused?: string;
}

/**
 * How it answers good unbinds: 'ok' 200; 'unsupported' the status given with no Matrix error
 * (an identity server that does not unbind); 'error' 403 with a Matrix error; 'hang' never.
 */
export type UnbindMode = { kind: 'ok' } | { kind: 'unsupported'; status: 400 | 404 | 501 } | { kind: 'error'; errcode: string } | { kind: 'hang' };

export class FakeIdentityServer {
  /** The homeserver whose key signs the unbinds (set once it runs). */
  homeserverUrl = '';
  /** Sessions this identity server "validated": sid -> what binding it binds. */
  readonly sessions = new Map<string, { medium: string; address: string }>();
  readonly unbinds: UnbindCall[] = [];
  readonly binds: Record<string, unknown>[] = [];
  mode: UnbindMode = { kind: 'ok' };
  /** Third-party invites: the bindings /lookup answers ("medium address" -> mxid), the store-invite calls, and its keys. */
  readonly bindings = new Map<string, string>();
  readonly storedInvites: Record<string, unknown>[] = [];
  readonly lookups: Record<string, unknown>[] = [];
  /** Public keys (unpadded base64) whose isvalid answers false. */
  readonly revoked = new Set<string>();
  readonly pepper = 'fake-pepper';
  private readonly longTerm = generateKeyPairSync('ed25519');
  private readonly ephemeral = generateKeyPairSync('ed25519');
  private nextToken = 1;
  private server: Server | undefined;
  private readonly hanging = new Set<ServerResponse>();

  private constructor(private port: number) {}

  static async start(): Promise<FakeIdentityServer> {
    const fake = new FakeIdentityServer(0);
    await fake.start();
    return fake;
  }

  /** host:port, as clients name it in id_server and the homeserver in X-Matrix `destination`. */
  get name(): string {
    return `127.0.0.1:${this.port}`;
  }

  get url(): string {
    return `http://${this.name}`;
  }

  /** Its long-term and ephemeral public keys, in unpadded base64, as store-invite hands them out. */
  get longTermKey(): string {
    return rawKey(this.longTerm.publicKey);
  }

  get ephemeralKey(): string {
    return rawKey(this.ephemeral.publicKey);
  }

  /** `object` signed as this identity server signs invite proofs (its name, key ed25519:0), with its long-term key or the ephemeral one. */
  sign<T extends Record<string, unknown>>(object: T, key: 'long-term' | 'ephemeral' = 'long-term'): T & { signatures: Record<string, Record<string, string>> } {
    const pair = key === 'long-term' ? this.longTerm : this.ephemeral;
    const signature = sign(null, Buffer.from(canonicalJson(object), 'utf8'), pair.privateKey).toString('base64').replace(/=+$/, '');
    return { ...object, signatures: { [this.name]: { 'ed25519:0': signature } } };
  }

  /** Unbinds whose signature was good. */
  get verified(): UnbindCall[] {
    return this.unbinds.filter((c) => c.refused === undefined);
  }

  /** Listens (again, on the same port after stop()). */
  async start(): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Stops listening and drops every connection: the identity server is down. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let raw = '';
    for await (const chunk of req) raw += (chunk as Buffer).toString('utf8');
    const reply = (status: number, body?: unknown) => {
      if (body === undefined) return void res.writeHead(status).end();
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    let body: Record<string, unknown> = {};
    try {
      if (req.method === 'POST') body = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      return reply(400, { errcode: 'M_NOT_JSON', error: 'not JSON' });
    }
    const url = new URL(req.url ?? '/', 'http://fake');
    const bearer = /^Bearer \S+$/.test(req.headers.authorization ?? '');
    if (url.pathname === '/_matrix/identity/v2/hash_details' && req.method === 'GET') {
      if (!bearer) return reply(401, { errcode: 'M_UNAUTHORIZED', error: 'no token' });
      return reply(200, { algorithms: ['none', 'sha256'], lookup_pepper: this.pepper });
    }
    if (url.pathname === '/_matrix/identity/v2/lookup' && req.method === 'POST') {
      if (!bearer) return reply(401, { errcode: 'M_UNAUTHORIZED', error: 'no token' });
      this.lookups.push(body);
      if (body.algorithm !== 'sha256' || body.pepper !== this.pepper || !Array.isArray(body.addresses)) return reply(400, { errcode: 'M_INVALID_PEPPER', error: 'bad lookup' });
      const byHash = new Map([...this.bindings].map(([threepid, mxid]) => {
        const [medium, address] = threepid.split(' ');
        return [createHash('sha256').update(`${address} ${medium} ${this.pepper}`).digest('base64url'), mxid];
      }));
      const mappings: Record<string, string> = {};
      for (const hash of body.addresses as string[]) if (byHash.has(hash)) mappings[hash] = byHash.get(hash)!;
      return reply(200, { mappings });
    }
    if (url.pathname === '/_matrix/identity/v2/store-invite' && req.method === 'POST') {
      if (!bearer) return reply(401, { errcode: 'M_UNAUTHORIZED', error: 'no token' });
      this.storedInvites.push(body);
      const isValid = `${this.url}/_matrix/identity/v2/pubkey/isvalid`;
      return reply(200, {
        token: `tok${this.nextToken++}`,
        display_name: 'c...@e...',
        public_keys: [
          { public_key: this.longTermKey, key_validity_url: isValid },
          { public_key: this.ephemeralKey, key_validity_url: `${this.url}/_matrix/identity/v2/pubkey/ephemeral/isvalid` },
        ],
      });
    }
    if ((url.pathname === '/_matrix/identity/v2/pubkey/isvalid' || url.pathname === '/_matrix/identity/v2/pubkey/ephemeral/isvalid') && req.method === 'GET') {
      const key = url.searchParams.get('public_key') ?? '';
      return reply(200, { valid: (key === this.longTermKey || key === this.ephemeralKey) && !this.revoked.has(key) });
    }
    if (req.method === 'POST' && req.url === '/_matrix/identity/v2/3pid/bind') {
      this.binds.push(body);
      const session = this.sessions.get(String(body.sid));
      if (!session) return reply(400, { errcode: 'M_SESSION_NOT_VALIDATED', error: 'Validation session not validated' });
      return reply(200, { ...session, mxid: body.mxid, not_before: 0, not_after: 4102444800000, ts: Date.now(), signatures: {} });
    }
    if (req.method === 'POST' && req.url === '/_matrix/identity/v2/3pid/unbind') {
      const call: UnbindCall = { auth: {}, body: body as UnbindCall['body'] };
      this.unbinds.push(call);
      const refused = await this.checkSignature(req, body, call);
      if (refused !== undefined) {
        call.refused = refused;
        return reply(403, { errcode: 'M_FORBIDDEN', error: refused });
      }
      const mode = this.mode;
      if (mode.kind === 'hang') return void this.hanging.add(res);
      if (mode.kind === 'unsupported') return reply(mode.status);
      if (mode.kind === 'error') return reply(403, { errcode: mode.errcode, error: 'refused by the identity server' });
      return reply(200, {});
    }
    reply(404, { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' });
  }

  /** Undefined when the request is signed by the user's homeserver for this identity server; else why not. */
  private async checkSignature(req: IncomingMessage, content: Record<string, unknown>, call: UnbindCall): Promise<string | undefined> {
    const header = req.headers.authorization ?? '';
    const auth = parseXMatrix(header);
    if (!auth) return `not an X-Matrix authorization: ${header.slice(0, 100)}`;
    call.auth = auth;
    const { origin, destination, key: keyId, sig } = auth;
    if (!origin || !keyId || !sig) return 'origin, key and sig are required';
    if (destination !== this.name) return `destination ${destination} is not ${this.name}`;
    const mxid = typeof content.mxid === 'string' ? content.mxid : '';
    if (mxid.slice(mxid.indexOf(':') + 1) !== origin) return `${origin} does not control ${mxid}`;
    const key = await this.fetchKey(origin, keyId);
    if (typeof key === 'string') return key;
    const signed = { method: req.method, uri: req.url, origin, destination, content };
    return verifySignature(signed, sig, key) ? undefined : 'Invalid homeserver signature';
  }

  /** The origin's key `keyId` from its GET /_matrix/key/v2/server, checked against that answer's own signature. */
  private async fetchKey(origin: string, keyId: string): Promise<KeyObject | string> {
    const res = await fetch(`${this.homeserverUrl}/_matrix/key/v2/server`);
    if (!res.ok) return `key fetch: ${res.status}`;
    const keys = (await res.json()) as { server_name: string; verify_keys: Record<string, { key: string }>; signatures: Record<string, Record<string, string>> };
    if (keys.server_name !== origin) return `the key server is ${keys.server_name}, not ${origin}`;
    const published = keys.verify_keys[keyId];
    if (!published) return `no key ${keyId}`;
    const key = publicKey(published.key);
    const selfSignature = keys.signatures?.[origin]?.[keyId];
    const { signatures: _signatures, ...unsigned } = keys;
    if (!selfSignature || !verifySignature(unsigned, selfSignature, key)) return 'the key answer is not signed by its key';
    return key;
  }
}

/** `X-Matrix a="b",c=d` -> {a: 'b', c: 'd'} (RFC 9110 auth-params, quoted strings unescaped); undefined when not X-Matrix. */
export function parseXMatrix(header: string): Record<string, string> | undefined {
  const match = /^X-Matrix\s+(.*)$/i.exec(header);
  if (!match) return undefined;
  const params: Record<string, string> = {};
  const text = match[1]!;
  const param = /\s*([A-Za-z]+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s"]*))\s*(?:,|$)/y;
  while (param.lastIndex < text.length) {
    const m = param.exec(text);
    if (!m) return undefined;
    params[m[1]!.toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!;
  }
  return params;
}

/** Canonical JSON (appendices "Canonical JSON"): keys sorted, no white space, UTF-8. Enough for the strings and objects here. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const object = value as Record<string, unknown>;
  const keys = Object.keys(object).filter((k) => object[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(object[k])}`).join(',')}}`;
}

function rawKey(key: KeyObject): string {
  const spki = key.export({ format: 'der', type: 'spki' });
  return spki.subarray(spki.length - 32).toString('base64').replace(/=+$/, '');
}

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

function publicKey(unpaddedBase64: string): KeyObject {
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(unpaddedBase64, 'base64')]), format: 'der', type: 'spki' });
}

function verifySignature(object: object, signature: string, key: KeyObject): boolean {
  try {
    return verify(null, Buffer.from(canonicalJson(object), 'utf8'), key, Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}
