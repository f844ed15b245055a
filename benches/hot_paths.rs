//! criterion benches of rbdkit's hot paths: zero detection, qcow2 L2 lookup, deflate and zstd
//! cluster decode, the `sha256-blocks` checksum of a chunk, latency recording. `scripts/bench-baseline.sh` compares a run with a saved
//! baseline so a regression in our own code shows before it reaches a cluster.
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rbdkit::bench::Recorder;
use rbdkit::copy::digest::block_digests;
use rbdkit::copy::nonzero_runs;
use rbdkit::disk::qcow2::{decode_cluster, Compression, Qcow2};
use std::io::Write;
use std::time::{Duration, Instant};

fn zero_detection(c: &mut Criterion) {
    let mut g = c.benchmark_group("zero_detection");
    let zeros = vec![0u8; 4 << 20];
    let mut mixed = vec![0u8; 4 << 20];
    for i in (0..mixed.len()).step_by(8192) {
        mixed[i + 4095] = 1;
    }
    g.throughput(Throughput::Bytes(zeros.len() as u64));
    g.bench_function("4MiB_all_zero", |b| {
        b.iter(|| nonzero_runs(black_box(&zeros), 4096))
    });
    g.bench_function("4MiB_half_data", |b| {
        b.iter(|| nonzero_runs(black_box(&mixed), 4096))
    });
    g.finish();
}

/// The block digests of a 4 MiB chunk: all data (SHA-NI speed is the bound), and with data in
/// one block of four (the rest must cost nothing).
fn chunk_checksum(c: &mut Criterion) {
    let mut g = c.benchmark_group("chunk_checksum");
    let data: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    let whole = [(0usize, data.len())];
    let quarter: Vec<(usize, usize)> = (0..data.len())
        .step_by(256 << 10)
        .map(|s| (s, 64 << 10))
        .collect();
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("4MiB_data", |b| {
        b.iter(|| block_digests(black_box(&data), &whole))
    });
    g.bench_function("4MiB_quarter_data", |b| {
        b.iter(|| block_digests(black_box(&data), &quarter))
    });
    g.finish();
}

fn cluster_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("cluster_decode");
    // A 64 KiB cluster of text-like data, as a filesystem image holds.
    let data: Vec<u8> = (0..65536u32)
        .map(|i| b"rbdkit qcow2 cluster "[(i % 21) as usize] ^ (i / 4096) as u8)
        .collect();
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&data).unwrap();
    let deflated = enc.finish().unwrap();
    let zstded = zstd::encode_all(&data[..], 3).unwrap();
    let mut out = vec![0u8; 65536];
    g.throughput(Throughput::Bytes(65536));
    g.bench_function("deflate_64k", |b| {
        b.iter(|| decode_cluster(Compression::Deflate, black_box(&deflated), &mut out).unwrap())
    });
    g.bench_function("zstd_64k", |b| {
        b.iter(|| decode_cluster(Compression::Zstd, black_box(&zstded), &mut out).unwrap())
    });
    g.finish();
}

fn l2_lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l2.qcow2");
    let p = path.to_str().unwrap();
    let ok = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", p, "4G"])
        .status()
        .unwrap();
    assert!(ok.success());
    let mut cmd = std::process::Command::new("qemu-io");
    cmd.args(["-f", "qcow2"]);
    for i in 0..64 {
        cmd.args(["-c", &format!("write -P 1 {}M 64k", i * 64)]);
    }
    assert!(cmd.arg(p).output().unwrap().status.success());
    let img = Qcow2::open(&path, &rbdkit::disk::FilePolicy::refuse()).unwrap();
    let mut off = 0u64;
    c.bench_function("qcow2_l2_lookup_cached", |b| {
        b.iter(|| {
            off = (off + 7 * 65536 + 4096) % (4 << 30);
            img.lookup(black_box(off)).unwrap()
        })
    });
}

fn histogram_recording(c: &mut Criterion) {
    let start = Instant::now();
    c.bench_function("latency_record", |b| {
        b.iter_batched_ref(
            || Recorder::new(start, Duration::ZERO),
            |r| {
                let t = Instant::now();
                for i in 0..1000u32 {
                    r.record(
                        t,
                        t + Duration::from_nanos(50_000 + i as u64 * 37),
                        4096,
                        true,
                    );
                }
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(
    benches,
    zero_detection,
    chunk_checksum,
    cluster_decode,
    l2_lookup,
    histogram_recording
);
criterion_main!(benches);
