//! Topic configs: the table (an immutable snapshot every shard reads) and its owner, the
//! manager on shard 0, which creates topics, bumps the data version and persists
//! `topics.json` (spec/storage.md §9).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Topic permission bits.
pub const PERM_INHERIT: i32 = 1;
pub const PERM_WRITE: i32 = 2;
pub const PERM_READ: i32 = 4;

/// The template topic producers name as `defaultTopic` for auto-creation.
pub const AUTO_CREATE_TOPIC_KEY: &str = "TBW102";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicConfig {
    #[serde(default)]
    pub order: bool,
    #[serde(default = "default_perm")]
    pub perm: i32,
    #[serde(default = "default_queue_nums")]
    pub read_queue_nums: u32,
    #[serde(default = "default_filter_type")]
    pub topic_filter_type: String,
    pub topic_name: String,
    #[serde(default)]
    pub topic_sys_flag: i32,
    #[serde(default = "default_queue_nums")]
    pub write_queue_nums: u32,
}

fn default_perm() -> i32 {
    PERM_READ | PERM_WRITE
}
fn default_queue_nums() -> u32 {
    16
}
fn default_filter_type() -> String {
    "SINGLE_TAG".to_string()
}

impl TopicConfig {
    pub fn new(name: &str, read: u32, write: u32, perm: i32) -> Self {
        Self {
            order: false,
            perm,
            read_queue_nums: read,
            topic_filter_type: default_filter_type(),
            topic_name: name.to_string(),
            topic_sys_flag: 0,
            write_queue_nums: write,
        }
    }

    pub fn is_writable(&self) -> bool {
        self.perm & PERM_WRITE != 0
    }

    pub fn is_readable(&self) -> bool {
        self.perm & PERM_READ != 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DataVersion {
    pub counter: i64,
    pub timestamp: i64,
}

/// An immutable snapshot of every topic; shards hold an `Arc` to the newest one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicTable {
    pub data_version: DataVersion,
    pub topic_config_table: BTreeMap<String, TopicConfig>,
}

impl TopicTable {
    pub fn get(&self, topic: &str) -> Option<&TopicConfig> {
        self.topic_config_table.get(topic)
    }
}

/// Why a topic could not be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateError {
    NotExist,
    Forbidden(String),
}

/// Validates a topic name as upstream's send path does (4.9 rule: `[%|a-zA-Z0-9_-]{1,127}`).
pub fn validate_topic_name(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("the specified topic is blank".to_string());
    }
    if topic.len() > 127 {
        return Err(format!(
            "the specified topic is longer than topic max length 127: {}",
            topic.len()
        ));
    }
    if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'%' || b == b'|' || b == b'_' || b == b'-')
    {
        return Err(format!(
            "the specified topic[{topic}] contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$"
        ));
    }
    Ok(())
}

/// Owner of the topic table (shard 0 only).
#[derive(Debug)]
pub struct TopicManager {
    table: Arc<TopicTable>,
    auto_create_enable: bool,
}

impl TopicManager {
    /// Starts from the persisted table (if any) and adds the built-in topics.
    pub fn new(
        persisted: Option<TopicTable>,
        cluster: &str,
        broker_name: &str,
        default_queue_nums: u32,
        auto_create_enable: bool,
        now_ms: i64,
    ) -> Self {
        let mut table = persisted.unwrap_or_default();
        let rw = PERM_READ | PERM_WRITE;
        let builtins = [
            TopicConfig::new("SELF_TEST_TOPIC", 1, 1, rw),
            TopicConfig::new("BenchmarkTest", 1024, 1024, rw),
            TopicConfig::new(cluster, 16, 16, PERM_INHERIT | rw),
            TopicConfig::new(broker_name, 1, 1, PERM_INHERIT | rw),
            TopicConfig::new("OFFSET_MOVED_EVENT", 1, 1, rw),
            TopicConfig::new("SCHEDULE_TOPIC_XXXX", 18, 18, rw),
        ];
        for t in builtins {
            table.topic_config_table.insert(t.topic_name.clone(), t);
        }
        if auto_create_enable {
            let tbw = TopicConfig::new(
                AUTO_CREATE_TOPIC_KEY,
                default_queue_nums,
                default_queue_nums,
                PERM_INHERIT | rw,
            );
            table.topic_config_table.insert(tbw.topic_name.clone(), tbw);
        } else if let Some(t) = table.topic_config_table.get_mut(AUTO_CREATE_TOPIC_KEY) {
            t.perm = rw;
        }
        table.data_version.counter += 1;
        table.data_version.timestamp = now_ms;
        Self {
            table: Arc::new(table),
            auto_create_enable,
        }
    }

    pub fn snapshot(&self) -> Arc<TopicTable> {
        self.table.clone()
    }

    /// A slave takes its master's whole table, data version included (ha::meta).
    pub fn replace(&mut self, table: TopicTable) -> Arc<TopicTable> {
        self.table = Arc::new(table);
        self.table.clone()
    }

    /// Creates or replaces `config` (UPDATE_AND_CREATE_TOPIC).
    pub fn upsert(&mut self, config: TopicConfig, now_ms: i64) -> Arc<TopicTable> {
        let mut next = (*self.table).clone();
        next.topic_config_table
            .insert(config.topic_name.clone(), config);
        self.publish(next, now_ms)
    }

    pub fn remove(&mut self, topic: &str, now_ms: i64) -> Option<Arc<TopicTable>> {
        if !self.table.topic_config_table.contains_key(topic) {
            return None;
        }
        let mut next = (*self.table).clone();
        next.topic_config_table.remove(topic);
        Some(self.publish(next, now_ms))
    }

    /// Auto-creates `topic` on a send (spec/storage.md §9). Returns the config and whether the
    /// table changed.
    pub fn create_on_send(
        &mut self,
        topic: &str,
        default_topic: &str,
        requested_queue_nums: u32,
        now_ms: i64,
    ) -> Result<(TopicConfig, bool), CreateError> {
        if let Some(existing) = self.table.get(topic) {
            return Ok((existing.clone(), false));
        }
        let created = match self.table.get(default_topic) {
            Some(template)
                if self.auto_create_enable
                    && template.perm & PERM_INHERIT != 0
                    && default_topic == AUTO_CREATE_TOPIC_KEY =>
            {
                let queues = requested_queue_nums.min(template.write_queue_nums).max(1);
                let mut c = TopicConfig::new(topic, queues, queues, template.perm & !PERM_INHERIT);
                c.topic_filter_type = template.topic_filter_type.clone();
                c
            }
            _ if topic.starts_with("%RETRY%") || topic.starts_with("%DLQ%") => {
                TopicConfig::new(topic, 1, 1, PERM_READ | PERM_WRITE)
            }
            _ => return Err(CreateError::NotExist),
        };
        self.upsert(created.clone(), now_ms);
        Ok((created, true))
    }

    /// Creates a retry topic for a consumer group if missing (HEART_BEAT, send-back).
    pub fn ensure_retry_topic(&mut self, group: &str, queues: u32, now_ms: i64) -> bool {
        self.ensure_topic(&format!("%RETRY%{group}"), queues, now_ms)
    }

    /// Creates `topic` with `queues` read/write queues, perm RW, if missing. Returns whether
    /// the table changed.
    pub fn ensure_topic(&mut self, topic: &str, queues: u32, now_ms: i64) -> bool {
        if self.table.get(topic).is_some() {
            return false;
        }
        self.upsert(
            TopicConfig::new(topic, queues, queues, PERM_READ | PERM_WRITE),
            now_ms,
        );
        true
    }

    fn publish(&mut self, mut next: TopicTable, now_ms: i64) -> Arc<TopicTable> {
        next.data_version.counter += 1;
        next.data_version.timestamp = now_ms;
        self.table = Arc::new(next);
        self.table.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager() -> TopicManager {
        TopicManager::new(None, "DefaultCluster", "broker-a", 8, true, 1)
    }

    #[test]
    fn auto_create_caps_queues_by_template_and_drops_inherit() {
        let mut m = manager();
        let (c, changed) = m.create_on_send("T1", "TBW102", 16, 2).unwrap();
        assert!(changed);
        assert_eq!(c.write_queue_nums, 8);
        assert_eq!(c.perm, PERM_READ | PERM_WRITE);
        let (again, changed) = m.create_on_send("T1", "TBW102", 4, 3).unwrap();
        assert!(!changed);
        assert_eq!(again, c);
    }

    #[test]
    fn auto_create_disabled_refuses_plain_topics_but_not_retry_topics() {
        let mut m = TopicManager::new(None, "C", "b", 8, false, 1);
        assert_eq!(
            m.create_on_send("T1", "TBW102", 4, 2),
            Err(CreateError::NotExist)
        );
        assert!(m.create_on_send("%RETRY%g", "TBW102", 4, 2).is_ok());
    }

    #[test]
    fn data_version_moves_on_every_change() {
        let mut m = manager();
        let before = m.snapshot().data_version.counter;
        m.create_on_send("T2", "TBW102", 4, 5).unwrap();
        assert_eq!(m.snapshot().data_version.counter, before + 1);
        assert!(m.remove("T2", 6).is_some());
        assert_eq!(m.snapshot().data_version.counter, before + 2);
    }

    #[test]
    fn topic_names_are_validated_like_upstream() {
        assert!(validate_topic_name("Topic_A-1%").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("a b").is_err());
        assert!(validate_topic_name(&"x".repeat(128)).is_err());
    }
}
