// The WIC's software USIM and HTTP Digest AKA (RFC 3310 AKAv1-MD5, RFC 4169 AKAv2-MD5).
//
// Seed 004 §6.X.2.2.1 step 10: the WIC passes the challenge (RAND, AUTN) to the
// USIM, which checks the network (MAC-A, TS 33.102 §6.3.3) and the freshness of
// SQN (Annex C), and computes RES; the WIC answers the 401 with the digest whose
// password is RES (AKAv1) or derived from RES, IK and CK (AKAv2).  On a bad
// MAC-A it sends an empty response; on a stale SQN it sends AUTS (RFC 3310 §3.4).

import {
  concat, equal, fromBase64, fromHex, randomBytes, toBase64, toHex, utf8, xor,
} from './bytes.js';
import { hmacMd5, md5 } from './md5.js';
import { Milenage } from './milenage.js';

const IND_BITS = 5; // TS 33.102 Annex C.3
const DELTA = 2 ** 28; // Annex C.3 wrap-around limit
const RESYNC_AMF = new Uint8Array(2); // TS 33.102 §6.3.3: AMF* is all zeros
const AKAV2_LABEL = utf8('http-digest-akav2-password'); // RFC 4169 §3

export class AkaMacFailure extends Error {
  constructor() { super('the network failed authentication (MAC-A mismatch)'); this.name = 'AkaMacFailure'; }
}

export class AkaSyncFailure extends Error {
  constructor(auts, sqn, sqnMs) {
    super(`sequence number ${sqn} is not fresh (SQN_MS ${sqnMs}): resynchronising`);
    this.name = 'AkaSyncFailure';
    this.auts = auts;
  }
}

function sqnToBytes(sqn) {
  const out = new Uint8Array(6);
  let v = sqn;
  for (let i = 5; i >= 0; i--) { out[i] = v % 256; v = Math.floor(v / 256); }
  return out;
}

function sqnFromBytes(bytes) {
  return bytes.reduce((acc, b) => acc * 256 + b, 0);
}

/** The USIM's record of accepted sequence numbers (TS 33.102 Annex C.2). */
export class SqnState {
  constructor(seqArray) {
    this.seq = Array.isArray(seqArray) && seqArray.length === 2 ** IND_BITS
      ? seqArray.map(Number) : new Array(2 ** IND_BITS).fill(0);
  }

  get seqMs() { return Math.max(...this.seq); }

  get sqnMs() {
    const seq = this.seqMs;
    return seq * 2 ** IND_BITS + this.seq.indexOf(seq);
  }

  isFresh(sqn) {
    const seq = Math.floor(sqn / 2 ** IND_BITS);
    const ind = sqn % 2 ** IND_BITS;
    return seq > this.seq[ind] && seq - this.seqMs <= DELTA;
  }

  accept(sqn) {
    this.seq[sqn % 2 ** IND_BITS] = Math.floor(sqn / 2 ** IND_BITS);
  }
}

/** A soft USIM holding K and OPc (TS 31.102 AUTHENTICATE, run in the browser). */
export class SoftUsim {
  constructor(milenage, sqnState) {
    this.milenage = milenage;
    this.sqnState = sqnState || new SqnState();
  }

  /** From hex K and OPc (32 hex digits each). */
  static async create(kHex, opcHex, sqnState) {
    const k = fromHex(kHex, 16);
    const opc = fromHex(opcHex, 16);
    return new SoftUsim(await Milenage.create(k, opc), sqnState);
  }

  /** RAND, AUTN -> {res, ck, ik, sqn, amf}; throws AkaMacFailure / AkaSyncFailure. */
  async authenticate(rand, autn) {
    if (rand.length !== 16 || autn.length !== 16) throw new Error('RAND and AUTN must be 16 bytes');
    const m = this.milenage;
    const { res, ck, ik, ak, akStar } = await m.f2345(rand);
    const sqnBytes = xor(autn.slice(0, 6), ak);
    const amf = autn.slice(6, 8);
    const { macA } = await m.f1(rand, sqnBytes, amf);
    if (!equal(macA, autn.slice(8, 16))) throw new AkaMacFailure();
    const sqn = sqnFromBytes(sqnBytes);
    if (!this.sqnState.isFresh(sqn)) {
      const sqnMs = this.sqnState.sqnMs;
      const msBytes = sqnToBytes(sqnMs);
      const { macS } = await m.f1(rand, msBytes, RESYNC_AMF);
      throw new AkaSyncFailure(concat(xor(msBytes, akStar), macS), sqn, sqnMs);
    }
    this.sqnState.accept(sqn);
    return { res, ck, ik, sqn, amf };
  }
}

/** RFC 3310 §3.2: nonce = base64(RAND || AUTN || server data). */
export function parseAkaNonce(nonce) {
  const raw = fromBase64(nonce || '');
  if (raw.length < 32) throw new Error(`AKA nonce carries ${raw.length} bytes, needs 32`);
  return { rand: raw.slice(0, 16), autn: raw.slice(16, 32) };
}

/** The AKA version of an algorithm value ("AKAv1-MD5" -> 1), or null. */
export function akaVersion(algorithm) {
  const match = /^AKAv(\d+)-MD5$/i.exec(algorithm || '');
  return match ? Number(match[1]) : null;
}

function quote(value) {
  return `"${String(value).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

const hexMd5 = (...parts) => toHex(md5(concat(...parts.map((p) => (typeof p === 'string' ? utf8(p) : p)))));

/** RFC 2617 §3.2.2.1 response with a byte password (MD5; qop auth, auth-int or none). */
export function digestResponse({ username, realm, password, nonce, method, uri, qop, nc, cnonce, body }) {
  const ha1 = hexMd5(`${username}:${realm}:`, password);
  const ha2 = qop === 'auth-int'
    ? hexMd5(`${method}:${uri}:${hexMd5(body || new Uint8Array(0))}`)
    : hexMd5(`${method}:${uri}`);
  if (!qop) return hexMd5(`${ha1}:${nonce}:${ha2}`);
  return hexMd5(`${ha1}:${nonce}:${nc}:${cnonce}:${qop}:${ha2}`);
}

/** The Authorization header before any challenge (TS 24.229 §5.1.1.2.1): it names the IMPI. */
export function initialAuthorization(impi, domain) {
  return `Digest username=${quote(impi)}, realm=${quote(domain)}, uri=${quote(`sip:${domain}`)}, `
    + 'nonce="", response=""';
}

/**
 * Answer an AKA challenge ({realm, nonce, algorithm, qop, opaque}) for ``method uri``.
 * Returns {header, outcome: 'ok' | 'mac' | 'sync', result}.
 */
export async function answerAkaChallenge({ challenge, usim, username, method, uri, cnonce, nc = 1 }) {
  const version = akaVersion(challenge.algorithm);
  if (version === null || version > 2) throw new Error(`not an AKA challenge: ${challenge.algorithm}`);
  const { rand, autn } = parseAkaNonce(challenge.nonce);
  const offered = [].concat(challenge.qop || []).map((q) => String(q).toLowerCase());
  const qop = offered.includes('auth') ? 'auth' : (offered.includes('auth-int') ? 'auth-int' : null);
  if (offered.length && !qop) throw new Error(`no supported qop in ${offered.join(',')}`);
  let password = new Uint8Array(0);
  let outcome = 'ok';
  let result = null;
  let auts = null;
  try {
    result = await usim.authenticate(rand, autn);
    password = version === 1
      ? result.res
      : utf8(toBase64(hmacMd5(concat(result.res, result.ik, result.ck), AKAV2_LABEL)));
  } catch (err) {
    if (err instanceof AkaSyncFailure) { outcome = 'sync'; auts = err.auts; }
    else if (err instanceof AkaMacFailure) { outcome = 'mac'; }
    else throw err;
  }
  const ncHex = nc.toString(16).padStart(8, '0');
  const cn = cnonce || toHex(randomBytes(8));
  let response = digestResponse({
    username, realm: challenge.realm, password, nonce: challenge.nonce, method, uri,
    qop, nc: ncHex, cnonce: cn,
  });
  if (outcome === 'mac') response = ''; // TS 24.229 §5.1.1.5.3
  const params = [
    `username=${quote(username)}`, `realm=${quote(challenge.realm)}`, `nonce=${quote(challenge.nonce)}`,
    `uri=${quote(uri)}`, `response=${quote(response)}`, `algorithm=${challenge.algorithm}`,
  ];
  if (qop) params.push(`cnonce=${quote(cn)}`, `qop=${qop}`, `nc=${ncHex}`);
  if (challenge.opaque) params.push(`opaque=${quote(challenge.opaque)}`);
  if (auts) params.push(`auts=${quote(toBase64(auts))}`);
  return { header: `Digest ${params.join(', ')}`, outcome, result };
}
