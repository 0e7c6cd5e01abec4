import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_THUMBNAIL_SIZES } from '../src/config/sections/media.js';
import { parseConfig } from '../src/config/load.js';
import { mediaStorePath } from '../src/services/media/index.js';
import { chooseThumbnailSize, type ThumbnailSize } from '../src/services/media/thumbnailer.js';

const sizes = DEFAULT_THUMBNAIL_SIZES as readonly ThumbnailSize[];
const pick = (width: number, height: number, method: 'crop' | 'scale') => {
  const s = chooseThumbnailSize(sizes, width, height, method);
  return `${s.width}x${s.height} ${s.method}`;
};

describe('media settings and the choice of thumbnail size', () => {
  it('reads Synapse-style sizes and defaults, and refuses a size it cannot read', () => {
    const base = { server_name: 'example.org' };
    const { config } = parseConfig(base);
    assert.equal(config.max_upload_size, 50 * 1024 * 1024);
    assert.equal(config.max_image_pixels, 32 * 1024 * 1024);
    assert.deepEqual(config.thumbnail_sizes, sizes);
    assert.equal(parseConfig({ ...base, max_upload_size: '512K' }).config.max_upload_size, 512 * 1024);
    assert.equal(parseConfig({ ...base, max_upload_size: 1000 }).config.max_upload_size, 1000);
    assert.throws(() => parseConfig({ ...base, max_upload_size: 'lots' }), /max_upload_size/);
    assert.throws(() => parseConfig({ ...base, thumbnail_sizes: [{ width: 32, height: 32, method: 'stretch' }] }), /thumbnail_sizes/);
  });

  it('keeps media beside the SQLite database unless media_store_path says otherwise', () => {
    const sqlite = parseConfig({ server_name: 'example.org', database: { name: 'sqlite3', args: { database: '/srv/myelin/homeserver.db' } } }).config;
    assert.equal(mediaStorePath(sqlite), '/srv/myelin/media_store');
    const postgres = parseConfig({ server_name: 'example.org', database: { name: 'psycopg2', args: { database: 'myelin' } } }).config;
    assert.equal(mediaStorePath(postgres), 'data/media_store');
    assert.equal(mediaStorePath({ ...sqlite, media_store_path: '/var/media' }), '/var/media');
  });

  it('answers a thumbnail request with the configured size Synapse would pick', () => {
    assert.equal(pick(32, 32, 'crop'), '32x32 crop');
    assert.equal(pick(40, 40, 'crop'), '96x96 crop');
    assert.equal(pick(200, 200, 'crop'), '96x96 crop'); // none that large: the largest of the crops
    assert.equal(pick(320, 240, 'scale'), '320x240 scale');
    assert.equal(pick(600, 400, 'scale'), '640x480 scale');
    assert.equal(pick(100, 100, 'scale'), '320x240 scale');
    assert.equal(pick(2000, 2000, 'scale'), '800x600 scale');
    // With only scale sizes configured, a crop request gets the nearest scale size.
    assert.equal(chooseThumbnailSize([{ width: 320, height: 240, method: 'scale' }], 32, 32, 'crop').method, 'scale');
  });
});
