//! Golden and mutation tests of the wire codec against frames recorded from
//! upstream Java 4.3.1 (`shared/golden/java-4.3.1/*.jsonl`, see its README).
//!
//! Golden: every recorded frame is split (`check`), decoded to the recorded
//! values, re-encoded byte for byte, and survives a trip through the binary
//! header; every JSON body parses with the lenient fastjson reader.
//!
//! Mutation: seed-driven bit flips, truncations and length lies on those frames
//! prove that `check`/`decode` never panic and that decoding is idempotent.
//! Seed: env `SHARDMQ_FUZZ_SEED` (default: time based), printed on failure;
//! iterations: env `SHARDMQ_FUZZ_ITERS` (default 20000).

// reason: test helpers outside #[test] fns; a panic is the wanted failure mode.
#![allow(clippy::unwrap_used)]

mod recordings;

use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use recordings::golden_dir;
use serde_json::Value;
use shardmq::constants::FRAME_MAX_LEN;
use shardmq::remoting::{
    check, decode, decode_bytes, encode, fastjson, message, RemotingCommand, SerializeType,
};

struct Golden {
    file: String,
    line: usize,
    rec: Value,
    frame: Vec<u8>,
}

fn load() -> Vec<Golden> {
    let dir = golden_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 5,
        "expected 5 golden files in {}",
        dir.display()
    );
    let mut out = Vec::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let before = out.len();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let rec: Value = serde_json::from_str(line).unwrap();
            if rec["kind"] != "frame" {
                continue;
            }
            let frame = rebuild(&rec);
            out.push(Golden {
                file: name.clone(),
                line: i + 1,
                rec,
                frame,
            });
        }
        assert!(out.len() > before, "{name} has no frame records");
    }
    out
}

fn rebuild(rec: &Value) -> Vec<u8> {
    if let Some(h) = rec["frame_hex"].as_str() {
        return hex::decode(h).unwrap();
    }
    let l = rec["total_len_field"].as_u64().unwrap() as u32;
    let t = rec["serialize_type"].as_u64().unwrap() as u32;
    let h = rec["header_len"].as_u64().unwrap() as u32;
    let mut f = Vec::new();
    f.extend_from_slice(&l.to_be_bytes());
    f.extend_from_slice(&((t << 24) | h).to_be_bytes());
    f.extend_from_slice(rec["header_text"].as_str().unwrap().as_bytes());
    f.extend_from_slice(&hex::decode(rec["body_hex"].as_str().unwrap()).unwrap());
    assert_eq!(f.len(), 4 + l as usize);
    f
}

/// Binary headers cannot tell "absent" from "empty"; compare modulo that.
fn normalized(mut c: RemotingCommand) -> RemotingCommand {
    if c.ext_fields.as_ref().is_some_and(|f| f.is_empty()) {
        c.ext_fields = None;
    }
    if c.remark.as_deref() == Some("") {
        c.remark = None;
    }
    c.serialize_type = SerializeType::Json;
    c
}

#[test]
fn golden_frames_decode_and_reencode_byte_for_byte() {
    let all = load();
    assert!(all.len() >= 290, "only {} frames", all.len());
    let mut lenient_bodies = 0;
    let mut nonstd_bodies = 0;
    for g in &all {
        let at = format!("{}:{}", g.file, g.line);
        let rec = &g.rec;
        let f = &g.frame[..];

        assert_eq!(check(f, FRAME_MAX_LEN), Ok(Some(f.len())), "{at}");
        for cut in [0, 3, 4, 7, 8, f.len() - 1] {
            assert_eq!(check(&f[..cut], FRAME_MAX_LEN), Ok(None), "{at} cut {cut}");
        }

        let cmd = decode(f).unwrap_or_else(|e| panic!("{at}: {e}"));
        let header = &rec["header"];
        assert_eq!(i64::from(cmd.code), rec["code"].as_i64().unwrap(), "{at}");
        assert_eq!(
            i64::from(cmd.opaque),
            rec["opaque"].as_i64().unwrap(),
            "{at}"
        );
        assert_eq!(i64::from(cmd.flag), rec["flag"].as_i64().unwrap(), "{at}");
        assert_eq!(
            i64::from(cmd.version),
            header["version"].as_i64().unwrap(),
            "{at}"
        );
        assert_eq!(
            cmd.language.name(),
            header["language"].as_str().unwrap(),
            "{at}"
        );
        assert_eq!(cmd.remark.as_deref(), header["remark"].as_str(), "{at}");
        match header.get("extFields") {
            None => assert_eq!(cmd.ext_fields, None, "{at}"),
            Some(Value::Object(m)) => {
                let want: Vec<(&str, &str)> = m
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
                    .collect();
                let got: Vec<(&str, &str)> = cmd.ext_fields.as_ref().unwrap().iter().collect();
                assert_eq!(got, want, "{at}");
            }
            Some(other) => panic!("{at}: extFields is {other}"),
        }
        let body = hex::decode(rec["body_hex"].as_str().unwrap()).unwrap();
        assert_eq!(&cmd.body[..], &body[..], "{at}");
        assert_eq!(
            decode_bytes(Bytes::copy_from_slice(f)).unwrap(),
            cmd,
            "{at} decode_bytes"
        );

        let mut again = BytesMut::new();
        encode(&cmd, &mut again).unwrap();
        assert!(
            again[..] == *f,
            "{at}: re-encoded frame differs\n got: {}\nwant: {}",
            String::from_utf8_lossy(&again[8..]),
            String::from_utf8_lossy(&f[8..])
        );

        let mut bin = cmd.clone();
        bin.serialize_type = SerializeType::RocketMq;
        let mut bin_frame = BytesMut::new();
        encode(&bin, &mut bin_frame).unwrap();
        assert_eq!(bin_frame[4], 1, "{at}");
        assert_eq!(check(&bin_frame, FRAME_MAX_LEN), Ok(Some(bin_frame.len())));
        let back = decode(&bin_frame).unwrap_or_else(|e| panic!("{at} binary: {e}"));
        assert_eq!(back.serialize_type, SerializeType::RocketMq);
        assert_eq!(normalized(back), normalized(cmd.clone()), "{at} binary");

        if let Some(text) = rec["body_text"].as_str() {
            if text.starts_with('{') || text.starts_with('[') {
                let v = fastjson::parse_lenient(text.as_bytes())
                    .unwrap_or_else(|e| panic!("{at}: lenient body: {e}"));
                assert!(v.is_object() || v.is_array());
                lenient_bodies += 1;
            }
        }
        if rec["body_is_std_json"] == Value::Bool(false) {
            fastjson::parse_lenient(&body).unwrap_or_else(|e| panic!("{at}: {e}"));
            nonstd_bodies += 1;
        }
        if cmd.code == 320 && !cmd.is_response() {
            let msgs = message::decode_batch(&cmd.body).unwrap();
            assert_eq!(msgs.len(), 3, "{at}");
            assert_eq!(&msgs[0].body[..], b"batch body 0");
            assert_eq!(message::encode_batch(&msgs), cmd.body);
        }
    }
    assert!(
        nonstd_bodies >= 30,
        "only {nonstd_bodies} non-standard bodies"
    );
    assert!(lenient_bodies >= nonstd_bodies);
}

#[test]
fn golden_consume_stats_object_keys() {
    let all = load();
    let g = all
        .iter()
        .find(|g| {
            g.rec["body_text"]
                .as_str()
                .is_some_and(|t| t.starts_with("{\"consumeTps\""))
        })
        .expect("a GET_CONSUME_STATS response in mqadmin.jsonl");
    let v = fastjson::parse_lenient(g.rec["body_text"].as_str().unwrap().as_bytes()).unwrap();
    let table = v["offsetTable"].as_object().unwrap();
    let (k, _) = table.iter().next().unwrap();
    let key: Value = serde_json::from_str(k).unwrap();
    assert_eq!(key["brokerName"], "broker-a");
    assert_eq!(key["topic"], "GoldenTopic");
}

// ---------------------------------------------------------------------------
// Mutation fuzzing

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn interesting_u32(r: &mut XorShift) -> u32 {
    const V: [u32; 10] = [
        0,
        1,
        3,
        4,
        8,
        0x7f,
        0xffff,
        0x00ff_ffff,
        0x7fff_ffff,
        0xffff_ffff,
    ];
    if r.below(3) == 0 {
        r.next() as u32
    } else {
        V[r.below(V.len())]
    }
}

fn mutate(r: &mut XorShift, input: &[u8]) -> Vec<u8> {
    let mut m = input.to_vec();
    for _ in 0..1 + r.below(3) {
        match r.below(7) {
            // bit flips
            0 => {
                for _ in 0..1 + r.below(8) {
                    if !m.is_empty() {
                        let i = r.below(m.len());
                        m[i] ^= 1 << r.below(8);
                    }
                }
            }
            // truncation
            1 => {
                let n = r.below(m.len() + 1);
                m.truncate(n);
            }
            // lie in the frame length word
            2 if m.len() >= 4 => m[..4].copy_from_slice(&interesting_u32(r).to_be_bytes()),
            // lie in the type/header-length word
            3 if m.len() >= 8 => {
                let w = if r.below(2) == 0 {
                    interesting_u32(r) & 0x01ff_ffff
                } else {
                    interesting_u32(r)
                };
                m[4..8].copy_from_slice(&w.to_be_bytes());
            }
            // a length lie anywhere (binary header remark/ext/key/value lengths)
            4 if m.len() >= 12 => {
                let i = 8 + r.below(m.len() - 11);
                let end = (i + 4).min(m.len());
                let w = interesting_u32(r).to_be_bytes();
                m[i..end].copy_from_slice(&w[..end - i]);
            }
            // delete or duplicate a range
            5 if !m.is_empty() => {
                let a = r.below(m.len());
                let b = a + r.below(m.len() - a + 1).min(64);
                if r.below(2) == 0 {
                    m.drain(a..b);
                } else {
                    let dup: Vec<u8> = m[a..b].to_vec();
                    m.splice(a..a, dup);
                }
            }
            // overwrite a byte with a JSON-significant one
            _ if !m.is_empty() => {
                const J: &[u8] = b"{}[]\":,\\0-9eu\x00\x01\xff";
                let i = r.below(m.len());
                m[i] = J[r.below(J.len())];
            }
            _ => {}
        }
    }
    m
}

fn exercise(m: &[u8]) {
    let mut rest = m;
    // Walk the buffer like the net layer would; every step must terminate.
    while let Ok(Some(n)) = check(rest, FRAME_MAX_LEN) {
        assert!(n >= 8 && n <= rest.len());
        if let Ok(cmd) = decode(&rest[..n]) {
            let mut out = BytesMut::new();
            if encode(&cmd, &mut out).is_ok() {
                let again = decode(&out).expect("a re-encoded frame decodes");
                assert_eq!(again, cmd, "decode is idempotent");
            }
            let _ = message::decode_batch(&cmd.body);
            let _ = fastjson::parse_lenient(&cmd.body);
        }
        rest = &rest[n..];
    }
    let _ = decode(m);
    let _ = fastjson::parse_lenient(m.get(8..).unwrap_or_default());
}

fn exercise_json(m: &[u8]) {
    if let Ok(v) = fastjson::parse_lenient(m) {
        let mut text = String::new();
        fastjson::write_value(&mut text, &v);
        let again = fastjson::parse_lenient(text.as_bytes()).expect("our own output parses");
        assert_eq!(again, v, "lenient parse of written value is stable");
    }
}

#[test]
fn mutated_frames_never_panic() {
    let seed: u64 = match std::env::var("SHARDMQ_FUZZ_SEED") {
        Ok(s) => s.parse().expect("SHARDMQ_FUZZ_SEED is a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
    .max(1);
    let iters: usize = std::env::var("SHARDMQ_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    println!("SHARDMQ_FUZZ_SEED={seed} SHARDMQ_FUZZ_ITERS={iters}");

    // Corpus: every golden frame, its binary-header twin, and two frames back to back.
    let mut corpus: Vec<Vec<u8>> = Vec::new();
    for g in load() {
        let cmd = decode(&g.frame).unwrap();
        let mut bin = cmd;
        bin.serialize_type = SerializeType::RocketMq;
        let mut b = BytesMut::new();
        encode(&bin, &mut b).unwrap();
        corpus.push(b.to_vec());
        corpus.push(g.frame);
    }
    let pair = [corpus[0].clone(), corpus[1].clone()].concat();
    corpus.push(pair);
    // JSON bodies (fastjson quirks included) for the lenient reader.
    let bodies: Vec<Vec<u8>> = load()
        .iter()
        .filter_map(|g| g.rec["body_text"].as_str())
        .filter(|t| t.starts_with('{') || t.starts_with('['))
        .map(|t| t.as_bytes().to_vec())
        .collect();
    assert!(!bodies.is_empty());

    let mut r = XorShift(seed);
    for i in 0..iters {
        let json = r.below(4) == 0;
        let m = if json {
            let k = r.below(bodies.len());
            mutate(&mut r, &bodies[k])
        } else {
            let k = r.below(corpus.len());
            mutate(&mut r, &corpus[k])
        };
        let result = std::panic::catch_unwind(|| {
            if json {
                exercise_json(&m);
            } else {
                exercise(&m);
            }
        });
        if let Err(e) = result {
            println!(
                "failure at iteration {i} with SHARDMQ_FUZZ_SEED={seed}; input ({} bytes): {}",
                m.len(),
                hex::encode(&m[..m.len().min(2048)])
            );
            std::panic::resume_unwind(e);
        }
    }
}
