// MILENAGE (3GPP TS 35.206 §4.1) on WebCrypto, for the WIC's software USIM.
//
// The kernel E_K is AES-128 on one block.  WebCrypto has no ECB mode, but
// AES-CBC with a zero IV over a single block computes exactly E_K(block)
// (C1 = E_K(P1 xor IV)); the PKCS#7 padding block that WebCrypto appends makes a
// second ciphertext block, which is dropped.  Checked against the test sets of
// TS 35.208 §4.3 (webclient/test/milenage.test.mjs) and against webims.aka.

import { concat, xor } from './bytes.js';

const ZERO_IV = new Uint8Array(16);
// TS 35.206 §4.1: rotations r1..r5 (in bytes: 64, 0, 32, 64, 96 bits) and constants c1..c5.
const R = [8, 0, 4, 8, 12];
const C = [0, 1, 2, 4, 8].map((v) => { const c = new Uint8Array(16); c[15] = v; return c; });

function rot(x, r) {
  return concat(x.subarray(r), x.subarray(0, r));
}

function check(name, value, length) {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new Error(`${name} must be ${length} bytes`);
  }
}

/** A single-block AES-128 encryption function for key ``k`` (async). */
export async function aesBlockCipher(k) {
  check('K', k, 16);
  const key = await crypto.subtle.importKey('raw', k, { name: 'AES-CBC' }, false, ['encrypt']);
  return async (block) => {
    const out = await crypto.subtle.encrypt({ name: 'AES-CBC', iv: ZERO_IV }, key, block);
    return new Uint8Array(out, 0, 16).slice();
  };
}

/** OPc = OP xor E_K(OP) (TS 35.206 §4.1). */
export async function computeOpc(k, op) {
  check('OP', op, 16);
  const e = await aesBlockCipher(k);
  return xor(op, await e(op));
}

/** MILENAGE for one subscriber: ``await Milenage.create(k, opc)``. */
export class Milenage {
  constructor(e, opc) {
    this.e = e;
    this.opc = opc;
  }

  static async create(k, opc) {
    check('OPc', opc, 16);
    return new Milenage(await aesBlockCipher(k), opc);
  }

  async temp(rand) {
    check('RAND', rand, 16);
    return this.e(xor(rand, this.opc));
  }

  async out(temp, i) {
    // OUTi = E_K(rot(TEMP xor OPc, ri) xor ci) xor OPc, i = 2..5
    return xor(await this.e(xor(rot(xor(temp, this.opc), R[i - 1]), C[i - 1])), this.opc);
  }

  /** f1 and f1*: {macA, macS} (8 bytes each). */
  async f1(rand, sqn, amf) {
    check('SQN', sqn, 6);
    check('AMF', amf, 2);
    const temp = await this.temp(rand);
    const in1 = concat(sqn, amf, sqn, amf);
    // OUT1 = E_K(TEMP xor rot(IN1 xor OPc, r1) xor c1) xor OPc
    const out1 = xor(await this.e(xor(xor(temp, rot(xor(in1, this.opc), R[0])), C[0])), this.opc);
    return { macA: out1.slice(0, 8), macS: out1.slice(8, 16) };
  }

  /** f2..f5 and f5*: {res, ck, ik, ak, akStar}. */
  async f2345(rand) {
    const temp = await this.temp(rand);
    const out2 = await this.out(temp, 2);
    return {
      res: out2.slice(8, 16),
      ak: out2.slice(0, 6),
      ck: await this.out(temp, 3),
      ik: await this.out(temp, 4),
      akStar: (await this.out(temp, 5)).slice(0, 6),
    };
  }
}
