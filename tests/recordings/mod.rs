//! The Java 4.3.1 recordings (`../shared/golden/java-4.3.1`, README there): locating them,
//! reading a JSON-lines file, and turning a recorded frame into a `RemotingCommand`. Shared by
//! the golden tests; a test fails (never skips) when the recordings are missing.

// reason: each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;
use shardmq::remoting::{ExtFields, LanguageCode, RemotingCommand, SerializeType};

/// The recordings directory: beside the repository (as CI lays it out), else the shared path.
pub fn golden_dir() -> PathBuf {
    let beside = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/golden/java-4.3.1");
    if beside.is_dir() {
        return beside;
    }
    let fixed = PathBuf::from("/work/shared/golden/java-4.3.1");
    assert!(
        fixed.is_dir(),
        "golden files missing: neither {} nor {} exists",
        beside.display(),
        fixed.display()
    );
    fixed
}

/// Every record of one recordings file, in order.
pub fn load(file: &str) -> Vec<Value> {
    let path = golden_dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}:{}: bad JSON: {e}", path.display(), i + 1))
        })
        .collect()
}

/// A recorded frame as a command: the header as recorded, the body from `body_hex`.
pub fn command_from(rec: &Value) -> RemotingCommand {
    let h = &rec["header"];
    let int = |k: &str| i32::try_from(h[k].as_i64().unwrap_or(0)).expect("i32 header field");
    let ext_fields = h.get("extFields").map(|f| {
        f.as_object()
            .expect("extFields is an object")
            .iter()
            .map(|(k, v)| (k, v.as_str().expect("string value")))
            .collect::<ExtFields>()
    });
    RemotingCommand {
        code: int("code"),
        language: LanguageCode::from_name(h["language"].as_str().expect("language")),
        version: int("version"),
        opaque: int("opaque"),
        flag: int("flag"),
        remark: h
            .get("remark")
            .map(|r| r.as_str().expect("remark").to_string()),
        ext_fields,
        body: hex::decode(rec["body_hex"].as_str().expect("body_hex"))
            .expect("hex body")
            .into(),
        serialize_type: SerializeType::Json,
    }
}
