// node --test webclient/test: the WIC's MD5, MILENAGE and Digest-AKA against published test data.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { fromHex, toBase64, toHex, utf8 } from '../src/bytes.js';
import { hmacMd5, md5 } from '../src/md5.js';
import { Milenage, computeOpc } from '../src/milenage.js';
import {
  AkaMacFailure, AkaSyncFailure, SoftUsim, SqnState, answerAkaChallenge, digestResponse,
} from '../src/aka.js';
import { TS_35_208 } from './ts35208.mjs';

test('MD5: the RFC 1321 §A.5 test suite', () => {
  const suite = {
    '': 'd41d8cd98f00b204e9800998ecf8427e',
    a: '0cc175b9c0f1b6a831c399e269772661',
    abc: '900150983cd24fb0d6963f7d28e17f72',
    'message digest': 'f96b697d7cb7938d525a2f31aaf161d0',
    abcdefghijklmnopqrstuvwxyz: 'c3fcd3d76192e4007dfb496cca67e13b',
    ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789: 'd174ab98d277d9f5a5611c2c9f419d9f',
    ['1234567890'.repeat(8)]: '57edf4a22be3c955ac49da2e2107b67a',
  };
  for (const [input, digest] of Object.entries(suite)) assert.equal(toHex(md5(utf8(input))), digest, input);
});

test('HMAC-MD5: RFC 2104 §A test vectors', () => {
  assert.equal(toHex(hmacMd5(new Uint8Array(16).fill(0x0b), utf8('Hi There'))),
    '9294727a3638bb1c13f48ef8158bfc9d');
  assert.equal(toHex(hmacMd5(utf8('Jefe'), utf8('what do ya want for nothing?'))),
    '750c783e6ab0b503eaa86e310a5db738');
  assert.equal(toHex(hmacMd5(new Uint8Array(16).fill(0xaa), new Uint8Array(50).fill(0xdd))),
    '56be34521d144c88dbb8c733f0e8b3f6');
});

test('MILENAGE: TS 35.208 §4.3 test sets 1 to 20 (OPc, f1, f1*, f2, f3, f4, f5, f5*)', async () => {
  for (const [n, s] of Object.entries(TS_35_208)) {
    const k = fromHex(s.k, 16);
    const opc = await computeOpc(k, fromHex(s.op, 16));
    assert.equal(toHex(opc), s.opc, `set ${n} OPc`);
    const m = await Milenage.create(k, opc);
    const rand = fromHex(s.rand, 16);
    const { macA, macS } = await m.f1(rand, fromHex(s.sqn, 6), fromHex(s.amf, 2));
    const out = await m.f2345(rand);
    assert.deepEqual(
      [toHex(macA), toHex(macS), toHex(out.res), toHex(out.ck), toHex(out.ik), toHex(out.ak), toHex(out.akStar)],
      [s.f1, s.f1star, s.f2, s.f3, s.f4, s.f5, s.f5star],
      `set ${n}`,
    );
  }
});

// A USIM whose last accepted SEQ is just below the set's, so that the set's SQN is fresh
// (a brand-new USIM refuses it: SEQ - SEQ_MS > delta, TS 33.102 Annex C.2.1).
function stateBelow(sqnHex) {
  const seq = Math.floor(parseInt(sqnHex, 16) / 32);
  return new SqnState(new Array(32).fill(seq - 1));
}

function autnFor(s, sqnHex) {
  // AUTN = SQN xor AK || AMF || MAC-A (TS 33.102 §6.3.2), from the set's own f1/f5 when sqnHex is its SQN.
  const sqn = fromHex(sqnHex, 6);
  const ak = fromHex(s.f5, 6);
  return new Uint8Array([...sqn.map((b, i) => b ^ ak[i]), ...fromHex(s.amf, 2), ...fromHex(s.f1, 8)]);
}

test('soft USIM: a brand-new USIM refuses an SQN far ahead (Annex C.2.1 delta)', async () => {
  const s = TS_35_208[1];
  const usim = await SoftUsim.create(s.k, s.opc);
  await assert.rejects(usim.authenticate(fromHex(s.rand, 16), autnFor(s, s.sqn)), AkaSyncFailure);
});

test('soft USIM: accepts set 1, then refuses the same SQN (sync failure with a verifiable AUTS)', async () => {
  const s = TS_35_208[1];
  const usim = await SoftUsim.create(s.k, s.opc, stateBelow(s.sqn));
  const rand = fromHex(s.rand, 16);
  const result = await usim.authenticate(rand, autnFor(s, s.sqn));
  assert.equal(toHex(result.res), s.f2);
  await assert.rejects(usim.authenticate(rand, autnFor(s, s.sqn)), (err) => {
    assert.ok(err instanceof AkaSyncFailure);
    assert.equal(err.auts.length, 14);
    // SQN_MS xor AK* recovers SQN_MS (the SQN just accepted)
    const akStar = fromHex(s.f5star, 6);
    assert.equal(toHex(err.auts.slice(0, 6).map((b, i) => b ^ akStar[i])), s.sqn);
    return true;
  });
});

test('soft USIM: a wrong MAC-A is a network authentication failure', async () => {
  const s = TS_35_208[2];
  const usim = await SoftUsim.create(s.k, s.opc, new SqnState());
  const autn = autnFor(s, s.sqn);
  autn[15] ^= 1;
  await assert.rejects(usim.authenticate(fromHex(s.rand, 16), autn), AkaMacFailure);
});

test('Digest: RFC 2617 §3.5 example response', () => {
  const response = digestResponse({
    username: 'Mufasa', realm: 'testrealm@host.com', password: utf8('Circle Of Life'),
    nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093', method: 'GET', uri: '/dir/index.html',
    qop: 'auth', nc: '00000001', cnonce: '0a4f113b',
  });
  assert.equal(response, '6629fae49393a05397450978507c4ef1');
});

test('Digest-AKAv1: the password is RES as raw bytes (RFC 3310 §3.3)', async () => {
  const s = TS_35_208[3];
  const usim = await SoftUsim.create(s.k, s.opc, stateBelow(s.sqn));
  const nonce = toBase64(new Uint8Array([...fromHex(s.rand, 16), ...autnFor(s, s.sqn)]));
  const challenge = { realm: 'ims.test', nonce, algorithm: 'AKAv1-MD5', qop: ['auth'], opaque: 'op1' };
  const { header, outcome } = await answerAkaChallenge({
    challenge, usim, username: 'alice@ims.test', method: 'REGISTER', uri: 'sip:ims.test', cnonce: 'c0ffee',
  });
  assert.equal(outcome, 'ok');
  const expected = digestResponse({
    username: 'alice@ims.test', realm: 'ims.test', password: fromHex(s.f2, 8), nonce, method: 'REGISTER',
    uri: 'sip:ims.test', qop: 'auth', nc: '00000001', cnonce: 'c0ffee',
  });
  assert.match(header, new RegExp(`response="${expected}"`));
  assert.match(header, /algorithm=AKAv1-MD5/);
  assert.match(header, /opaque="op1"/);
  assert.doesNotMatch(header, /auts=/);
});
