//! The configuration layer's one error type. Every variant names what failed: the file (or the
//! command-line option / environment variable standing in for one), the line, the key and the
//! offending value, so an operator can fix the file without reading code.

use std::io;
use std::path::{Path, PathBuf};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The properties file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },

    /// A `\uXXXX` escape that is not exactly four hex digits, or a UTF-16 surrogate that has no
    /// partner (upstream throws too, and the broker exits).
    #[error("{}: malformed escape: {reason}", location(file, *line))]
    BadEscape {
        file: PathBuf,
        line: usize,
        reason: String,
    },

    /// A known key with a value that does not parse or is out of range. `line` is 0 when the
    /// value did not come from a file line (a `-n` option, an environment variable, a default);
    /// `file` then names that source.
    #[error("{}: bad value {value:?} for {key}: {reason}", location(file, *line))]
    BadValue {
        key: String,
        value: String,
        file: PathBuf,
        line: usize,
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn bad_value(
        key: &str,
        value: &str,
        file: &Path,
        line: usize,
        reason: impl Into<String>,
    ) -> Self {
        ConfigError::BadValue {
            key: key.to_owned(),
            value: value.to_owned(),
            file: file.to_path_buf(),
            line,
            reason: reason.into(),
        }
    }
}

/// `file:line`, or just `file` when the value has no line (line 0).
pub(crate) fn location(file: &Path, line: usize) -> String {
    if line == 0 {
        file.display().to_string()
    } else {
        format!("{}:{line}", file.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_value_reads_like_a_compiler_message() {
        let err = ConfigError::bad_value(
            "flushDiskType",
            "FAST",
            Path::new("conf/x.properties"),
            7,
            "expected ASYNC_FLUSH or SYNC_FLUSH",
        );
        assert_eq!(
            err.to_string(),
            "conf/x.properties:7: bad value \"FAST\" for flushDiskType: \
             expected ASYNC_FLUSH or SYNC_FLUSH"
        );
    }

    #[test]
    fn bad_value_without_line_names_only_the_source() {
        let err = ConfigError::bad_value(
            "namesrvAddr",
            "x",
            Path::new("command line option -n"),
            0,
            "r",
        );
        assert_eq!(
            err.to_string(),
            "command line option -n: bad value \"x\" for namesrvAddr: r"
        );
    }
}
