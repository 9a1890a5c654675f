// Opens a recording file encrypted for the account's public key (crates/seal; the format is in
// docs/security.md) in the browser, with WebCrypto. The private key stays in this page: it is
// never sent anywhere. Every chunk is checked; a file cut short or altered opens up to the
// damage, and the damage is reported.

const INFO = new TextEncoder().encode('convrec recording key v1');
const X25519_PKCS8_PREFIX = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20];
const X25519_SPKI_PREFIX = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00];
const TAG_LEN = 16;

const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
};
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
const fromBase64Url = (text) => Uint8Array.from(atob(text.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
const startsWith = (bytes, prefix) => prefix.every((b, i) => bytes[i] === b);

/** Reads a PEM `PRIVATE KEY` (PKCS #8, X25519 or RSA): the key, ready to open files. */
export async function importPrivateKey(pem) {
  const match = /-----BEGIN PRIVATE KEY-----([\s\S]*?)-----END PRIVATE KEY-----/.exec(pem);
  if (!match) {
    throw new Error(pem.includes('RSA PRIVATE KEY')
      ? "This is a PKCS #1 key ('RSA PRIVATE KEY'): convert it with openssl pkcs8 -topk8 -nocrypt."
      : "Expected a PEM private key ('-----BEGIN PRIVATE KEY-----').");
  }
  let der;
  try {
    der = Uint8Array.from(atob(match[1].replace(/\s+/g, '')), (c) => c.charCodeAt(0));
  } catch {
    throw new Error('The private key is not valid base64.');
  }
  if (startsWith(der, X25519_PKCS8_PREFIX)) {
    // Extractable only to read its public half, which the key wrap binds.
    const key = await crypto.subtle.importKey('pkcs8', der, { name: 'X25519' }, true, ['deriveBits']);
    const publicRaw = fromBase64Url((await crypto.subtle.exportKey('jwk', key)).x);
    return { scheme: 1, key, publicRaw, keyId: hex(await sha256(concat(X25519_SPKI_PREFIX, publicRaw))) };
  }
  try {
    const key = await crypto.subtle.importKey('pkcs8', der, { name: 'RSA-OAEP', hash: 'SHA-256' }, true, ['decrypt']);
    const { n, e } = await crypto.subtle.exportKey('jwk', key);
    const publicKey = await crypto.subtle.importKey('jwk', { kty: 'RSA', n, e, ext: true },
      { name: 'RSA-OAEP', hash: 'SHA-256' }, true, ['encrypt']);
    const spki = new Uint8Array(await crypto.subtle.exportKey('spki', publicKey));
    return { scheme: 2, key, keyId: hex(await sha256(spki)) };
  } catch {
    throw new Error('Not a private key convrec can use: an X25519 key or an RSA key (PKCS #8 PEM).');
  }
}

/** The data key of a sealed file's header (`cvrh` body), and the header's digest. */
async function openHeader(body, privateKey) {
  if (body.length < 36) throw new Error('Malformed sealed file: the header is too short.');
  if (body[0] !== 1) throw new Error(`Sealed with format version ${body[0]}; this page reads version 1.`);
  const scheme = body[1];
  const fileKeyId = hex(body.subarray(2, 34));
  const wrapped = body.subarray(36, 36 + ((body[34] << 8) | body[35]));
  let raw;
  try {
    if (scheme === 1 && privateKey.scheme === 1 && wrapped.length === 80) {
      const ephemeral = wrapped.subarray(0, 32);
      const peer = await crypto.subtle.importKey('raw', ephemeral, { name: 'X25519' }, false, []);
      const shared = await crypto.subtle.deriveBits({ name: 'X25519', public: peer }, privateKey.key, 256);
      const ikm = await crypto.subtle.importKey('raw', shared, 'HKDF', false, ['deriveKey']);
      const kek = await crypto.subtle.deriveKey(
        { name: 'HKDF', hash: 'SHA-256', salt: concat(ephemeral, privateKey.publicRaw), info: INFO },
        ikm, { name: 'AES-GCM', length: 256 }, false, ['decrypt']);
      raw = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: new Uint8Array(12) }, kek, wrapped.subarray(32));
    } else if (scheme === 2 && privateKey.scheme === 2) {
      raw = await crypto.subtle.decrypt({ name: 'RSA-OAEP' }, privateKey.key, wrapped);
    } else {
      throw new Error('another scheme');
    }
  } catch {
    throw new Error(fileKeyId === privateKey.keyId
      ? 'The data key does not unwrap with this key: the header was altered.'
      : `This recording was encrypted for key ${fileKeyId}, not for this key (${privateKey.keyId}).`);
  }
  const dataKey = await crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['decrypt']);
  return { dataKey, digest: await sha256(body) };
}

/**
 * Opens a sealed file: `{ blocks, chunks, error }` — the fMP4 blocks of every chunk that opened,
 * in order (a playable file, or its prefix up to the damage), and what stopped it, if anything.
 * Throws when the file cannot be opened at all with this key.
 */
export async function openSealed(bytes, privateKey) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const blocks = [];
  let header = null;
  let chunks = 0;
  let ended = false;
  for (let at = 0; at < bytes.length;) {
    const size = bytes.length - at >= 8 ? view.getUint32(at) : 0;
    const type = new TextDecoder().decode(bytes.subarray(at + 4, at + 8));
    if (!header && type !== 'cvrh') throw new Error('Not an encrypted recording: it does not begin with a convrec encryption header.');
    if (bytes.length - at < 8 || at + size > bytes.length) break;
    if (size < 8) return { blocks, chunks, error: `Malformed sealed file: a box size under 8 at byte ${at}.` };
    const body = bytes.subarray(at + 8, at + size);
    at += size;
    if (!header) { header = await openHeader(body, privateKey); continue; }
    if (ended) return { blocks, chunks, error: `Data follows the final chunk (${chunks} chunks).` };
    if (type !== 'cvrc' || body.length < 1 + TAG_LEN) return { blocks, chunks, error: `Malformed sealed file: chunk ${chunks}.` };
    const kind = body[0];
    const nonce = new Uint8Array(12);
    new DataView(nonce.buffer).setBigUint64(0, BigInt(chunks));
    nonce[11] = kind === 0 ? 0 : 1;
    let block;
    try {
      block = await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: nonce, additionalData: concat(header.digest, [kind]), tagLength: 128 },
        header.dataKey, body.subarray(1));
    } catch {
      return { blocks, chunks, error: `Chunk ${chunks} failed authentication: the file was altered, or chunks were moved or taken from another file.` };
    }
    if (kind > 2) return { blocks, chunks, error: `Chunk ${chunks} failed authentication: unknown kind.` };
    if (kind !== 2) blocks.push(new Uint8Array(block));
    chunks += 1;
    ended = kind !== 0;
  }
  if (!header) throw new Error('Not an encrypted recording: it does not begin with a convrec encryption header.');
  return { blocks, chunks, error: ended ? null : `The file ends after ${chunks} chunks without its final chunk: it was cut short (or the server that wrote it stopped abruptly).` };
}
