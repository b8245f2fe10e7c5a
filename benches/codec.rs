//! Micro-benchmark of the remoting codec (harness = false): encode and decode of a
//! SEND_MESSAGE_V2 frame like a Java producer's, and of a pull response header, and
//! the property lookups every send makes. Prints ns/op.
//! Run: `cargo bench --bench codec`. Numbers, not assertions: speed goals live here, not in tests.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // reason: a benchmark program

use std::hint::black_box;
use std::time::Instant;

use bytes::BytesMut;
use shardmq::remoting::header::SendMessageHeader;
use shardmq::remoting::{frame, message, RemotingCommand};
use shardmq::store::index_format;

fn send_v2() -> RemotingCommand {
    RemotingCommand::request(310, 7)
        .with_field("a", "GoldenProducerGroup")
        .with_field("b", "GoldenTopic")
        .with_field("c", "TBW102")
        .with_field("d", "4")
        .with_field("e", "1")
        .with_field("f", "0")
        .with_field("g", "1795528577000")
        .with_field("h", "0")
        .with_field(
            "i",
            "KEYS\u{1}golden-key-1\u{2}UNIQ_KEY\u{1}C0000202000000000000000000000000\u{2}WAIT\u{1}true\u{2}TAGS\u{1}TagA",
        )
        .with_field("j", "0")
        .with_field("k", "false")
        .with_field("m", "false")
        .with_body(vec![b'x'; 128])
}

/// `n` SEND_MESSAGE_V2 frames that differ as a real stream's do: producer group and topic
/// names, queue ids, timestamps, opaques, keys, unique keys and tags of varying lengths. One
/// header decoded over and over lets the branch predictor learn every byte loop exactly; the
/// broker meets a different header each time, with cold predictors after the kernel's work.
fn varied_frames(n: usize) -> Vec<bytes::Bytes> {
    // splitmix64 over a counter: the same headers on every run.
    let mut state = 0u64;
    let mut rnd = move |m: u64| {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % m
    };
    let word = |r: &mut dyn FnMut(u64) -> u64, len: u64| -> String {
        (0..len)
            .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz_-0123456789"[r(38) as usize]))
            .collect()
    };
    (0..n)
        .map(|_| {
            let len = 3 + rnd(20);
            let group = format!("{}_group", word(&mut rnd, len));
            let len = 4 + rnd(30);
            let topic = word(&mut rnd, len);
            let mut props = String::new();
            if rnd(2) == 0 {
                let len = 1 + rnd(40);
                props.push_str(&format!("KEYS\u{1}{}\u{2}", word(&mut rnd, len)));
            }
            props.push_str(&format!(
                "UNIQ_KEY\u{1}{:032X}\u{2}",
                u128::from(rnd(u64::MAX)) << 40
            ));
            props.push_str("WAIT\u{1}true");
            if rnd(3) > 0 {
                let len = 1 + rnd(12);
                props.push_str(&format!("\u{2}TAGS\u{1}{}", word(&mut rnd, len)));
            }
            let cmd = RemotingCommand::request(310, i32::try_from(rnd(1 << 31)).unwrap())
                .with_field("a", group)
                .with_field("b", topic)
                .with_field("c", "TBW102")
                .with_field("d", "4")
                .with_field("e", rnd(16).to_string())
                .with_field("f", "0")
                .with_field("g", (1_795_528_577_000 + rnd(1 << 30)).to_string())
                .with_field("h", "0")
                .with_field("i", props)
                .with_field("j", "0")
                .with_field("k", "false")
                .with_field("m", "false")
                .with_body(vec![b'x'; 128]);
            let mut buf = BytesMut::new();
            frame::encode(&cmd, &mut buf).unwrap();
            buf.freeze()
        })
        .collect()
}

fn measure(name: &str, iterations: u32, mut f: impl FnMut()) {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let ns = start.elapsed().as_nanos() / u128::from(iterations);
    println!("{name:<40} {ns:>8} ns/op");
}

fn main() {
    let cmd = send_v2();
    let mut buf = BytesMut::with_capacity(1024);
    frame::encode(&cmd, &mut buf).unwrap();
    let encoded = buf.clone().freeze();
    let n = 200_000;
    measure("encode SEND_MESSAGE_V2 (JSON header)", n, || {
        buf.clear();
        frame::encode(black_box(&cmd), &mut buf).unwrap();
    });
    measure("check + decode SEND_MESSAGE_V2", n, || {
        let len = frame::check(black_box(&encoded), usize::MAX)
            .unwrap()
            .unwrap();
        black_box(frame::decode_bytes(encoded.slice(..len)).unwrap());
    });
    let varied = varied_frames(4096);
    let mut at = 0;
    measure("check + decode, 4096 varied headers", n, || {
        let f = &varied[at % varied.len()];
        at += 1;
        let len = frame::check(black_box(f), usize::MAX).unwrap().unwrap();
        black_box(frame::decode_bytes(f.slice(..len)).unwrap());
    });
    measure("decode SEND_MESSAGE_V2 + its header", n, || {
        let len = frame::check(black_box(&encoded), usize::MAX)
            .unwrap()
            .unwrap();
        let c = frame::decode_bytes(encoded.slice(..len)).unwrap();
        let fields = c.ext_fields.as_ref().unwrap();
        black_box(SendMessageHeader::from_fields_v2(fields).unwrap());
    });
    // What the send path and the index read from every message's properties.
    let props = "KEYS\u{1}golden-key-1\u{2}UNIQ_KEY\u{1}C0000202000000000000000000000000\u{2}WAIT\u{1}true\u{2}TAGS\u{1}TagA";
    measure("properties: WAIT + tags code + key hashes", n, || {
        let p = black_box(props);
        black_box(message::get_property(p, message::keys::WAIT));
        black_box(message::tags_code(p));
        index_format::for_each_record_key_hash("GoldenTopic", p, |h| {
            black_box(h);
        });
    });
    let mut binary = cmd.clone();
    binary.serialize_type = shardmq::remoting::SerializeType::RocketMq;
    let mut bin_buf = BytesMut::with_capacity(1024);
    frame::encode(&binary, &mut bin_buf).unwrap();
    let bin_encoded = bin_buf.freeze();
    measure("check + decode (binary header)", n, || {
        let len = frame::check(black_box(&bin_encoded), usize::MAX)
            .unwrap()
            .unwrap();
        black_box(frame::decode_bytes(bin_encoded.slice(..len)).unwrap());
    });
}
