//! The part of loading shared by the broker and the nameserver: walking a file's entries through
//! the key tables, collecting warnings (unknown keys, trimmed values, old key spellings), and
//! building errors that point at the file and line.

use std::path::{Path, PathBuf};

use super::error::{location, ConfigError};
use super::properties::{Entry, Properties};
use super::value::Note;
use super::HostEnv;

/// Applies one key to a whole config (every section that has it); `Ok(None)` = unknown key.
pub(crate) type ApplyFn<C> = fn(&mut C, &str, &str) -> Result<Option<Note>, String>;

/// State of one load: the file's entries, its name, the warnings so far, and the entries no
/// table knows (kept, as upstream keeps them for GET_BROKER_CONFIG / GET_NAMESRV_CONFIG).
pub(crate) struct Loader<'a> {
    pub props: &'a Properties,
    pub file: &'a Path,
    pub warnings: Vec<String>,
    pub unknown: Vec<(String, String)>,
}

impl<'a> Loader<'a> {
    pub fn new(props: &'a Properties, file: &'a Path) -> Self {
        Loader {
            props,
            file,
            warnings: Vec::new(),
            unknown: Vec::new(),
        }
    }

    /// Records a warning and logs it.
    pub fn warn(&mut self, message: String) {
        tracing::warn!("{message}");
        self.warnings.push(message);
    }

    /// `file:line` of `key`'s entry, or just the file when the key is absent.
    pub fn at(&self, key: &str) -> String {
        location(self.file, self.line(key))
    }

    /// The line of `key`'s entry, 0 when absent.
    pub fn line(&self, key: &str) -> usize {
        self.props.entry(key).map_or(0, |e| e.line)
    }

    pub fn has(&self, key: &str) -> bool {
        self.props.entry(key).is_some()
    }

    /// A bad-value error located at `key`'s entry (or at `fallback_key`'s, when `key` is not in
    /// the file, e.g. a default that conflicts with another key).
    pub fn bad(&self, key: &str, value: &str, fallback_key: &str, reason: String) -> ConfigError {
        let line = match self.line(key) {
            0 => self.line(fallback_key),
            line => line,
        };
        ConfigError::bad_value(key, value, self.file, line, reason)
    }

    /// Feeds every entry to `apply`. `aliases` maps old spellings to current keys: an old
    /// spelling applies to the current key unless the current key is also present (it wins).
    pub fn apply_entries<C>(
        &mut self,
        target: &mut C,
        aliases: &[(&'static str, &'static str)],
        apply: ApplyFn<C>,
    ) -> Result<(), ConfigError> {
        let props = self.props;
        for entry in props.entries() {
            let Some(key) = self.resolve_alias(entry, aliases) else {
                continue;
            };
            match apply(target, key, &entry.value) {
                Ok(Some(note)) => self.note(entry, note),
                Ok(None) => {
                    self.warn(format!(
                        "{}: unknown key {} in {} (ignored)",
                        location(self.file, entry.line),
                        entry.key,
                        self.file.display()
                    ));
                    self.unknown.push((entry.key.clone(), entry.value.clone()));
                }
                Err(reason) => {
                    return Err(ConfigError::bad_value(
                        &entry.key,
                        &entry.value,
                        self.file,
                        entry.line,
                        reason,
                    ))
                }
            }
        }
        Ok(())
    }

    /// The key an entry applies to, or `None` when it is an old spelling overridden by the new.
    fn resolve_alias<'e>(
        &mut self,
        entry: &'e Entry,
        aliases: &[(&'static str, &'static str)],
    ) -> Option<&'e str> {
        let Some(&(old, new)) = aliases.iter().find(|(old, _)| *old == entry.key) else {
            return Some(entry.key.as_str());
        };
        let here = location(self.file, entry.line);
        if self.has(new) {
            self.warn(format!(
                "{here}: {old} ignored: {new} is also set ({}) and wins",
                self.at(new)
            ));
            return None;
        }
        tracing::info!("{here}: applying {old} (spelling of RocketMQ 4.0-4.5.1) as {new}");
        Some(new)
    }

    fn note(&mut self, entry: &Entry, note: Note) {
        let here = location(self.file, entry.line);
        match note {
            Note::Clean => {}
            Note::Trimmed => self.warn(format!(
                "{here}: value {:?} of {} has surrounding blanks; using {:?} \
                 (upstream would ignore the value and keep the default)",
                entry.value,
                entry.key,
                entry.value.trim_matches([' ', '\t', '\u{0C}'])
            )),
            Note::KeptTrailingBlanks => self.warn(format!(
                "{here}: value {:?} of {} ends with blanks, kept verbatim as upstream keeps them",
                entry.value, entry.key
            )),
        }
    }
}

/// The file to read for `-c path`: `path` itself, unless it is relative, missing from the
/// current directory and present under `$ROCKETMQ_HOME` (so `-c conf/broker.conf` works from
/// anywhere when `ROCKETMQ_HOME` is set, as upstream's install layout suggests).
pub(crate) fn resolve_conf_path(path: &Path, env: &HostEnv) -> PathBuf {
    if path.is_absolute() || env.cwd.join(path).exists() {
        return path.to_path_buf();
    }
    match &env.rocketmq_home {
        Some(home) if home.join(path).exists() => {
            let resolved = home.join(path);
            tracing::info!(
                "config file {} found under ROCKETMQ_HOME: {}",
                path.display(),
                resolved.display()
            );
            resolved
        }
        _ => path.to_path_buf(),
    }
}
