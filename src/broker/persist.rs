//! Persisting the broker's JSON config files with upstream's protocol
//! (`MixAll.string2File`): write `<name>.tmp`, copy the current file to `<name>.bak`, replace.
//! Loading falls back to `.bak` when the file is missing, empty or unparsable.
//!
//! The writes run on glommio's blocking thread pool so a shard never blocks on the file system.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

/// Pretty JSON with tab indentation, like fastjson's pretty format.
pub fn pretty_json(v: &Value) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    if serde::Serialize::serialize(v, &mut ser).is_err() {
        return v.to_string();
    }
    String::from_utf8(out).unwrap_or_else(|_| v.to_string())
}

/// Writes `content` to `path` with the `.tmp` / `.bak` protocol (blocking; call it through
/// [`write_off_shard`] from a shard).
pub fn write_with_backup(path: &Path, content: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = with_suffix(path, ".tmp");
    std::fs::write(&tmp, content)?;
    if path.exists() {
        std::fs::copy(path, with_suffix(path, ".bak"))?;
    }
    std::fs::rename(&tmp, path)
}

/// Runs [`write_with_backup`] on the executor's blocking pool and logs a failure with the path.
///
/// Writes of one file are ordered by when this function was CALLED (not when the returned
/// future runs): call it right where the content was snapshot. Two writes of the same file in
/// flight at once used to share its `.tmp` (one could rename the other's half-written file into
/// place, and a kill -9 then loaded the stale `.bak`: a topic created before the kill was gone),
/// and an older snapshot could land after a newer one. Now each write holds the writers' lock,
/// and a write older than what the file already holds is skipped.
pub fn write_off_shard(path: PathBuf, content: String) -> impl std::future::Future<Output = ()> {
    let seq = WRITE_SEQ.fetch_add(1, Ordering::Relaxed);
    async move {
        let shown = path.clone();
        let result = glommio::executor()
            .spawn_blocking(move || write_in_order(&path, &content, seq))
            .await;
        if let Err(e) = result {
            tracing::error!(path = %shown.display(), error = %e, "cannot persist config file");
        }
    }
}

static WRITE_SEQ: AtomicU64 = AtomicU64::new(1);

/// The sequence number of the newest write on disk, per file. Only the blocking pool's threads
/// take this lock (never a shard), for the length of one small file write.
#[allow(clippy::disallowed_types)] // reason: used off-shard only, by blocking-pool threads
static WRITTEN: std::sync::Mutex<BTreeMap<PathBuf, u64>> = std::sync::Mutex::new(BTreeMap::new());

fn write_in_order(path: &Path, content: &str, seq: u64) -> std::io::Result<()> {
    let mut written = WRITTEN.lock().unwrap_or_else(|e| e.into_inner());
    if written.get(path).is_some_and(|&newest| newest > seq) {
        return Ok(());
    }
    write_with_backup(path, content)?;
    written.insert(path.to_path_buf(), seq);
    Ok(())
}

/// Loads a config file, falling back to `.bak`. `Ok(None)` when neither exists (start empty);
/// an error only when the `.bak` is unparsable too (upstream refuses to start then).
pub fn load_with_backup(path: &Path) -> Result<Option<Value>, String> {
    match read_json(path) {
        Ok(Some(v)) => return Ok(Some(v)),
        Ok(None) => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "unparsable; trying .bak"),
    }
    let bak = with_suffix(path, ".bak");
    read_json(&bak).map_err(|e| format!("{}: {e}", bak.display()))
}

fn read_json(path: &Path) -> Result<Option<Value>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    crate::remoting::fastjson::parse_lenient(&bytes)
        .map(Some)
        .map_err(|e| e.to_string())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_protocol_keeps_previous_content_and_falls_back_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config").join("topics.json");
        write_with_backup(&path, "{\"a\":1}").unwrap();
        write_with_backup(&path, "{\"a\":2}").unwrap();
        assert_eq!(load_with_backup(&path).unwrap().unwrap()["a"], 2);
        std::fs::write(&path, "{garbage").unwrap();
        assert_eq!(load_with_backup(&path).unwrap().unwrap()["a"], 1);
        assert!(load_with_backup(&dir.path().join("none.json"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn concurrent_writes_leave_the_newest_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("topics.json");
        // Big enough that an unsynchronised writer would be caught mid-file.
        let content = |n: u64| format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(200_000));
        let threads: Vec<_> = (1..=16u64)
            .map(|n| {
                let p = path.clone();
                std::thread::spawn(move || write_in_order(&p, &content(n), 1_000 + n).unwrap())
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let v = load_with_backup(&path).unwrap().unwrap();
        assert_eq!(v["n"], 16, "the newest snapshot is on disk");
        // An older snapshot arriving late does not overwrite it.
        write_in_order(&path, &content(3), 1_003).unwrap();
        assert_eq!(load_with_backup(&path).unwrap().unwrap()["n"], 16);
    }
}
