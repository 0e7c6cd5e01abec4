import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addressBucket } from '../src/services/ratelimiter.js';

describe('addressBucket: the address per-IP limits count under', () => {
  it('keeps IPv4 addresses as they are', () => {
    assert.equal(addressBucket('203.0.113.7'), '203.0.113.7');
    assert.equal(addressBucket('127.0.0.1'), '127.0.0.1');
  });

  it('treats IPv4-mapped IPv6 as IPv4, in dotted and in hex form', () => {
    assert.equal(addressBucket('::ffff:203.0.113.7'), '203.0.113.7');
    assert.equal(addressBucket('::FFFF:cb00:7107'), '203.0.113.7');
    assert.equal(addressBucket('0:0:0:0:0:ffff:7f00:1'), '127.0.0.1');
  });

  it('counts an IPv6 address under its /64, however it is written', () => {
    const bucket = '2001:db8:1:2::/64';
    for (const ip of ['2001:db8:1:2::1', '2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:0DB8:0001:0002:0000:0000:0000:0009', '2001:db8:1:2::a:b', '2001:db8:1:2::5%eth0', '2001:db8:1:2:0:0:1.2.3.4']) {
      assert.equal(addressBucket(ip), bucket, ip);
    }
    assert.equal(addressBucket('2001:db8:1:3::1'), '2001:db8:1:3::/64');
    assert.equal(addressBucket('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(addressBucket('::1'), '0:0:0:0::/64');
    assert.equal(addressBucket('::'), '0:0:0:0::/64');
    assert.equal(addressBucket('64:ff9b::203.0.113.7'), '64:ff9b:0:0::/64');
  });

  it('leaves what is not an IP address alone', () => {
    assert.equal(addressBucket('unix:/run/myelin.sock'), 'unix:/run/myelin.sock');
    assert.equal(addressBucket(''), '');
  });
});
