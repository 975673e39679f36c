// Runs the WIC's MILENAGE and Digest-AKA (webclient/src) on cases read as JSON from
// stdin and prints the results as JSON; tests/web/test_wic_crypto.py compares them
// with webims.aka.   node aka_node.mjs < cases.json
import { fromHex, toHex } from '../../webclient/src/bytes.js';
import { Milenage } from '../../webclient/src/milenage.js';
import { SoftUsim, SqnState, answerAkaChallenge } from '../../webclient/src/aka.js';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const input = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const milenage = [];
for (const c of input.milenage) {
  const m = await Milenage.create(fromHex(c.k, 16), fromHex(c.opc, 16));
  const rand = fromHex(c.rand, 16);
  const { macA, macS } = await m.f1(rand, fromHex(c.sqn, 6), fromHex(c.amf, 2));
  const o = await m.f2345(rand);
  milenage.push({
    f1: toHex(macA), f1star: toHex(macS), res: toHex(o.res), ck: toHex(o.ck), ik: toHex(o.ik),
    ak: toHex(o.ak), akstar: toHex(o.akStar),
  });
}

const answers = [];
for (const c of input.challenges) {
  const usim = await SoftUsim.create(c.k, c.opc, new SqnState(c.seq_array || null));
  const out = await answerAkaChallenge({
    challenge: c.challenge, usim, username: c.username, method: 'REGISTER', uri: c.uri,
  });
  answers.push({ header: out.header, outcome: out.outcome });
}
process.stdout.write(JSON.stringify({ milenage, answers }));
