//! Consumer offsets (shard 0): `topic@group` -> queue id -> next offset to consume, persisted
//! to `consumerOffset.json` every `flushConsumerOffsetInterval` and at shutdown.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

#[derive(Debug, Default)]
pub struct ConsumerOffsets {
    table: BTreeMap<String, BTreeMap<u32, u64>>,
    dirty: bool,
}

impl ConsumerOffsets {
    /// Loads the JSON content of `consumerOffset.json` (parsed leniently by the caller).
    pub fn from_json(v: &Value) -> Self {
        let mut table = BTreeMap::new();
        if let Some(t) = v.get("offsetTable").and_then(Value::as_object) {
            for (key, queues) in t {
                let mut per_queue = BTreeMap::new();
                if let Some(q) = queues.as_object() {
                    for (qid, off) in q {
                        if let (Ok(qid), Some(off)) = (qid.parse::<u32>(), off.as_u64()) {
                            per_queue.insert(qid, off);
                        }
                    }
                }
                table.insert(key.clone(), per_queue);
            }
        }
        Self {
            table,
            dirty: false,
        }
    }

    /// Forces the next periodic persist (a slave after taking its master's table).
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    fn key(topic: &str, group: &str) -> String {
        format!("{topic}@{group}")
    }

    pub fn query(&self, group: &str, topic: &str, queue_id: u32) -> Option<u64> {
        self.table
            .get(&Self::key(topic, group))
            .and_then(|q| q.get(&queue_id))
            .copied()
    }

    pub fn commit(&mut self, group: &str, topic: &str, queue_id: u32, offset: u64) {
        let slot = self
            .table
            .entry(Self::key(topic, group))
            .or_default()
            .entry(queue_id)
            .or_insert(offset);
        if *slot != offset {
            *slot = offset;
        }
        self.dirty = true;
    }

    /// Every (topic, queue, offset) a group has committed.
    pub fn of_group(&self, group: &str) -> Vec<(String, u32, u64)> {
        let suffix = format!("@{group}");
        self.table
            .iter()
            .filter_map(|(k, q)| k.strip_suffix(&suffix).map(|t| (t, q)))
            .flat_map(|(t, q)| q.iter().map(move |(qid, off)| (t.to_string(), *qid, *off)))
            .collect()
    }

    /// The file content if anything changed since the last call (standard JSON: fastjson
    /// reads quoted numeric keys as numbers, so upstream can load it too).
    pub fn take_dirty_json(&mut self) -> Option<String> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        Some(self.to_json())
    }

    pub fn to_json(&self) -> String {
        let table: HashMap<&String, BTreeMap<String, u64>> = self
            .table
            .iter()
            .map(|(k, q)| (k, q.iter().map(|(qid, o)| (qid.to_string(), *o)).collect()))
            .collect();
        let sorted: BTreeMap<_, _> = table.into_iter().collect();
        crate::broker::persist::pretty_json(&serde_json::json!({ "offsetTable": sorted }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_query_and_round_trip_through_json() {
        let mut o = ConsumerOffsets::default();
        assert_eq!(o.query("g", "T", 0), None);
        o.commit("g", "T", 0, 5);
        o.commit("g", "T", 3, 9);
        assert_eq!(o.query("g", "T", 3), Some(9));
        let json = o.take_dirty_json().unwrap();
        assert!(o.take_dirty_json().is_none());
        let back = ConsumerOffsets::from_json(&serde_json::from_str(&json).unwrap());
        assert_eq!(back.query("g", "T", 0), Some(5));
        assert_eq!(back.of_group("g").len(), 2);
    }
}
