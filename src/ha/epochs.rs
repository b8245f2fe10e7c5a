//! Which master life wrote which bytes of a shard's commit log: the record that lets a slave
//! find where its copy and a restarted master's log part (ARCHITECTURE 50).
//!
//! A master that lost its last bytes (power loss, or a `kill -9` with `haShipBeforeWrite`
//! between shipping a batch and writing it) comes back shorter than a slave that got them, and
//! may write other messages at those offsets before the slave reconnects. Offsets alone cannot
//! tell: the slave would resume at its own end and silently keep bytes the master no longer
//! has. So each master start is a new *epoch* (a life): the shard's history file lists, per
//! epoch, the offset where it began, cut back at every start to what that start recovered.
//! A slave keeps the history of the master it copies and sends nothing of it; the master
//! sends its history in the handshake answer, and the slave compares: its bytes at an offset
//! are the master's only where both histories name the same epoch there. Below the first
//! difference both logs hold the same bytes; from it on the slave's must go ([`reconcile`]).
//! The same design as Kafka's leader epochs, with the whole (short) history in one message.
//!
//! A history also carries a random *lineage* id, made when a master creates its history on an
//! empty or pre-history log: a slave never cuts bytes that a different lineage describes (a
//! master whose store was wiped, another cluster's master); it refuses and says so.
//!
//! File `<storePathCommitLog>/<shard>/ha-epochs` (beside the log it describes, so it goes
//! when the log goes), text: `lineage <16 hex digits>` then one `<epoch> <start offset>` line
//! per epoch, starts non-decreasing. Written whole (`.tmp`, fsync, rename, fsync of the
//! directory) on the blocking pool: by a master at each start before it serves a slave, by a
//! slave when the master's history differs from its own, before the first byte it appends.

use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of a shard's epoch history, in the shard's commit-log directory.
pub const EPOCHS_FILE: &str = "ha-epochs";
/// The most epochs one answer may carry (16 bytes each): a master restarted more often than
/// this is not a realistic history, and a corrupt count must not make the slave allocate.
pub const MAX_EPOCHS: usize = 1 << 16;

/// A shard's epoch history: `(epoch, first local offset)` in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epochs {
    pub lineage: u64,
    pub entries: Vec<(u64, u64)>,
}

/// What a slave does with its log after comparing histories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every byte the slave holds is the master's: keep it, adopt the master's history.
    Agree,
    /// The slave's bytes from this local offset on are not the master's: cut them.
    Cut(u64),
    /// The histories are of different lineages: replicate nothing, say why.
    Foreign(String),
}

impl Epochs {
    /// A new lineage for a log that has no history yet and ends at `end`: bytes already there
    /// count as epoch 0 (a store from before histories existed).
    pub fn new_lineage(end: u64) -> Epochs {
        // std's hasher keys come from the OS's random source once per process; the time and
        // the process id make two ids of one process differ too.
        use std::hash::BuildHasher;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let lineage = std::hash::RandomState::new().hash_one((now, std::process::id()));
        let entries = if end > 0 { vec![(0, 0)] } else { Vec::new() };
        Epochs { lineage, entries }
    }

    /// The log was cut back to `end`: epochs that began beyond it now hold nothing. They stay
    /// (as empty ranges at `end`) so their numbers are never given to another life: a slave
    /// holding bytes of a lost epoch must not find that epoch alive again elsewhere.
    pub fn clamp(&mut self, end: u64) {
        for (_, start) in &mut self.entries {
            *start = (*start).min(end);
        }
    }

    /// A master starts: forget what recovery cut off, then open the next epoch at `end`.
    pub fn begin(&mut self, end: u64) -> u64 {
        self.clamp(end);
        let epoch = self.entries.last().map_or(1, |&(e, _)| e + 1);
        self.entries.push((epoch, end));
        epoch
    }

    /// Local offsets `[start, end)` written in `epoch` (`end` None: the current epoch).
    fn range(&self, epoch: u64) -> Option<(u64, Option<u64>)> {
        let i = self.entries.iter().position(|&(e, _)| e == epoch)?;
        Some((self.entries[i].1, self.entries.get(i + 1).map(|&(_, s)| s)))
    }

    pub fn render(&self) -> String {
        let mut s = format!("lineage {:016x}\n", self.lineage);
        for (epoch, start) in &self.entries {
            s.push_str(&format!("{epoch} {start}\n"));
        }
        s
    }

    pub fn parse(text: &str) -> Result<Epochs, String> {
        let mut lines = text.lines();
        let lineage = lines
            .next()
            .and_then(|l| l.strip_prefix("lineage "))
            .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
            .ok_or("first line is not `lineage <hex>`")?;
        let mut entries = Vec::new();
        for (n, line) in lines.enumerate() {
            let mut f = line.split_whitespace();
            let entry = match (f.next(), f.next(), f.next()) {
                (Some(e), Some(s), None) => e.parse().ok().zip(s.parse().ok()),
                _ => None,
            };
            let entry = entry.ok_or_else(|| format!("line {}: `{line}`", n + 2))?;
            entries.push(entry);
        }
        let h = Epochs { lineage, entries };
        h.check()?;
        Ok(h)
    }

    /// Epochs increase, starts do not decrease.
    fn check(&self) -> Result<(), String> {
        for w in self.entries.windows(2) {
            if w[1].0 <= w[0].0 || w[1].1 < w[0].1 {
                return Err(format!("entries out of order: {:?} then {:?}", w[0], w[1]));
            }
        }
        Ok(())
    }

    /// Wire form (big-endian): `[lineage u64][count u32]` then per epoch `[epoch u64][start
    /// u64]`.
    pub fn encode(&self) -> Vec<u8> {
        let n = self.entries.len().min(MAX_EPOCHS);
        let skip = self.entries.len() - n;
        let mut b = Vec::with_capacity(12 + 16 * n);
        b.extend_from_slice(&self.lineage.to_be_bytes());
        b.extend_from_slice(&(n as u32).to_be_bytes());
        for (epoch, start) in &self.entries[skip..] {
            b.extend_from_slice(&epoch.to_be_bytes());
            b.extend_from_slice(&start.to_be_bytes());
        }
        b
    }

    /// The count from a wire header (`[lineage][count]`, 12 bytes), checked against
    /// [`MAX_EPOCHS`].
    pub fn decode_header(b: &[u8; 12]) -> Result<(u64, usize), String> {
        let lineage = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let n = u32::from_be_bytes([b[8], b[9], b[10], b[11]]) as usize;
        if n > MAX_EPOCHS {
            return Err(format!("epoch history of {n} entries (limit {MAX_EPOCHS})"));
        }
        Ok((lineage, n))
    }

    /// The entries after a wire header (`16 * count` bytes).
    pub fn decode_entries(lineage: u64, b: &[u8]) -> Result<Epochs, String> {
        let entries = b
            .chunks_exact(16)
            .map(|c| {
                let mut e = [0u8; 8];
                let mut s = [0u8; 8];
                e.copy_from_slice(&c[..8]);
                s.copy_from_slice(&c[8..]);
                (u64::from_be_bytes(e), u64::from_be_bytes(s))
            })
            .collect();
        let h = Epochs { lineage, entries };
        h.check()?;
        Ok(h)
    }
}

/// Compares a slave's history (None: a store from before histories, or empty) and written end
/// with its master's history.
///
/// The slave's bytes in `[start, next start)` of one of its epochs are the master's when the
/// master's history has that epoch starting no later and ending no earlier; the first byte
/// where that fails is where the two logs part. Bytes below the slave's first epoch (none in
/// practice) and a slave without a history are trusted as before histories (the master still
/// refuses a slave that reports more than it has).
pub fn reconcile(slave: Option<&Epochs>, slave_end: u64, master: &Epochs) -> Verdict {
    let Some(slave) = slave.filter(|_| slave_end > 0) else {
        return Verdict::Agree;
    };
    if slave.lineage != master.lineage {
        return Verdict::Foreign(format!(
            "this slave's log (up to {slave_end}) is of lineage {:016x}, the master's of \
             {:016x}: the master's store was replaced or this slave copied another master; \
             nothing is cut automatically (empty this slave's store to copy the master anew)",
            slave.lineage, master.lineage
        ));
    }
    for (i, &(epoch, start)) in slave.entries.iter().enumerate() {
        if start >= slave_end {
            break;
        }
        let end = slave
            .entries
            .get(i + 1)
            .map_or(slave_end, |&(_, s)| s.min(slave_end));
        if end <= start {
            continue;
        }
        match master.range(epoch) {
            Some((m_start, m_end)) if m_start <= start => {
                if let Some(m_end) = m_end.filter(|&m| m < end) {
                    return Verdict::Cut(m_end.max(start));
                }
            }
            _ => return Verdict::Cut(start),
        }
    }
    Verdict::Agree
}

pub fn epochs_path(shard_dir: &Path) -> PathBuf {
    shard_dir.join(EPOCHS_FILE)
}

/// A pending cut of the slave's log, honoured by the next start's store recovery.
pub fn cut_path(shard_dir: &Path) -> PathBuf {
    crate::store::cut_marker_path(shard_dir)
}

/// Loads a shard's history (blocking; at startup). `Ok(None)`: no file.
pub fn load(shard_dir: &Path) -> Result<Option<Epochs>, String> {
    let path = epochs_path(shard_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => Epochs::parse(&text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// At a shard's start, after store recovery (`end`: the recovered end): loads the shard's
/// history; a master opens its next epoch at `end` (a new lineage when it had no history) and
/// persists the history durably before it serves any slave. Runs on the blocking pool.
pub async fn open_history(
    shard_dir: PathBuf,
    end: u64,
    master: bool,
) -> Result<Option<Epochs>, String> {
    glommio::executor()
        .spawn_blocking(move || {
            let mut history = load(&shard_dir)?;
            if !master {
                return Ok(history);
            }
            let h = history.get_or_insert_with(|| Epochs::new_lineage(end));
            let epoch = h.begin(end);
            let path = epochs_path(&shard_dir);
            write_durably(&path, h.render().as_bytes())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            tracing::info!(
                epoch,
                from = end,
                lineage = format!("{:016x}", h.lineage),
                "master epoch begins"
            );
            Ok(history)
        })
        .await
}

/// Replaces `path` with `content` durably: written to `.tmp`, fsynced, renamed over, and the
/// directory fsynced (blocking: call it through [`write_durably_off_shard`] from a shard).
pub fn write_durably(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(content)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// [`write_durably`] on the executor's blocking pool.
pub async fn write_durably_off_shard(path: PathBuf, content: Vec<u8>) -> std::io::Result<()> {
    glommio::executor()
        .spawn_blocking(move || write_durably(&path, &content))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(entries: &[(u64, u64)]) -> Epochs {
        Epochs {
            lineage: 7,
            entries: entries.to_vec(),
        }
    }

    #[test]
    fn a_master_start_opens_an_epoch_and_forgets_what_recovery_cut() {
        let mut m = Epochs::new_lineage(0);
        assert_eq!(m.begin(0), 1);
        assert_eq!(m.begin(100), 2);
        assert_eq!(m.begin(300), 3);
        // A power loss: this start recovered less than the last epoch began at.
        assert_eq!(m.begin(250), 4);
        assert_eq!(m.entries, vec![(1, 0), (2, 100), (3, 250), (4, 250)]);
        // A log from before histories: its bytes are epoch 0.
        let mut old = Epochs::new_lineage(500);
        assert_eq!(old.begin(500), 1);
        assert_eq!(old.entries, vec![(0, 0), (1, 500)]);
        assert_ne!(Epochs::new_lineage(0).lineage, old.lineage);
    }

    #[test]
    fn file_and_wire_forms_round_trip_and_bad_ones_are_named() {
        let m = Epochs {
            lineage: 0xDEAD_BEEF_0123_4567,
            entries: vec![(0, 0), (1, 4096), (3, 9000)],
        };
        assert_eq!(Epochs::parse(&m.render()).unwrap(), m);
        let wire = m.encode();
        let mut head = [0u8; 12];
        head.copy_from_slice(&wire[..12]);
        let (lineage, n) = Epochs::decode_header(&head).unwrap();
        assert_eq!(n, 3);
        assert_eq!(Epochs::decode_entries(lineage, &wire[12..]).unwrap(), m);
        assert!(Epochs::parse("1 0\n").unwrap_err().contains("lineage"));
        assert!(Epochs::parse("lineage 1\n1 x\n")
            .unwrap_err()
            .contains("line 2"));
        assert!(Epochs::parse("lineage 1\n2 0\n1 5\n")
            .unwrap_err()
            .contains("out of order"));
        head[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Epochs::decode_header(&head).unwrap_err().contains("limit"));
    }

    #[test]
    fn reconcile_keeps_what_both_logs_share_and_cuts_the_rest() {
        // Epoch 3 began at 300 and was lost with everything from 250 on.
        let master = h(&[(1, 0), (2, 100), (3, 250), (4, 250)]);
        // Copied epoch 1 and part of 2: all of it is the master's.
        assert_eq!(
            reconcile(Some(&h(&[(1, 0), (2, 100)])), 180, &master),
            Verdict::Agree
        );
        // Got epoch 2 up to 300, but the master kept it only to 250 (epoch 3 was lost too).
        let slave = h(&[(1, 0), (2, 100), (3, 300)]);
        assert_eq!(reconcile(Some(&slave), 320, &master), Verdict::Cut(250));
        assert_eq!(reconcile(Some(&slave), 260, &master), Verdict::Cut(250));
        assert_eq!(reconcile(Some(&slave), 250, &master), Verdict::Agree);
        // Only epoch 3 bytes beyond what the master kept of epoch 2: cut where epoch 3 began.
        assert_eq!(
            reconcile(Some(&h(&[(1, 0), (2, 100), (3, 250)])), 280, &master),
            Verdict::Cut(250)
        );
        // An epoch the master never had.
        assert_eq!(
            reconcile(Some(&h(&[(1, 0), (5, 100)])), 150, &master),
            Verdict::Cut(100)
        );
        // The master's current epoch is open-ended; the slave's entries past its end are empty.
        assert_eq!(
            reconcile(
                Some(&h(&[(1, 0), (2, 100), (4, 250), (5, 900)])),
                600,
                &master
            ),
            Verdict::Agree
        );
        // Empty slave, or one from before histories.
        assert_eq!(reconcile(Some(&h(&[])), 0, &master), Verdict::Agree);
        assert_eq!(reconcile(None, 500, &master), Verdict::Agree);
        // Pre-history bytes (epoch 0) are shared when the master's history has them too.
        let upgraded = h(&[(0, 0), (1, 500)]);
        assert_eq!(
            reconcile(Some(&h(&[(0, 0)])), 700, &upgraded),
            Verdict::Cut(500)
        );
        // Another lineage: never cut.
        let other = Epochs {
            lineage: 8,
            entries: vec![(1, 0)],
        };
        assert!(matches!(
            reconcile(Some(&h(&[(1, 0)])), 10, &other),
            Verdict::Foreign(m) if m.contains("lineage")
        ));
    }

    #[test]
    fn a_durable_write_replaces_the_file_whole() {
        let dir = std::env::temp_dir().join(format!("shardmq-epochs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(load(&dir).unwrap(), None);
        let m = h(&[(1, 0), (2, 64)]);
        write_durably(&epochs_path(&dir), m.render().as_bytes()).unwrap();
        assert_eq!(load(&dir).unwrap(), Some(m));
        std::fs::write(epochs_path(&dir), "garbage").unwrap();
        assert!(load(&dir).unwrap_err().contains(EPOCHS_FILE));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
