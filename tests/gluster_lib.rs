//! Live tests of the libgfapi layer (`rbdkit::gluster`) against the real GlusterFS volume of
//! scripts/gluster-server.sh: files made, written, read back, truncated and removed, the async
//! window, and the connect errors.
mod common;
use common::*;
use rbdkit::gluster::{AioQueue, GlusterUrl, Volume};
use std::time::{Duration, Instant};

fn url(name: &str) -> GlusterUrl {
    GlusterUrl::parse(&format!("{}/{name}", gluster_url())).unwrap()
}

#[test]
fn create_write_read_truncate_unlink() {
    let u = url(&unique("lib"));
    let vol = Volume::connect(&u, Duration::from_secs(10)).unwrap();
    let f = vol.create_new(&u.abs_path(), 8 << 20).unwrap();
    assert_eq!(f.stat().unwrap().0, 8 << 20);
    assert!(vol.create_new(&u.abs_path(), 1).is_err(), "O_EXCL");
    let data: Vec<u8> = (0..(1 << 20)).map(|i| (i * 7 % 251) as u8).collect();
    f.write_all_at(&data, 3 << 20).unwrap();
    let mut back = vec![0u8; data.len()];
    assert_eq!(f.read_at(&mut back, 3 << 20).unwrap(), data.len());
    assert_eq!(back, data);
    // The brick holds the same bytes, as a plain sparse file.
    let on_brick = std::fs::read(gluster_brick().join(&u.path)).unwrap();
    assert_eq!(&on_brick[3 << 20..4 << 20], &data[..]);
    assert!(on_brick[..3 << 20].iter().all(|&b| b == 0));
    let (_, alloc) = f.stat().unwrap();
    assert!((1 << 20..8 << 20).contains(&alloc), "sparse: {alloc}");
    f.set_len(0).unwrap();
    f.set_len(8 << 20).unwrap();
    assert!(f.stat().unwrap().1 < 1 << 20, "emptied");
    drop(f);
    assert!(vol.exists(&u.abs_path()).unwrap());
    vol.unlink(&u.abs_path()).unwrap();
    assert!(!vol.exists(&u.abs_path()).unwrap());
    assert!(vol.open(&u.abs_path(), false).unwrap().is_none());
}

#[test]
fn async_window_writes_and_reads_back() {
    let u = url(&unique("aio"));
    let vol = Volume::connect(&u, Duration::from_secs(10)).unwrap();
    let f = vol.create_new(&u.abs_path(), 4 << 20).unwrap();
    let bs = 64 << 10;
    let blocks = 64usize;
    {
        let mut q = AioQueue::new(&f, 8, bs);
        let mut next = 0usize;
        let mut done = 0usize;
        while done < blocks {
            while next < blocks && q.in_flight() < 8 {
                let slot = (0..8).find(|&s| q.buf(s).is_some()).unwrap();
                q.buf_mut(slot).unwrap().fill(next as u8 + 1);
                q.submit(slot, (next * bs) as u64, bs, false).unwrap();
                next += 1;
            }
            let (_, ret) = q.wait().unwrap();
            assert_eq!(ret, bs as isize);
            done += 1;
        }
        assert!(q.wait().is_none());
    }
    let mut q = AioQueue::new(&f, 4, bs);
    for (slot, b) in [(0usize, 5usize), (1, 63), (2, 0)] {
        q.submit(slot, (b * bs) as u64, bs, true).unwrap();
        assert!(
            q.buf_mut(slot).is_none(),
            "a slot in flight is not lent out"
        );
    }
    let mut seen = 0;
    while let Some((slot, ret)) = q.wait() {
        assert_eq!(ret, bs as isize);
        let want = [6u8, 64, 1][slot];
        assert!(
            q.buf(slot).unwrap().iter().all(|&x| x == want),
            "slot {slot}"
        );
        seen += 1;
    }
    assert_eq!(seen, 3);
    drop(q);
    vol.unlink(&u.abs_path()).unwrap();
}

#[test]
fn missing_volume_and_unreachable_server_fail_within_the_timeout() {
    let base = GlusterUrl::parse(&format!("{}/f", gluster_url())).unwrap();
    let missing = GlusterUrl {
        volume: "nosuchvolume".into(),
        ..base.clone()
    };
    let t = Instant::now();
    let e = Volume::connect(&missing, Duration::from_secs(10))
        .err()
        .expect("a missing volume fails")
        .to_string();
    assert!(t.elapsed() < Duration::from_secs(11), "{:?}", t.elapsed());
    assert!(e.contains("nosuchvolume") && !e.contains('\n'), "{e}");
    let nobody = GlusterUrl {
        port: Some(1),
        ..base
    };
    let t = Instant::now();
    let e = Volume::connect(&nobody, Duration::from_secs(5))
        .err()
        .expect("nothing listens on port 1")
        .to_string();
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    assert!(e.contains("127.0.0.1:1") && !e.contains('\n'), "{e}");
}
