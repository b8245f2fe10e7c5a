//! The environment a result was measured in: CPU, cores, kernel, the filesystem and device of
//! the store directory, the broker's flush mode and role (asked over the wire), and the shardmq
//! git revision.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Environment {
    pub cpu_model: String,
    pub cores: usize,
    pub kernel: String,
    pub hostname: String,
    pub store_dir: String,
    pub filesystem: String,
    pub device: String,
    /// The filesystem's own options (`discard` makes deleting a file cost device time).
    #[serde(default)]
    pub mount_options: String,
    /// Used share of the store's filesystem, as `df` shows it. Over a broker's
    /// `diskMaxUsedSpaceRatio` (75 by default) retention deletes commit-log files during the
    /// run; over 90 sends are refused.
    #[serde(default)]
    pub store_disk_used_percent: f64,
    pub flush_mode: String,
    pub broker_role: String,
    pub broker_version: String,
    pub broker_addrs: Vec<String>,
    pub shardmq_git_rev: String,
    pub date_utc: String,
}

fn first_line(path: &str) -> String {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// (filesystem type, device, filesystem options) of the mount holding `dir`, from
/// /proc/self/mountinfo.
pub fn mount_of(dir: &Path) -> (String, String, String) {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Default::default();
    };
    let mut best: Option<(usize, String, String, String)> = None;
    for line in info.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        let (Some(mp), Some(fs_type), Some(dev)) = (f.get(4), f.get(sep + 1), f.get(sep + 2))
        else {
            continue;
        };
        if dir.starts_with(mp) && best.as_ref().is_none_or(|b| mp.len() >= b.0) {
            let opts = f.get(sep + 3).copied().unwrap_or_default();
            best = Some((
                mp.len(),
                (*fs_type).to_string(),
                (*dev).to_string(),
                opts.to_string(),
            ));
        }
    }
    best.map(|b| (b.1, b.2, b.3)).unwrap_or_default()
}

/// `git rev-parse --short HEAD` in the current directory or next to the executable.
pub fn git_rev() -> String {
    if let Ok(v) = std::env::var("SHARDMQ_GIT_REV") {
        return v;
    }
    let mut dirs = vec![std::env::current_dir().unwrap_or_default()];
    if let Ok(exe) = std::env::current_exe() {
        if let Some(d) = exe.parent() {
            dirs.push(d.to_path_buf());
        }
    }
    for d in dirs {
        if let Ok(o) = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(&d)
            .output()
        {
            if o.status.success() {
                return String::from_utf8_lossy(&o.stdout).trim().to_string();
            }
        }
    }
    String::new()
}

pub fn date_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Everything but the broker's answers (filled in by the run).
pub fn local(store_dir: &Path) -> Environment {
    let (filesystem, device, mount_options) = mount_of(store_dir);
    let used = crate::store::retention::fs_usage(store_dir)
        .map_or(0.0, crate::store::retention::used_ratio);
    Environment {
        cpu_model: cpu_model(),
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        kernel: first_line("/proc/sys/kernel/osrelease"),
        hostname: first_line("/proc/sys/kernel/hostname"),
        store_dir: store_dir.display().to_string(),
        filesystem,
        device,
        mount_options,
        store_disk_used_percent: (used * 100.0).round(),
        shardmq_git_rev: git_rev(),
        date_utc: date_utc(),
        ..Environment::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_mounted_somewhere() {
        let (fs_type, _dev, _opts) = mount_of(Path::new("/"));
        assert!(!fs_type.is_empty());
        let e = local(Path::new("/tmp"));
        assert!(e.cores >= 1);
        assert!(
            e.store_disk_used_percent > 0.0 && e.store_disk_used_percent <= 100.0,
            "{}",
            e.store_disk_used_percent
        );
    }
}
