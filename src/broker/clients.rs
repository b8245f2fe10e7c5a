//! Client registry (shard 0): which clients of which consumer and producer groups are
//! alive, on which connection, with which subscriptions. Fed by HEART_BEAT and
//! UNREGISTER_CLIENT; a client silent for `CLIENT_CHANNEL_EXPIRE_MS` or whose connection
//! closed is dropped.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::constants::CLIENT_CHANNEL_EXPIRE_MS;
use crate::remoting::message::java_string_hash;

/// A subscription of one topic as a pull filter understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub topic: String,
    pub expression: String,
    pub expression_type: String,
    /// `None` = every tag (`*` or empty); otherwise the Java hash codes of the tags.
    pub tag_codes: Option<Vec<i32>>,
    pub sub_version: i64,
}

impl Subscription {
    /// Builds a TAG subscription from an expression like `TagA || TagB` or `*`.
    pub fn from_expression(topic: &str, expression: &str, sub_version: i64) -> Self {
        let trimmed = expression.trim();
        let tag_codes = if trimmed.is_empty() || trimmed == "*" {
            None
        } else {
            Some(
                trimmed
                    .split("||")
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(java_string_hash)
                    .collect(),
            )
        };
        Self {
            topic: topic.to_string(),
            expression: trimmed.to_string(),
            expression_type: "TAG".to_string(),
            tag_codes,
            sub_version,
        }
    }

    /// Whether a consume-queue unit's tags code passes this filter.
    pub fn matches(&self, tags_code: i64) -> bool {
        match &self.tag_codes {
            None => true,
            // The CQ keeps the sign-extended 32-bit hash; compare the low 32 bits.
            Some(codes) => codes.contains(&(tags_code as i32)),
        }
    }
}

/// One live client of a group.
#[derive(Debug, Clone)]
pub struct ClientChannel {
    pub client_id: String,
    pub conn_id: u64,
    pub addr: String,
    pub language: String,
    pub version: i32,
    pub last_seen_ms: i64,
}

#[derive(Debug, Default, Clone)]
pub struct ConsumerGroupInfo {
    pub channels: BTreeMap<String, ClientChannel>,
    pub subscriptions: HashMap<String, Subscription>,
    pub consume_type: String,
    pub message_model: String,
    pub consume_from_where: String,
}

/// What HEART_BEAT changed, so the caller can create retry topics and tell clients.
#[derive(Debug, Default)]
pub struct HeartbeatOutcome {
    pub consumer_groups: Vec<String>,
    /// Groups whose member list changed (NOTIFY_CONSUMER_IDS_CHANGED candidates).
    pub changed_groups: Vec<String>,
}

#[derive(Debug, Default)]
pub struct ClientRegistry {
    consumers: HashMap<String, ConsumerGroupInfo>,
    producers: HashMap<String, BTreeMap<String, ClientChannel>>,
}

impl ClientRegistry {
    /// Applies a `HeartbeatData` body (already parsed leniently).
    pub fn heartbeat(&mut self, data: &Value, channel: ClientChannel) -> HeartbeatOutcome {
        let mut outcome = HeartbeatOutcome::default();
        let client_id = data
            .get("clientID")
            .and_then(Value::as_str)
            .unwrap_or(&channel.client_id)
            .to_string();
        let channel = ClientChannel {
            client_id: client_id.clone(),
            ..channel
        };
        for consumer in array(data, "consumerDataSet") {
            let Some(group) = consumer.get("groupName").and_then(Value::as_str) else {
                continue;
            };
            let info = self.consumers.entry(group.to_string()).or_default();
            let is_new = !info.channels.contains_key(&client_id);
            info.channels.insert(client_id.clone(), channel.clone());
            info.consume_type = text(consumer, "consumeType");
            info.message_model = text(consumer, "messageModel");
            info.consume_from_where = text(consumer, "consumeFromWhere");
            for sub in array(consumer, "subscriptionDataSet") {
                let topic = text(sub, "topic");
                if topic.is_empty() {
                    continue;
                }
                let expression = text(sub, "subString");
                let version = sub.get("subVersion").and_then(Value::as_i64).unwrap_or(0);
                let mut s = Subscription::from_expression(&topic, &expression, version);
                let ty = text(sub, "expressionType");
                if !ty.is_empty() {
                    s.expression_type = ty;
                }
                info.subscriptions.insert(topic, s);
            }
            outcome.consumer_groups.push(group.to_string());
            if is_new {
                outcome.changed_groups.push(group.to_string());
            }
        }
        for producer in array(data, "producerDataSet") {
            if let Some(group) = producer.get("groupName").and_then(Value::as_str) {
                self.producers
                    .entry(group.to_string())
                    .or_default()
                    .insert(client_id.clone(), channel.clone());
            }
        }
        outcome
    }

    /// UNREGISTER_CLIENT. Returns true when a consumer group's membership changed.
    pub fn unregister(
        &mut self,
        client_id: &str,
        producer_group: Option<&str>,
        consumer_group: Option<&str>,
    ) -> bool {
        if let Some(g) = producer_group {
            if let Some(p) = self.producers.get_mut(g) {
                p.remove(client_id);
            }
        }
        let mut changed = false;
        if let Some(g) = consumer_group {
            if let Some(info) = self.consumers.get_mut(g) {
                changed = info.channels.remove(client_id).is_some();
                if info.channels.is_empty() {
                    self.consumers.remove(g);
                }
            }
        }
        changed
    }

    /// Drops every client registered through connection `conn_id`.
    pub fn connection_closed(&mut self, conn_id: u64) -> Vec<String> {
        self.retain_channels(|c| c.conn_id != conn_id)
    }

    /// Drops clients silent for too long. Returns the consumer groups that changed.
    pub fn expire(&mut self, now_ms: i64) -> Vec<String> {
        self.retain_channels(|c| now_ms - c.last_seen_ms <= CLIENT_CHANNEL_EXPIRE_MS)
    }

    fn retain_channels(&mut self, keep: impl Fn(&ClientChannel) -> bool) -> Vec<String> {
        let mut changed = Vec::new();
        for (group, info) in &mut self.consumers {
            let before = info.channels.len();
            info.channels.retain(|_, c| keep(c));
            if info.channels.len() != before {
                changed.push(group.clone());
            }
        }
        self.consumers.retain(|_, info| !info.channels.is_empty());
        for channels in self.producers.values_mut() {
            channels.retain(|_, c| keep(c));
        }
        self.producers.retain(|_, c| !c.is_empty());
        changed
    }

    pub fn consumer_ids(&self, group: &str) -> Vec<String> {
        self.consumers
            .get(group)
            .map(|i| i.channels.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn consumer_group(&self, group: &str) -> Option<&ConsumerGroupInfo> {
        self.consumers.get(group)
    }

    pub fn subscription(&self, group: &str, topic: &str) -> Option<&Subscription> {
        self.consumers.get(group)?.subscriptions.get(topic)
    }

    /// Connection ids of a group's live consumers (for NOTIFY_CONSUMER_IDS_CHANGED).
    pub fn consumer_conns(&self, group: &str) -> Vec<u64> {
        self.consumers
            .get(group)
            .map(|i| i.channels.values().map(|c| c.conn_id).collect())
            .unwrap_or_default()
    }

    pub fn producer_groups(
        &self,
    ) -> impl Iterator<Item = (&String, &BTreeMap<String, ClientChannel>)> {
        self.producers.iter()
    }
}

fn array<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter())
        .into_iter()
        .flatten()
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(id: &str, conn: u64, seen: i64) -> ClientChannel {
        ClientChannel {
            client_id: id.to_string(),
            conn_id: conn,
            addr: "127.0.0.1:1".to_string(),
            language: "JAVA".to_string(),
            version: 275,
            last_seen_ms: seen,
        }
    }

    fn heartbeat(client: &str, group: &str, expr: &str) -> Value {
        serde_json::json!({
            "clientID": client,
            "consumerDataSet": [{"groupName": group, "consumeType": "CONSUME_PASSIVELY",
                "messageModel": "CLUSTERING", "consumeFromWhere": "CONSUME_FROM_FIRST_OFFSET",
                "subscriptionDataSet": [{"topic": "T", "subString": expr, "subVersion": 7,
                    "expressionType": "TAG"}]}],
            "producerDataSet": [{"groupName": "CLIENT_INNER_PRODUCER"}]
        })
    }

    #[test]
    fn heartbeat_registers_and_reports_new_members() {
        let mut r = ClientRegistry::default();
        let out = r.heartbeat(&heartbeat("c1", "g", "*"), channel("x", 1, 0));
        assert_eq!(out.changed_groups, vec!["g".to_string()]);
        let out = r.heartbeat(&heartbeat("c1", "g", "*"), channel("x", 1, 5));
        assert!(out.changed_groups.is_empty());
        r.heartbeat(&heartbeat("c2", "g", "*"), channel("x", 2, 5));
        assert_eq!(
            r.consumer_ids("g"),
            vec!["c1".to_string(), "c2".to_string()]
        );
    }

    #[test]
    fn closed_connections_and_silence_drop_clients() {
        let mut r = ClientRegistry::default();
        r.heartbeat(&heartbeat("c1", "g", "*"), channel("x", 1, 0));
        r.heartbeat(&heartbeat("c2", "g", "*"), channel("x", 2, 100_000));
        assert_eq!(r.connection_closed(1), vec!["g".to_string()]);
        assert_eq!(r.consumer_ids("g"), vec!["c2".to_string()]);
        assert_eq!(
            r.expire(100_000 + CLIENT_CHANNEL_EXPIRE_MS + 1),
            vec!["g".to_string()]
        );
        assert!(r.consumer_ids("g").is_empty());
    }

    #[test]
    fn tag_subscription_matches_java_hash_codes() {
        let s = Subscription::from_expression("T", "TagA || TagB", 1);
        assert!(s.matches(i64::from(java_string_hash("TagA"))));
        assert!(s.matches(i64::from(java_string_hash("TagB"))));
        assert!(!s.matches(i64::from(java_string_hash("TagC"))));
        assert!(Subscription::from_expression("T", "*", 1).matches(12345));
    }
}
