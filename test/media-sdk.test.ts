import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { SdkClients } from './helpers/sdk.js';
import { HTTP_ENGINES, startTestServer, type TestServer } from './helpers/server.js';

/** matrix-js-sdk 37 against the content repository: its upload, config and authenticated media URLs. */
for (const engine of HTTP_ENGINES) {
  describe(`media with matrix-js-sdk (${engine})`, () => {
    let server: TestServer;
    const clients = new SdkClients(() => server.url);

    before(async () => {
      server = await startTestServer(engine);
    });
    after(async () => {
      clients.stopAll();
      await server.close();
    });

    it('uploads with uploadContent and downloads through the authenticated URL the SDK builds', async () => {
      const { user_id, access_token } = await server.api.register('sdkmedia');
      const client = clients.create({ userId: user_id, accessToken: access_token });
      const config = await client.getMediaConfig(true);
      assert.equal(config['m.upload.size'], 50 * 1024 * 1024);

      const bytes = randomBytes(300_000);
      const uploaded = await client.uploadContent(bytes, { name: 'notes 1.bin', type: 'application/octet-stream' });
      assert.match(uploaded.content_uri, /^mxc:\/\/test\.local\/[A-Za-z]{24}$/);

      const url = client.mxcUrlToHttp(uploaded.content_uri, undefined, undefined, undefined, false, true, true)!;
      assert.ok(url.startsWith(`${server.url}/_matrix/client/v1/media/download/test.local/`), url);
      assert.equal((await fetch(url)).status, 401);
      const res = await fetch(url, { headers: { authorization: `Bearer ${access_token}` } });
      assert.equal(res.status, 200);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), bytes);
      assert.equal(res.headers.get('content-disposition'), 'attachment; filename="notes 1.bin"');

      const png = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#336699' } }).png().toBuffer();
      const image = await client.uploadContent(png, { name: 'avatar.png', type: 'image/png' });
      const thumbUrl = client.mxcUrlToHttp(image.content_uri, 96, 96, 'crop', false, true, true)!;
      const thumb = await fetch(thumbUrl, { headers: { authorization: `Bearer ${access_token}` } });
      assert.equal(thumb.status, 200);
      const meta = await sharp(Buffer.from(await thumb.arrayBuffer())).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], ['png', 96, 96]);
    });
  });
}
