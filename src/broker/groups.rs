//! Subscription groups (shard 0): consumer group configs, auto-created on first use when
//! `autoCreateSubscriptionGroup` is on, persisted to `subscriptionGroup.json`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupConfig {
    #[serde(default)]
    pub broker_id: i64,
    #[serde(default = "yes")]
    pub consume_broadcast_enable: bool,
    #[serde(default = "yes")]
    pub consume_enable: bool,
    #[serde(default = "yes")]
    pub consume_from_min_enable: bool,
    pub group_name: String,
    #[serde(default = "yes")]
    pub notify_consumer_ids_changed_enable: bool,
    #[serde(default = "sixteen")]
    pub retry_max_times: i32,
    #[serde(default = "one")]
    pub retry_queue_nums: u32,
    #[serde(default = "one_i64")]
    pub which_broker_when_consume_slowly: i64,
}

fn yes() -> bool {
    true
}
fn sixteen() -> i32 {
    16
}
fn one() -> u32 {
    1
}
fn one_i64() -> i64 {
    1
}

impl GroupConfig {
    pub fn new(name: &str) -> Self {
        Self {
            broker_id: 0,
            consume_broadcast_enable: true,
            consume_enable: true,
            consume_from_min_enable: true,
            group_name: name.to_string(),
            notify_consumer_ids_changed_enable: true,
            retry_max_times: 16,
            retry_queue_nums: 1,
            which_broker_when_consume_slowly: 1,
        }
    }
}

#[derive(Debug, Default)]
pub struct SubscriptionGroups {
    table: BTreeMap<String, GroupConfig>,
    auto_create: bool,
    counter: i64,
    dirty: bool,
    /// Slaves: the master's data version of this table.
    master_version: Option<Value>,
}

impl SubscriptionGroups {
    pub fn new(persisted: Option<&Value>, auto_create: bool) -> Self {
        let mut table = BTreeMap::new();
        if let Some(t) = persisted
            .and_then(|v| v.get("subscriptionGroupTable"))
            .and_then(Value::as_object)
        {
            for (name, cfg) in t {
                match serde_json::from_value::<GroupConfig>(cfg.clone()) {
                    Ok(c) => {
                        table.insert(name.clone(), c);
                    }
                    Err(e) => {
                        tracing::warn!(group = %name, error = %e, "ignoring bad group config")
                    }
                }
            }
        }
        for builtin in ["TOOLS_CONSUMER", "FILTERSRV_CONSUMER", "SELF_TEST_C_GROUP"] {
            table
                .entry(builtin.to_string())
                .or_insert_with(|| GroupConfig::new(builtin));
        }
        Self {
            table,
            auto_create,
            counter: 1,
            dirty: false,
            master_version: None,
        }
    }

    /// The group's config, created with defaults if allowed. `None` = unknown and not created.
    pub fn get_or_create(&mut self, group: &str) -> Option<GroupConfig> {
        if let Some(c) = self.table.get(group) {
            return Some(c.clone());
        }
        if !self.auto_create {
            return None;
        }
        let c = GroupConfig::new(group);
        self.table.insert(group.to_string(), c.clone());
        self.counter += 1;
        self.dirty = true;
        Some(c)
    }

    pub fn upsert(&mut self, config: GroupConfig) {
        self.table.insert(config.group_name.clone(), config);
        self.counter += 1;
        self.dirty = true;
    }

    /// A slave's copy of its master's groups (GET_ALL_SUBSCRIPTIONGROUP_CONFIG body), keeping
    /// the master's data version so the next sync sees no change.
    pub fn from_master(v: &Value, auto_create: bool) -> Self {
        let mut g = Self::new(Some(v), auto_create);
        g.master_version = v.get("dataVersion").cloned();
        if let Some(c) = v
            .get("dataVersion")
            .and_then(|d| d.get("counter"))
            .and_then(Value::as_i64)
        {
            g.counter = c;
        }
        g.dirty = true;
        g
    }

    /// The data version last taken from a master (slaves), for change detection.
    pub fn data_version_json(&self) -> Option<Value> {
        self.master_version.clone()
    }

    /// The whole table as `subscriptionGroup.json` holds it (GET_ALL_SUBSCRIPTIONGROUP_CONFIG).
    pub fn to_json(&self) -> String {
        let v = serde_json::json!({
            "dataVersion": {"counter": self.counter, "timestamp": 0},
            "subscriptionGroupTable": self.table,
        });
        v.to_string()
    }

    pub fn take_dirty_json(&mut self, now_ms: i64) -> Option<String> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        let v = serde_json::json!({
            "dataVersion": {"counter": self.counter, "timestamp": now_ms},
            "subscriptionGroupTable": self.table,
        });
        Some(crate::broker::persist::pretty_json(&v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_create_follows_the_switch_and_persists() {
        let mut g = SubscriptionGroups::new(None, false);
        assert!(g.get_or_create("g1").is_none());
        let mut g = SubscriptionGroups::new(None, true);
        assert_eq!(g.get_or_create("g1").unwrap().retry_queue_nums, 1);
        let json = g.take_dirty_json(5).unwrap();
        let back = SubscriptionGroups::new(Some(&serde_json::from_str(&json).unwrap()), false);
        let mut back = back;
        assert!(back.get_or_create("g1").is_some());
    }
}
