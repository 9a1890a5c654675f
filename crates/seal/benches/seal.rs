//! Sealing cost per block against what each block already costs in the spool: writing it and
//! fsyncing it (the baseline, same run, same block). A block is one fragment: 256 KiB is about a
//! second of 2 Mbit/s video.
//!
//! `cargo bench -p convrec-seal --bench seal`

use std::hint::black_box;
use std::io::Write;

use convrec_seal::{ChunkKind, Opener, OpeningKey, Scheme, Sealer};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const BLOCK: usize = 256 * 1024;

fn bench(c: &mut Criterion) {
    let block: Vec<u8> = (0..BLOCK).map(|n| (n * 31) as u8).collect();
    let key = OpeningKey::generate(Scheme::X25519).expect("a key");
    let mut group = c.benchmark_group("block of 256 KiB");
    group.throughput(Throughput::Bytes(BLOCK as u64));

    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut file = std::fs::File::create(dir.path().join("spool")).expect("a spool file");
    group.bench_function("baseline: write + fsync (the spool's cost)", |b| {
        b.iter(|| {
            file.write_all(black_box(&block)).expect("write");
            file.sync_data().expect("fsync");
        })
    });

    let mut sealer = Sealer::new(key.recipient()).expect("a sealer");
    group.bench_function("seal (AES-256-GCM)", |b| {
        b.iter(|| {
            black_box(
                sealer
                    .seal(ChunkKind::Block, black_box(&block))
                    .expect("sealed"),
            )
        })
    });

    // Opening: chunks of one file, in order (a fresh opener per pass of the file).
    let mut sealer = Sealer::new(key.recipient()).expect("a sealer");
    let mut boxes = Vec::new();
    for _ in 0..64 {
        boxes.push(sealer.seal(ChunkKind::Block, &block).expect("sealed"));
    }
    let header_len = u32::from_be_bytes(boxes[0][..4].try_into().expect("4 bytes")) as usize;
    let header = boxes[0][..header_len].to_vec();
    boxes[0].drain(..header_len);
    let mut opener = Opener::new(&key);
    opener
        .handle_box(*b"cvrh", &header[8..])
        .expect("the header opens");
    let mut next = 0;
    group.bench_function("open (AES-256-GCM)", |b| {
        b.iter(|| {
            if next == boxes.len() {
                opener = Opener::new(&key);
                opener
                    .handle_box(*b"cvrh", &header[8..])
                    .expect("the header opens");
                next = 0;
            }
            let chunk = &boxes[next];
            next += 1;
            black_box(opener.handle_box(*b"cvrc", &chunk[8..]).expect("opens"))
        })
    });
    group.finish();

    c.bench_function("a file's data key: X25519 wrap", |b| {
        b.iter(|| black_box(Sealer::new(key.recipient()).expect("a sealer")))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
