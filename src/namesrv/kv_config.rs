//! The nameserver's KV store (namespace -> key -> value), persisted as `kvConfig.json`:
//! `{"configTable":{"ORDER_TOPIC_CONFIG":{"TopicA":"broker-a:4"}}}` (spec/remoting.md §7.7).
//!
//! No I/O here: [`KvConfig::load`] takes the file's text and [`KvConfig::to_file_content`]
//! produces it; the runtime reads and writes the file.

use std::collections::BTreeMap;

use serde_json::Value;

use super::route_json::encode_kv_file;

/// The namespace whose entries become `orderTopicConf` and the REGISTER_BROKER response body.
pub const NAMESPACE_ORDER_TOPIC_CONFIG: &str = "ORDER_TOPIC_CONFIG";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvConfig {
    table: BTreeMap<String, BTreeMap<String, String>>,
}

impl KvConfig {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the file content. Empty (or whitespace-only) content is an empty store; scalar
    /// values that are not strings are kept in their JSON text form.
    pub fn load(content: &str) -> Result<Self, String> {
        if content.trim().is_empty() {
            return Ok(Self::new());
        }
        let root: Value =
            serde_json::from_str(content).map_err(|e| format!("invalid JSON: {e}"))?;
        let mut table = BTreeMap::new();
        let Some(config) = root.get("configTable") else {
            return Ok(Self::new());
        };
        let config = config
            .as_object()
            .ok_or_else(|| "configTable is not a JSON object".to_string())?;
        for (ns, entries) in config {
            let entries = entries
                .as_object()
                .ok_or_else(|| format!("configTable.{ns} is not a JSON object"))?;
            let mut map = BTreeMap::new();
            for (k, v) in entries {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(_) | Value::Bool(_) => v.to_string(),
                    other => return Err(format!("configTable.{ns}.{k} is not a string: {other}")),
                };
                map.insert(k.clone(), v);
            }
            table.insert(ns.clone(), map);
        }
        Ok(Self { table })
    }

    pub fn put(&mut self, namespace: &str, key: &str, value: &str) {
        self.table
            .entry(namespace.to_string())
            .or_default()
            .insert(key.to_string(), value.to_string());
    }

    pub fn get(&self, namespace: &str, key: &str) -> Option<&str> {
        self.table.get(namespace)?.get(key).map(String::as_str)
    }

    /// Removes one key (the namespace stays, possibly empty, as upstream). True if it existed.
    pub fn delete(&mut self, namespace: &str, key: &str) -> bool {
        self.table
            .get_mut(namespace)
            .is_some_and(|m| m.remove(key).is_some())
    }

    /// A namespace's entries, `None` if the namespace was never written.
    pub fn namespace(&self, namespace: &str) -> Option<&BTreeMap<String, String>> {
        self.table.get(namespace)
    }

    pub fn to_file_content(&self) -> String {
        encode_kv_file(&self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut kv = KvConfig::new();
        kv.put("NS", "k", "v\"1");
        kv.put(NAMESPACE_ORDER_TOPIC_CONFIG, "T", "broker-a:4");
        let text = kv.to_file_content();
        assert_eq!(KvConfig::load(&text).unwrap(), kv);
        assert_eq!(kv.get("NS", "k"), Some("v\"1"));
        assert!(kv.delete("NS", "k"));
        assert!(!kv.delete("NS", "k"));
        assert!(kv.namespace("NS").unwrap().is_empty());
        assert!(kv.namespace("nope").is_none());
    }

    #[test]
    fn load_variants() {
        assert_eq!(KvConfig::load("  \n").unwrap(), KvConfig::new());
        let kv =
            KvConfig::load("{\n\t\"configTable\":{\n\t\t\"NS\":{\"a\":\"1\",\"b\":2}}}").unwrap();
        assert_eq!(kv.get("NS", "b"), Some("2"));
        assert!(KvConfig::load("{\"configTable\":[]}").is_err());
        let err = KvConfig::load("{\"configTable\":{\"NS\":{\"a\":[1]}}}").unwrap_err();
        assert!(err.contains("configTable.NS.a"), "{err}");
        assert!(KvConfig::load("{oops")
            .unwrap_err()
            .contains("invalid JSON"));
    }
}
