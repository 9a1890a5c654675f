//! Sealed files open to exactly what was sealed, and every alteration or cut is detected.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use convrec_seal::{
    ChunkKind, KeyError, OpenError, OpeningKey, RecipientKey, Scheme, Sealer, open_all,
};
use proptest::prelude::*;

/// Blocks of different sizes, like an init segment, fragments and an index.
fn blocks() -> Vec<Vec<u8>> {
    (0..6u8)
        .map(|i| {
            (0..(100 + usize::from(i) * 997))
                .map(|n| (n as u8) ^ i)
                .collect()
        })
        .collect()
}

/// Seals `blocks` (the last one as the index, or then an end mark): (file, chunk offsets).
fn seal(recipient: &RecipientKey, blocks: &[Vec<u8>], indexed: bool) -> (Vec<u8>, Vec<usize>) {
    let mut sealer = Sealer::new(recipient).unwrap();
    let (mut file, mut ends) = (Vec::new(), Vec::new());
    for (i, block) in blocks.iter().enumerate() {
        let kind = if indexed && i + 1 == blocks.len() {
            ChunkKind::LastBlock
        } else {
            ChunkKind::Block
        };
        file.extend(sealer.seal(kind, block).unwrap());
        ends.push(file.len());
    }
    if !indexed {
        file.extend(sealer.seal(ChunkKind::EndMark, &[]).unwrap());
        ends.push(file.len());
    }
    assert!(sealer.is_ended());
    (file, ends)
}

fn x25519() -> OpeningKey {
    OpeningKey::generate(Scheme::X25519).unwrap()
}

#[test]
fn a_sealed_file_opens_to_its_blocks_with_either_scheme() {
    for key in [x25519(), OpeningKey::generate(Scheme::RsaOaep).unwrap()] {
        for indexed in [true, false] {
            let (file, ends) = seal(key.recipient(), &blocks(), indexed);
            assert_eq!(&file[4..8], b"cvrh");
            let (plain, opened) = open_all(&key, &file);
            assert_eq!(opened.outcome, Ok(()), "{:?}", key.recipient().scheme());
            assert_eq!(plain, blocks().concat());
            assert_eq!(opened.chunks, ends.len() as u64);
            // Nothing of the plaintext shows in the file.
            assert!(!file.windows(64).any(|w| w == &blocks()[5][200..264]));
        }
    }
}

#[test]
fn keys_round_trip_through_pem_and_keep_their_id() {
    for key in [x25519(), OpeningKey::generate(Scheme::RsaOaep).unwrap()] {
        let again = OpeningKey::from_pem(&key.to_pem()).unwrap();
        let public = RecipientKey::from_pem(&key.recipient().to_pem()).unwrap();
        assert_eq!(again.recipient().key_id(), key.recipient().key_id());
        assert_eq!(public.key_id(), key.recipient().key_id());
        assert_eq!(public.key_id_hex().len(), 64);
    }
}

#[test]
fn a_file_cut_anywhere_gives_the_whole_chunks_before_the_cut_and_says_it_was_cut() {
    let key = x25519();
    let (file, ends) = seal(key.recipient(), &blocks(), true);
    let plain = blocks();
    for cut in 0..file.len() {
        let (prefix, opened) = open_all(&key, &file[..cut]);
        let whole = ends.iter().filter(|&&end| end <= cut).count();
        assert_eq!(prefix, plain[..whole].concat(), "cut at {cut}");
        let expected = if cut < 8 {
            OpenError::NotSealed
        } else {
            OpenError::Truncated {
                chunks: whole as u64,
            }
        };
        assert_eq!(opened.outcome, Err(expected), "cut at {cut}");
    }
}

/// The length of the `cvrh` box.
fn header_len(file: &[u8]) -> usize {
    u32::from_be_bytes(file[..4].try_into().unwrap()) as usize
}

#[test]
fn dropping_or_swapping_or_relabelling_a_chunk_is_detected() {
    let key = x25519();
    let (file, ends) = seal(key.recipient(), &blocks(), true);
    let starts: Vec<usize> = std::iter::once(header_len(&file))
        .chain(ends.iter().copied())
        .collect();
    let chunk = |i: usize| &file[starts[i]..starts[i + 1]];
    let header = &file[..header_len(&file)];
    // Chunk 2 dropped.
    let dropped = [header, chunk(0), chunk(1), chunk(3), chunk(4), chunk(5)].concat();
    assert_eq!(
        open_all(&key, &dropped).1.outcome,
        Err(OpenError::Tampered { chunk: 2 })
    );
    // Chunks 1 and 2 swapped.
    let swapped = [header, chunk(0), chunk(2), chunk(1)].concat();
    assert_eq!(
        open_all(&key, &swapped).1.outcome,
        Err(OpenError::Tampered { chunk: 1 })
    );
    // A middle chunk relabelled as the last, to hide what follows.
    let mut relabelled = [header, chunk(0), chunk(1)].concat();
    relabelled[starts[1] + 8] = ChunkKind::LastBlock as u8;
    assert_eq!(
        open_all(&key, &relabelled).1.outcome,
        Err(OpenError::Tampered { chunk: 1 })
    );
    // The final chunk relabelled as a middle one: then the file reads as cut short.
    let mut unfinished = file.clone();
    unfinished[starts[5] + 8] = ChunkKind::Block as u8;
    assert_eq!(
        open_all(&key, &unfinished).1.outcome,
        Err(OpenError::Tampered { chunk: 5 })
    );
    // A chunk of another file sealed for the same key, at the same place.
    let (other, other_ends) = seal(key.recipient(), &blocks(), true);
    let foreign = &other[other_ends[1]..other_ends[2]];
    let spliced = [header, chunk(0), chunk(1), foreign].concat();
    assert_eq!(
        open_all(&key, &spliced).1.outcome,
        Err(OpenError::Tampered { chunk: 2 })
    );
    // Anything after the final chunk.
    let trailing = [&file[..], chunk(0)].concat();
    assert_eq!(
        open_all(&key, &trailing).1.outcome,
        Err(OpenError::AfterEnd { chunks: 6 })
    );
}

#[test]
fn another_key_is_told_apart_from_an_altered_header() {
    let (key, other) = (x25519(), x25519());
    let (file, _) = seal(key.recipient(), &blocks(), true);
    let (plain, opened) = open_all(&other, &file);
    assert!(plain.is_empty());
    assert!(matches!(opened.outcome, Err(OpenError::WrongKey { .. })));
    // The wrapped key altered: it no longer unwraps.
    let mut altered = file.clone();
    altered[8 + 40] ^= 1;
    assert_eq!(open_all(&key, &altered).1.outcome, Err(OpenError::Unwrap));
    // A file that is not sealed at all.
    let (_, opened) = open_all(&key, b"\0\0\0\x18ftypisom\0\0\0\0isomiso6");
    assert_eq!(opened.outcome, Err(OpenError::NotSealed));
}

#[test]
fn keys_convrec_cannot_use_are_refused_with_what_to_use_instead() {
    let err = RecipientKey::from_pem("hello").unwrap_err();
    assert!(err.to_string().contains("BEGIN PUBLIC KEY"), "{err}");
    let private = x25519().to_pem();
    let err = RecipientKey::from_pem(&private).unwrap_err();
    assert!(err.to_string().contains("found 'PRIVATE KEY'"), "{err}");
    // An Ed25519 public key (openssl genpkey -algorithm ed25519 | openssl pkey -pubout).
    let ed25519 = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
    let err = RecipientKey::from_pem(ed25519).unwrap_err();
    assert!(err.to_string().contains("Ed25519"), "{err}");
    let err = RecipientKey::from_pem("-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----")
        .unwrap_err();
    assert!(matches!(err, KeyError::Base64(_)), "{err}");
    let err = OpeningKey::from_pem(
        "-----BEGIN RSA PRIVATE KEY-----\nAA==\n-----END RSA PRIVATE KEY-----",
    )
    .unwrap_err();
    assert!(err.to_string().contains("openssl pkcs8 -topk8"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any one byte changed anywhere: the file never opens whole, and what does open is a prefix
    /// of what was sealed.
    #[test]
    fn any_altered_byte_is_detected(at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let key = x25519();
        let (mut file, _) = seal(key.recipient(), &blocks(), true);
        let at = at.index(file.len());
        file[at] ^= flip;
        let (plain, opened) = open_all(&key, &file);
        prop_assert!(opened.outcome.is_err(), "byte {} altered, yet the file opened", at);
        prop_assert!(blocks().concat().starts_with(&plain));
    }
}
