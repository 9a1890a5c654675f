//! The account's public key (the recipient) and the private key that opens its files, in the
//! formats OpenSSL and WebCrypto both read and write: PEM `PUBLIC KEY` (SubjectPublicKeyInfo)
//! and PEM `PRIVATE KEY` (unencrypted PKCS #8).

use aws_lc_rs::agreement::{self, X25519};
use aws_lc_rs::encoding::{AsBigEndian, AsDer};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey,
};
use base64::Engine as _;
use thiserror::Error;

use crate::format::sha256;

/// The DER prefix of an X25519 SubjectPublicKeyInfo; the 32-byte key follows.
const X25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00,
];
/// The DER prefix of an X25519 PKCS #8 private key; the 32-byte key follows.
const X25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
];
/// The object identifier of Ed25519 (a signing key, often taken for X25519 by mistake).
const ED25519_OID: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];
/// RSA moduli accepted, in bits.
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// How a file's data key is wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Scheme {
    /// X25519, HKDF-SHA256 and AES-256-GCM.
    X25519 = 1,
    /// RSA-OAEP with SHA-256.
    RsaOaep = 2,
}

impl Scheme {
    /// The scheme numbered `n` in a header.
    pub(crate) fn from_byte(n: u8) -> Option<Self> {
        match n {
            1 => Some(Self::X25519),
            2 => Some(Self::RsaOaep),
            _ => None,
        }
    }

    /// Its name, as the API and the docs give it.
    pub fn name(self) -> &'static str {
        match self {
            Self::X25519 => "X25519",
            Self::RsaOaep => "RSA-OAEP-256",
        }
    }
}

/// Why a key was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// Not PEM with the expected label.
    #[error("expected a PEM block '-----BEGIN {expected}-----'{found}")]
    NotPem {
        /// The label wanted.
        expected: &'static str,
        /// What was found instead, in words (may be empty).
        found: String,
    },
    /// The PEM body is not base64.
    #[error("the PEM body is not valid base64: {0}")]
    Base64(String),
    /// A key of another kind.
    #[error("{0}")]
    Unsupported(String),
    /// An RSA key of a size outside the accepted range.
    #[error("an RSA key must have 2048 to 8192 bits; this one has {0}")]
    RsaSize(usize),
    /// The cryptographic library failed.
    #[error("the cryptographic library failed: {0}")]
    Crypto(&'static str),
}

/// What a key can be, in words, for errors.
const WHAT_KEYS: &str = "an X25519 key (openssl genpkey -algorithm X25519) or an RSA key of 2048 to 8192 bits (openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072)";

/// An account's public key: files are sealed for it.
#[derive(Debug, Clone)]
pub struct RecipientKey {
    recipient: Recipient,
    spki: Vec<u8>,
}

#[derive(Debug, Clone)]
enum Recipient {
    X25519([u8; 32]),
    Rsa(PublicEncryptingKey),
}

impl RecipientKey {
    /// Reads a PEM `PUBLIC KEY`.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        Self::from_spki_der(&pem_body(pem, "PUBLIC KEY")?)
    }

    /// Reads a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        if let Some(raw) = der.strip_prefix(&X25519_SPKI_PREFIX[..]) {
            let raw: [u8; 32] = raw.try_into().map_err(|_| {
                KeyError::Unsupported("an X25519 public key must be 32 bytes".into())
            })?;
            return Ok(Self {
                recipient: Recipient::X25519(raw),
                spki: der.to_vec(),
            });
        }
        if contains(der, &ED25519_OID) {
            return Err(KeyError::Unsupported(format!(
                "this is an Ed25519 key, which signs and cannot encrypt; use {WHAT_KEYS}"
            )));
        }
        let rsa = PublicEncryptingKey::from_der(der).map_err(|_| {
            KeyError::Unsupported(format!("not a public key convrec can use; use {WHAT_KEYS}"))
        })?;
        check_rsa_bits(rsa.key_size_bits())?;
        Ok(Self {
            recipient: Recipient::Rsa(rsa),
            spki: der.to_vec(),
        })
    }

    /// How files are sealed for it.
    pub fn scheme(&self) -> Scheme {
        match self.recipient {
            Recipient::X25519(_) => Scheme::X25519,
            Recipient::Rsa(_) => Scheme::RsaOaep,
        }
    }

    /// The SHA-256 of its SubjectPublicKeyInfo: which key a file was sealed for.
    pub fn key_id(&self) -> [u8; 32] {
        sha256(&self.spki)
    }

    /// [`Self::key_id`] in lowercase hex.
    pub fn key_id_hex(&self) -> String {
        hex(&self.key_id())
    }

    /// The key as PEM.
    pub fn to_pem(&self) -> String {
        to_pem("PUBLIC KEY", &self.spki)
    }

    /// Wraps `data_key` for this key.
    pub(crate) fn wrap(&self, data_key: &[u8; 32]) -> Result<Vec<u8>, KeyError> {
        match &self.recipient {
            Recipient::X25519(recipient) => {
                let ephemeral = agreement::PrivateKey::generate(&X25519)
                    .map_err(|_| KeyError::Crypto("X25519 key generation"))?;
                let ephemeral_public = ephemeral
                    .compute_public_key()
                    .map_err(|_| KeyError::Crypto("X25519 public key"))?;
                let ephemeral_public: [u8; 32] = ephemeral_public
                    .as_ref()
                    .try_into()
                    .map_err(|_| KeyError::Crypto("X25519 public key length"))?;
                let kek = agreement::agree(
                    &ephemeral,
                    agreement::UnparsedPublicKey::new(&X25519, recipient),
                    KeyError::Crypto("X25519 agreement"),
                    |shared| Ok(wrapping_key(shared, &ephemeral_public, recipient)),
                )??;
                let mut wrapped = ephemeral_public.to_vec();
                wrapped.extend_from_slice(data_key);
                let tag = kek
                    .seal_in_place_separate_tag(
                        aws_lc_rs::aead::Nonce::assume_unique_for_key([0; 12]),
                        aws_lc_rs::aead::Aad::empty(),
                        &mut wrapped[32..],
                    )
                    .map_err(|_| KeyError::Crypto("AES-GCM key wrap"))?;
                wrapped.extend_from_slice(tag.as_ref());
                Ok(wrapped)
            }
            Recipient::Rsa(public) => {
                let oaep = OaepPublicEncryptingKey::new(public.clone())
                    .map_err(|_| KeyError::Crypto("RSA-OAEP key"))?;
                let mut out = vec![0u8; oaep.ciphertext_size()];
                let n = oaep
                    .encrypt(&OAEP_SHA256_MGF1SHA256, data_key, &mut out, None)
                    .map_err(|_| KeyError::Crypto("RSA-OAEP encryption"))?
                    .len();
                out.truncate(n);
                Ok(out)
            }
        }
    }
}

/// A private key: it opens the files sealed for its public half. Only the account holds it.
#[derive(Debug)]
pub struct OpeningKey {
    opening: Opening,
    recipient: RecipientKey,
    pkcs8: Vec<u8>,
}

#[derive(Debug)]
enum Opening {
    X25519(agreement::PrivateKey),
    Rsa(OaepPrivateDecryptingKey),
}

impl OpeningKey {
    /// Reads a PEM `PRIVATE KEY` (PKCS #8, unencrypted).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        if pem.contains("-----BEGIN RSA PRIVATE KEY-----") {
            return Err(KeyError::NotPem {
                expected: "PRIVATE KEY",
                found: "; this is PKCS #1 ('RSA PRIVATE KEY'): convert it with openssl pkcs8 -topk8 -nocrypt".into(),
            });
        }
        Self::from_pkcs8_der(&pem_body(pem, "PRIVATE KEY")?)
    }

    /// Reads a DER PKCS #8 private key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        if let Some(raw) = der.strip_prefix(&X25519_PKCS8_PREFIX[..]) {
            let private = agreement::PrivateKey::from_private_key(&X25519, raw).map_err(|_| {
                KeyError::Unsupported("an X25519 private key must be 32 bytes".into())
            })?;
            let public = private
                .compute_public_key()
                .map_err(|_| KeyError::Crypto("X25519 public key"))?;
            let mut spki = X25519_SPKI_PREFIX.to_vec();
            spki.extend_from_slice(public.as_ref());
            return Ok(Self {
                opening: Opening::X25519(private),
                recipient: RecipientKey::from_spki_der(&spki)?,
                pkcs8: der.to_vec(),
            });
        }
        if contains(der, &ED25519_OID) {
            return Err(KeyError::Unsupported(format!(
                "this is an Ed25519 key, which signs and cannot decrypt; files are sealed for {WHAT_KEYS}"
            )));
        }
        let rsa = PrivateDecryptingKey::from_pkcs8(der).map_err(|_| {
            KeyError::Unsupported(format!(
                "not a private key convrec can use; use {WHAT_KEYS}"
            ))
        })?;
        check_rsa_bits(rsa.key_size_bits())?;
        let spki = rsa
            .public_key()
            .as_der()
            .map_err(|_| KeyError::Crypto("RSA public key"))?;
        let recipient = RecipientKey::from_spki_der(spki.as_ref())?;
        let oaep =
            OaepPrivateDecryptingKey::new(rsa).map_err(|_| KeyError::Crypto("RSA-OAEP key"))?;
        Ok(Self {
            opening: Opening::Rsa(oaep),
            recipient,
            pkcs8: der.to_vec(),
        })
    }

    /// A new key pair of `scheme` (RSA: 3072 bits).
    pub fn generate(scheme: Scheme) -> Result<Self, KeyError> {
        match scheme {
            Scheme::X25519 => {
                let private = agreement::PrivateKey::generate(&X25519)
                    .map_err(|_| KeyError::Crypto("X25519 key generation"))?;
                let seed: aws_lc_rs::encoding::Curve25519SeedBin<'_> = private
                    .as_be_bytes()
                    .map_err(|_| KeyError::Crypto("X25519 private key"))?;
                let mut pkcs8 = X25519_PKCS8_PREFIX.to_vec();
                pkcs8.extend_from_slice(seed.as_ref());
                Self::from_pkcs8_der(&pkcs8)
            }
            Scheme::RsaOaep => {
                let private = PrivateDecryptingKey::generate(KeySize::Rsa3072)
                    .map_err(|_| KeyError::Crypto("RSA key generation"))?;
                let pkcs8: aws_lc_rs::encoding::Pkcs8V1Der<'_> = private
                    .as_der()
                    .map_err(|_| KeyError::Crypto("RSA private key"))?;
                Self::from_pkcs8_der(pkcs8.as_ref())
            }
        }
    }

    /// The public half.
    pub fn recipient(&self) -> &RecipientKey {
        &self.recipient
    }

    /// The key as PEM (keep it secret).
    pub fn to_pem(&self) -> String {
        to_pem("PRIVATE KEY", &self.pkcs8)
    }

    /// Unwraps a data key wrapped for this key; `None` when it does not open.
    pub(crate) fn unwrap_key(&self, scheme: Scheme, wrapped: &[u8]) -> Option<[u8; 32]> {
        match (&self.opening, scheme) {
            (Opening::X25519(private), Scheme::X25519) => {
                if wrapped.len() != 32 + 32 + crate::format::TAG_LEN {
                    return None;
                }
                let (ephemeral_public, sealed) = wrapped.split_at(32);
                let Recipient::X25519(recipient) = &self.recipient.recipient else {
                    return None;
                };
                let kek = agreement::agree(
                    private,
                    agreement::UnparsedPublicKey::new(&X25519, ephemeral_public),
                    (),
                    |shared| Ok(wrapping_key(shared, ephemeral_public, recipient)),
                )
                .ok()?
                .ok()?;
                let mut in_out = sealed.to_vec();
                let key = kek
                    .open_in_place(
                        aws_lc_rs::aead::Nonce::assume_unique_for_key([0; 12]),
                        aws_lc_rs::aead::Aad::empty(),
                        &mut in_out,
                    )
                    .ok()?;
                key.try_into().ok()
            }
            (Opening::Rsa(private), Scheme::RsaOaep) => {
                let mut out = vec![0u8; private.min_output_size()];
                let key = private
                    .decrypt(&OAEP_SHA256_MGF1SHA256, wrapped, &mut out, None)
                    .ok()?;
                (&*key).try_into().ok()
            }
            _ => None,
        }
    }
}

/// The AES-256-GCM key that wraps a data key for X25519 (see the crate docs).
fn wrapping_key(
    shared: &[u8],
    ephemeral_public: &[u8],
    recipient: &[u8; 32],
) -> Result<aws_lc_rs::aead::LessSafeKey, KeyError> {
    let mut salt = ephemeral_public.to_vec();
    salt.extend_from_slice(recipient);
    let prk = aws_lc_rs::hkdf::Salt::new(aws_lc_rs::hkdf::HKDF_SHA256, &salt).extract(shared);
    let mut kek = [0u8; 32];
    prk.expand(&[crate::format::WRAP_INFO], &aws_lc_rs::aead::AES_256_GCM)
        .and_then(|okm| okm.fill(&mut kek))
        .map_err(|_| KeyError::Crypto("HKDF"))?;
    let key = aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &kek)
        .map_err(|_| KeyError::Crypto("AES-GCM key"))?;
    Ok(aws_lc_rs::aead::LessSafeKey::new(key))
}

fn check_rsa_bits(bits: usize) -> Result<(), KeyError> {
    if RSA_BITS.contains(&bits) {
        Ok(())
    } else {
        Err(KeyError::RsaSize(bits))
    }
}

/// The DER inside the PEM block labelled `label`.
fn pem_body(pem: &str, label: &'static str) -> Result<Vec<u8>, KeyError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let Some(start) = pem.find(&begin) else {
        let found = pem
            .find("-----BEGIN ")
            .and_then(|at| pem[at + 11..].split_once("-----"))
            .map(|(other, _)| format!("; found '{}'", other.chars().take(40).collect::<String>()))
            .unwrap_or_else(|| "; found no PEM block".to_owned());
        return Err(KeyError::NotPem {
            expected: label,
            found,
        });
    };
    let body = &pem[start + begin.len()..];
    let Some(stop) = body.find(&end) else {
        return Err(KeyError::NotPem {
            expected: label,
            found: format!("; it has no '{end}'"),
        });
    };
    let text: String = body[..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| KeyError::Base64(e.to_string()))
}

fn to_pem(label: &str, der: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
