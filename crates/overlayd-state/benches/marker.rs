//! Marker benchmarks: durable save (temp + fsync + rename + dir fsync),
//! load (read + parse + index), encode alone, and lookup by owner, at 10,
//! 1,000 and 10,000 entries with realistic fields (keys included).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use overlayd_state::entry::KIND_LINUX_WIREGUARD;
use overlayd_state::{KeyPair, LoadOutcome, Marker, MarkerFile, NetworkEntry, Owner};

const SIZES: [usize; 3] = [10, 1_000, 10_000];

fn marker(n: usize) -> Marker {
    let mut m = Marker::new();
    for i in 0..n {
        let kp = KeyPair::generate();
        let mut e = NetworkEntry::new(
            Owner::service(&format!("service-{i}")).expect("valid name"),
            KIND_LINUX_WIREGUARD,
            &format!("ovl-wg-{i:08x}"),
            &format!("6f0e1d2c-3b4a-4958-8776-{i:012x}"),
            &format!("10.{}.{}.0/24", 64 + (i >> 8) % 64, i % 256),
        );
        e.wg_port = Some(51821 + (i % 256) as u16);
        e.wg_private_key = Some(kp.private_base64());
        e.wg_public_key = Some(kp.public_base64());
        e.interface = Some(format!("ovl-br-{i:08x}"));
        m.upsert(e);
    }
    m
}

fn benches(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    for n in SIZES {
        let m = marker(n);
        let dir = tmp.path().join(n.to_string());
        let file = MarkerFile::new(&dir);
        file.save(&m).expect("save");

        c.bench_with_input(BenchmarkId::new("save", n), &m, |b, m| {
            b.iter(|| file.save(black_box(m)).expect("save"))
        });
        c.bench_with_input(BenchmarkId::new("encode", n), &m, |b, m| {
            b.iter(|| black_box(m).to_json_vec().expect("encode"))
        });
        c.bench_function(&format!("load/{n}"), |b| {
            b.iter(|| match file.load().expect("load") {
                LoadOutcome::Loaded(m) => m,
                other => panic!("unexpected {other:?}"),
            })
        });
        let owners: Vec<Owner> = (0..n)
            .step_by((n / 10).max(1))
            .map(|i| Owner::service(&format!("service-{i}")).expect("valid name"))
            .collect();
        let mut next = 0;
        c.bench_with_input(BenchmarkId::new("lookup", n), &m, |b, m| {
            b.iter(|| {
                next = (next + 1) % owners.len();
                black_box(m.get(black_box(&owners[next])))
                    .expect("present")
                    .wg_port
            })
        });
    }
}

criterion_group!(marker_benches, benches);
criterion_main!(marker_benches);
