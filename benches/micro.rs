//! Micro-benchmarks of the store's pure parts (harness = false): record encode/decode/check,
//! body CRC at 128 B / 4 KiB / 64 KiB, consume-queue unit encode/decode and lookup. Prints
//! ns/op. Run: `cargo bench --bench micro`. Numbers, not assertions.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // reason: a benchmark program

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::time::Instant;

use shardmq::store::consume_queue::{decode_entry, encode_entry, ConsumeQueue, CqEntry};
use shardmq::store::record::{self, RecordFields};

fn measure(name: &str, iterations: u32, mut f: impl FnMut()) {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let ns = start.elapsed().as_nanos() / u128::from(iterations);
    println!("{name:<44} {ns:>8} ns/op");
}

fn fields(body: &[u8]) -> RecordFields<'_> {
    let h = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 10911);
    RecordFields {
        queue_id: 3,
        flag: 0,
        queue_offset: 123_456,
        phys_offset: 987_654_321,
        sys_flag: 0,
        born_timestamp: 1_795_528_577_000,
        born_host: h,
        store_timestamp: 1_795_528_577_001,
        store_host: h,
        reconsume_times: 0,
        prepared_tx_offset: 0,
        body,
        topic: "BenchmarkTest",
        properties: "KEYS\u{1}k-1\u{2}UNIQ_KEY\u{1}7F0000010000000000000000000000AB\u{2}WAIT\u{1}true\u{2}TAGS\u{1}TagA",
    }
}

fn main() {
    let n = 200_000;
    for size in [128usize, 4096] {
        let body = vec![b'x'; size];
        let f = fields(&body);
        let mut out = Vec::with_capacity(size + 256);
        measure(
            &format!("record encode ({size} B body, with CRC)"),
            n,
            || {
                out.clear();
                record::encode(black_box(&f), &mut out);
            },
        );
        let encoded = out.clone();
        measure(&format!("record decode ({size} B body, no CRC)"), n, || {
            black_box(record::decode(black_box(&encoded)).unwrap());
        });
        measure(
            &format!("record check ({size} B body, CRC verified)"),
            n,
            || {
                black_box(record::check(black_box(&encoded)).unwrap());
            },
        );
    }
    for size in [128usize, 4096, 65536] {
        let body = vec![7u8; size];
        let iters = if size > 4096 { 20_000 } else { n };
        measure(&format!("body crc32 ({size} B)"), iters, || {
            black_box(record::body_crc(black_box(&body)));
        });
    }
    let e = CqEntry {
        phys: 1 << 40,
        size: 200,
        tags_code: 12345,
    };
    let mut unit = Vec::with_capacity(20);
    measure("consume-queue unit encode", n, || {
        unit.clear();
        encode_entry(black_box(&e), &mut unit);
    });
    measure("consume-queue unit decode", n, || {
        black_box(decode_entry(black_box(&unit)));
    });
    let mut cq = ConsumeQueue::new(Path::new("/nonexistent"), "BenchmarkTest", 0, 20 * 300_000);
    let count = 1_000_000u64;
    for i in 0..count {
        cq.push(
            i,
            CqEntry {
                phys: 1000 + i * 200,
                size: 200,
                tags_code: 0,
            },
        );
    }
    let mut k = 0u64;
    measure("consume-queue lookup (1 M entries, random)", n, || {
        k = (k.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1)) % count;
        black_box(cq.entry(black_box(k)));
    });
}
