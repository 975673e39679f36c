// Byte helpers: hex, base64, UTF-8, concatenation, XOR.

const encoder = new TextEncoder();

export function utf8(text) {
  return encoder.encode(text);
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Hex text (spaces allowed) to bytes; throws on bad input or a wrong length. */
export function fromHex(text, length) {
  const clean = String(text).replace(/\s+/g, '');
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(clean)) throw new Error('not hexadecimal');
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.substr(2 * i, 2), 16);
  if (length !== undefined && out.length !== length) {
    throw new Error(`expected ${length} bytes (${2 * length} hex digits), got ${out.length}`);
  }
  return out;
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return out;
}

export function xor(a, b) {
  if (a.length !== b.length) throw new Error('xor of unequal lengths');
  return a.map((x, i) => x ^ b[i]);
}

export function equal(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** Base64 (RFC 4648 §4) to bytes; missing '=' padding tolerated. */
export function fromBase64(text) {
  const clean = String(text).trim();
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean)) throw new Error('not base64');
  const padded = clean + '='.repeat((4 - (clean.length % 4)) % 4);
  const bin = atob(padded);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

export function toBase64(bytes) {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

export function toBase64Url(bytes) {
  return toBase64(bytes).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function fromBase64Url(text) {
  return fromBase64(String(text).replace(/-/g, '+').replace(/_/g, '/'));
}

export function randomBytes(n) {
  return crypto.getRandomValues(new Uint8Array(n));
}
