import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface GatewayNotification {
  /** Absent from a push that only updates the badge. */
  event_id?: string;
  room_id?: string;
  type?: string;
  sender?: string;
  sender_display_name?: string;
  room_name?: string;
  room_alias?: string;
  user_is_target?: boolean;
  membership?: string;
  content?: Record<string, unknown>;
  prio: string;
  counts: { unread: number };
  devices: { app_id: string; pushkey: string; pushkey_ts: number; data: Record<string, unknown>; tweaks: Record<string, unknown> }[];
}

/**
 * A push gateway on 127.0.0.1 (POST /_matrix/push/v1/notify), recording what it is sent. It can go
 * down (the port refuses connections) and come back on the same port, and reject pushkeys.
 */
export class FakePushGateway {
  readonly received: GatewayNotification[] = [];
  /** Pushkeys it answers as rejected. */
  readonly rejecting = new Set<string>();
  private server: Server | undefined;
  private port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}/_matrix/push/v1/notify`;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => void this.handle(req).then(([status, body]) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))));
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Stops listening: connections are refused until start() again. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  of(eventId: string): GatewayNotification[] {
    return this.received.filter((n) => n.event_id === eventId);
  }

  private async handle(req: IncomingMessage): Promise<[number, unknown]> {
    let text = '';
    for await (const chunk of req) text += String(chunk);
    if (req.method !== 'POST' || req.url !== '/_matrix/push/v1/notify') return [404, { errcode: 'M_UNRECOGNIZED' }];
    const { notification } = JSON.parse(text) as { notification: GatewayNotification };
    this.received.push(notification);
    return [200, { rejected: notification.devices.map((d) => d.pushkey).filter((key) => this.rejecting.has(key)) }];
  }
}
