//! Live tests of the iSCSI path against the real tgtd of scripts/lvm-iscsi.sh (libiscsi, no
//! kernel initiator): data written through rbdkit's layer is what the LUN's backing file holds
//! and the other way round, `rbdkit bench iscsi://` phases on a thin LUN (emptied with UNMAP),
//! the refusals on someone's LUN and on one without UNMAP, and the connect errors. The LUN
//! comes from RBDKIT_ISCSI_URL; unset is a failure, not a skip.
mod common;
use common::*;
use rbdkit::iscsi::{AioQueue, IscsiUrl, Lun, CONNECT_TIMEOUT};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tests share two LUNs and compare their backing files: one test at a time.
static LUNS: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    LUNS.lock().unwrap_or_else(|e| e.into_inner())
}

/// `len` bytes that differ per seed and per 512-byte block.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn read_file_at(path: &std::path::Path, offset: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, offset).unwrap();
    buf
}

#[test]
fn data_written_through_libiscsi_is_in_the_backing_file_and_back() {
    let _g = lock();
    let (url, file) = iscsi_thick();
    let mut lun = Lun::connect(&IscsiUrl::parse(&url).unwrap(), CONNECT_TIMEOUT).unwrap();
    // The size agrees with libiscsi's own tool and with the backing file.
    let cap = std::process::Command::new("iscsi-readcapacity16")
        .arg(&url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&cap.stdout);
    assert!(
        text.contains(&format!("Total size:{}", lun.size())),
        "{text}"
    );
    assert_eq!(lun.size(), std::fs::metadata(&file).unwrap().len());
    assert!(!lun.provisioning().unmap, "LUN 2 is thick");
    // 64 writes of 64 KiB, 16 in flight, scattered over the LUN.
    let (n, len, depth) = (64u64, 64usize << 10, 16usize);
    let stride = lun.size() / n / len as u64 * len as u64;
    let offsets: Vec<u64> = (0..n).map(|i| (i * 37 % n) * stride).collect();
    let seed = std::process::id() as u64;
    {
        let mut q = AioQueue::new(&mut lun, depth, len);
        let mut next = 0;
        let mut free: Vec<usize> = (0..depth).collect();
        loop {
            while let (Some(slot), true) = (free.pop(), next < offsets.len()) {
                q.buf_mut(slot)
                    .unwrap()
                    .copy_from_slice(&pattern(len, seed + next as u64));
                q.submit(slot, offsets[next], len, false).unwrap();
                next += 1;
            }
            match q.wait().unwrap() {
                Some((slot, outcome)) => {
                    assert_eq!(outcome, Ok(len));
                    free.push(slot);
                }
                None => break,
            }
        }
    }
    for (i, &off) in offsets.iter().enumerate() {
        assert!(
            read_file_at(&file, off, len) == pattern(len, seed + i as u64),
            "backing file differs at {off}"
        );
    }
    // The other way: the backing file written directly, read through libiscsi.
    let off = stride * 3 + 4096;
    let want = pattern(len, seed ^ 0xabc);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.write_all_at(&want, off).unwrap();
        f.sync_all().unwrap();
    }
    let mut q = AioQueue::new(&mut lun, 1, len);
    q.submit(0, off, len, true).unwrap();
    let (slot, outcome) = q.wait().unwrap().unwrap();
    assert_eq!((slot, outcome), (0, Ok(len)));
    assert!(q.buf(0).unwrap() == want.as_slice(), "read back differs");
    // An unaligned request is refused before it reaches the target.
    let e = q.submit(0, 100, 512, true).unwrap_err().to_string();
    assert!(e.contains("not whole 512-byte blocks"), "{e}");
}

#[test]
fn phases_on_a_thin_lun_first_write_into_unmapped_blocks_then_overwrite_then_read() {
    let _g = lock();
    let url = iscsi_url();
    let file = iscsi_backing();
    // Someone's data first: the run must empty the LUN before its first-write phase.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.write_all_at(&pattern(8 << 20, 7), 0).unwrap();
    }
    let report = bench_local_json(&[
        &url,
        "--phases",
        "--allow-existing",
        "--runtime",
        "1s",
        "--iodepth",
        "8",
        "--repeat",
        "2",
    ]);
    let results = report["results"].as_array().unwrap();
    let phases: Vec<&str> = results
        .iter()
        .map(|r| r["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        [
            "first-write",
            "overwrite",
            "read",
            "first-write",
            "overwrite",
            "read"
        ]
    );
    for first in [&results[0], &results[3]] {
        let (before, after) = (
            first["allocated_before"].as_u64().unwrap(),
            first["allocated_after"].as_u64().unwrap(),
        );
        assert_eq!(
            before, 0,
            "UNMAP emptied the LUN before each first-write phase"
        );
        assert!(
            after > 1 << 20,
            "first writes map blocks: {before} -> {after}"
        );
    }
    for r in results {
        assert_measured(r, "libiscsi");
    }
    // GET LBA STATUS agrees with what the backing file holds (tgt punches holes on UNMAP).
    use std::os::unix::fs::MetadataExt;
    let used = std::fs::metadata(&file).unwrap().blocks() * 512;
    let mapped = results[3]["allocated_after"].as_u64().unwrap();
    assert!(
        used.abs_diff(mapped) <= used / 10 + (1 << 20),
        "backing file uses {used}, the LUN reports {mapped} mapped"
    );
    // The LUN is never removed, and what the second run wrote is there.
    assert!(read_file_at(&file, 0, 8 << 20) != pattern(8 << 20, 7));
}

#[test]
fn someone_s_lun_is_refused_without_allow_existing_and_a_thick_one_for_phases() {
    let _g = lock();
    let (thick, file) = iscsi_thick();
    let before = std::fs::read(&file).unwrap();
    let out = bench_local(&[&thick, "--rw", "randwrite", "--runtime", "1s"]);
    assert_one_line_error(&out, 1, &[&thick, "--allow-existing", "someone's volume"]);
    let out = bench_local(&[&thick, "--phases", "--allow-existing", "--runtime", "1s"]);
    assert_one_line_error(&out, 2, &[&thick, "cannot be emptied", "UNMAP"]);
    let out = bench_local(&[
        &thick,
        "--rw",
        "randwrite",
        "--size",
        "1G",
        "--allow-existing",
    ]);
    assert_one_line_error(&out, 1, &[&thick, "--size"]);
    assert!(
        std::fs::read(&file).unwrap() == before,
        "nothing was written"
    );
    // Reading is allowed and writes nothing.
    let out = bench_local(&[&thick, "--rw", "randread", "--runtime", "1s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("reading it as it is"),
        "{}",
        stderr(&out)
    );
    assert!(
        std::fs::read(&file).unwrap() == before,
        "nothing was written"
    );
    // With --allow-existing the writes arrive in the backing file.
    let out = bench_local(&[
        &thick,
        "--rw",
        "randwrite",
        "--io-total",
        "4M",
        "--allow-existing",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        std::fs::read(&file).unwrap() != before,
        "the writes arrived"
    );
}

#[test]
fn missing_lun_unknown_iqn_and_unreachable_portal_are_one_line_errors_in_time() {
    let url = IscsiUrl::parse(&iscsi_url()).unwrap();
    let limit = CONNECT_TIMEOUT + Duration::from_secs(3);
    let run = |target: &str| {
        let t = Instant::now();
        let out = bench_local(&[target, "--rw", "randread", "--runtime", "1s"]);
        assert!(t.elapsed() < limit, "{target}: {:?}", t.elapsed());
        out
    };
    let missing = format!("{}/{}/7", url.portal_url(), url.iqn);
    assert_one_line_error(
        &run(&missing),
        1,
        &[&missing, "no such LUN", "disk LUNs 1..2"],
    );
    let controller = format!("{}/{}/0", url.portal_url(), url.iqn);
    assert_one_line_error(&run(&controller), 2, &[&controller, "not a disk"]);
    let unknown = format!(
        "{}/iqn.2010-10.org.openstack:volume-nosuch/1",
        url.portal_url()
    );
    assert_one_line_error(
        &run(&unknown),
        1,
        &[&unknown, "no target named", "iscsi-ls"],
    );
    let refused = "iscsi://127.0.0.1:1/iqn.2010-10.org.openstack:volume-x/1";
    assert_one_line_error(&run(refused), 1, &[refused, "cannot connect", "refused"]);
    let unresolved = "iscsi://nosuchhost.invalid/iqn.2010-10.org.openstack:volume-x/1";
    assert_one_line_error(
        &run(unresolved),
        1,
        &[unresolved, "cannot connect", "resolv"],
    );
    // A portal that accepts the TCP connection and never answers: the connect timeout ends it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mute = format!("iscsi://127.0.0.1:{port}/iqn.2010-10.org.openstack:volume-x/1");
    let t = Instant::now();
    assert_one_line_error(&run(&mute), 1, &[&mute, "no answer within 10 s"]);
    assert!(t.elapsed() >= CONNECT_TIMEOUT - Duration::from_millis(500));
    drop(silent);
    let out = bench_local(&["iscsi://h/iqn.x:y", "--runtime", "1s"]);
    assert_one_line_error(&out, 2, &["iscsi://HOST[:PORT]/IQN/LUN"]);
}
