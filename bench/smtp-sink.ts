import { SMTPServer } from 'smtp-server';

/**
 * The live SMTP server Myelin's mails go to during the benchmark, in its own process. It counts the
 * mails and keeps, from each one, what a user would type back: the session ID and client secret
 * (from the link) and the short code. IPC: reports {ready, port}; answers {stats: true} with
 * {stats: {received, pending}} and {take: n} with {taken: [{sid, client_secret, code}, ...]}.
 */
export interface MailedSession {
  sid: string;
  client_secret: string;
  code: string;
}

let received = 0;
let unreadable = 0;
const sessions: MailedSession[] = [];

/**
 * The readable text of a raw message, enough to find links and codes: base64 parts decoded, and
 * quoted-printable soft line breaks and `=3D` undone.
 */
function readable(raw: string): string {
  const decoded = [...raw.matchAll(/content-transfer-encoding: base64\r?\n(?:[^\r\n]+\r?\n)*\r?\n([A-Za-z0-9+/=\r\n]+)/gi)].map((m) =>
    Buffer.from(m[1]!, 'base64').toString('utf8'),
  );
  return [raw.replace(/=\r?\n/g, '').replace(/=3D/gi, '='), ...decoded].join('\n');
}

function extract(raw: string): MailedSession | undefined {
  const text = readable(raw);
  const link = /[?&]token=[\w-]+&client_secret=([\w.=-]+?)&sid=([\w-]+)/.exec(text);
  const code = /code[^0-9<>]{0,60}(\d{4,10})/i.exec(text);
  if (!link || !code) return undefined;
  return { client_secret: link[1]!, sid: link[2]!, code: code[1]! };
}

const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS', 'AUTH'],
  logger: false,
  onData(stream, _session, callback) {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', callback);
    stream.on('end', () => {
      received++;
      const found = extract(Buffer.concat(chunks).toString('utf8'));
      if (found) sessions.push(found);
      else unreadable++;
      callback();
    });
  },
});
server.on('error', () => undefined);

server.listen(0, '127.0.0.1', () => {
  const address = server.server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  process.send?.({ ready: true, url: `smtp://127.0.0.1:${address.port}`, port: address.port });
});

process.on('message', (m: { stats?: boolean; take?: number; cpu?: boolean }) => {
  if (m.stats) process.send?.({ stats: { received, unreadable, pending: sessions.length } });
  if (m.take !== undefined) process.send?.({ taken: sessions.splice(0, m.take) });
  if (m.cpu) process.send?.({ cpu: process.cpuUsage() });
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
process.on('disconnect', () => process.exit(0));
