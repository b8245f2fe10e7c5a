//! Persisting the broker's JSON config files with upstream's protocol
//! (`MixAll.string2File`): write `<name>.tmp`, copy the current file to `<name>.bak`, replace.
//! Loading falls back to `.bak` when the file is missing, empty or unparsable.
//!
//! The writes run on glommio's blocking thread pool so a shard never blocks on the file system.

use std::path::{Path, PathBuf};

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
pub async fn write_off_shard(path: PathBuf, content: String) {
    let shown = path.clone();
    let result = glommio::executor()
        .spawn_blocking(move || write_with_backup(&path, &content))
        .await;
    if let Err(e) = result {
        tracing::error!(path = %shown.display(), error = %e, "cannot persist config file");
    }
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
}
