//! Admin calls: UPDATE_AND_CREATE_TOPIC (17) on every master of a cluster, GET_BROKER_CONFIG
//! (26), GET_BROKER_RUNTIME_INFO (28).

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{remark_of, MqClient, MqClientError, TopicRoute};
use crate::remoting::code::{request, response};
use crate::remoting::{parse_lenient, RemotingCommand};

/// A broker's configuration as `key=value` lines (GET_BROKER_CONFIG body).
#[derive(Debug, Clone, Default)]
pub struct BrokerConfig(pub Vec<(String, String)>);

impl BrokerConfig {
    pub fn parse(text: &str) -> Self {
        Self(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// GET_BROKER_RUNTIME_INFO's `table`.
#[derive(Debug, Clone, Default)]
pub struct RuntimeInfo(pub serde_json::Map<String, Value>);

impl RuntimeInfo {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }
}

impl MqClient {
    async fn simple(
        &self,
        what: &'static str,
        addr: &str,
        req: RemotingCommand,
    ) -> Result<RemotingCommand, MqClientError> {
        let resp = self.call(addr, req).await?;
        if resp.code != response::SUCCESS {
            return Err(MqClientError::Refused {
                what,
                addr: addr.to_string(),
                code: resp.code,
                remark: remark_of(&resp),
            });
        }
        Ok(resp)
    }

    /// Creates (or updates) `topic` with `queues` read and write queues on `broker_addr`.
    pub async fn create_topic_on(
        &self,
        broker_addr: &str,
        topic: &str,
        queues: u32,
    ) -> Result<(), MqClientError> {
        let q = queues.to_string();
        let req = RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC, 0)
            .with_field("topic", topic)
            .with_field("defaultTopic", "TBW102")
            .with_field("readQueueNums", q.as_str())
            .with_field("writeQueueNums", q.as_str())
            .with_field("perm", "6")
            .with_field("topicFilterType", "SINGLE_TAG")
            .with_field("topicSysFlag", "0")
            .with_field("order", "false");
        self.simple("UPDATE_AND_CREATE_TOPIC", broker_addr, req)
            .await
            .map(|_| ())
    }

    /// The masters of the cluster, found through the route of TBW102 (every broker serves it
    /// when auto-creation is on) or of `known_topic`.
    pub async fn masters(&self, known_topic: &str) -> Result<Vec<(String, String)>, MqClientError> {
        let mut masters = Vec::new();
        for t in ["TBW102", known_topic] {
            if let Ok(r) = self.fetch_route(t).await {
                for m in r.masters {
                    if !masters.contains(&m) {
                        masters.push(m);
                    }
                }
            }
        }
        if masters.is_empty() {
            return Err(MqClientError::NoRoute(
                known_topic.to_string(),
                self.namesrvs().join(";"),
            ));
        }
        Ok(masters)
    }

    /// Creates `topic` on every master and waits (up to `wait`) until the nameserver routes it
    /// with at least `queues` write queues per master.
    pub async fn ensure_topic(
        &self,
        topic: &str,
        queues: u32,
        wait: Duration,
    ) -> Result<TopicRoute, MqClientError> {
        let masters = self.masters(topic).await?;
        for (_, addr) in &masters {
            self.create_topic_on(addr, topic, queues).await?;
        }
        let want = masters.len() * queues as usize;
        let deadline = Instant::now() + wait;
        loop {
            let r = self.fetch_route(topic).await;
            match r {
                Ok(r) if r.write_queues.len() >= want => {
                    self.forget_route(topic);
                    return Ok(r);
                }
                Ok(_) | Err(MqClientError::NoRoute(..)) if Instant::now() < deadline => {
                    glommio::timer::sleep(Duration::from_millis(100)).await;
                }
                Ok(r) => return Ok(r),
                Err(e) => return Err(e),
            }
        }
    }

    /// GET_BROKER_CONFIG (26).
    pub async fn broker_config(&self, addr: &str) -> Result<BrokerConfig, MqClientError> {
        let req = RemotingCommand::request(request::GET_BROKER_CONFIG, 0);
        let resp = self.simple("GET_BROKER_CONFIG", addr, req).await?;
        Ok(BrokerConfig::parse(&String::from_utf8_lossy(&resp.body)))
    }

    /// GET_BROKER_RUNTIME_INFO (28).
    pub async fn runtime_info(&self, addr: &str) -> Result<RuntimeInfo, MqClientError> {
        let req = RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO, 0);
        let resp = self.simple("GET_BROKER_RUNTIME_INFO", addr, req).await?;
        let v = parse_lenient(&resp.body).map_err(|e| MqClientError::BadResponse {
            what: "GET_BROKER_RUNTIME_INFO",
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
        Ok(RuntimeInfo(
            v.get("table")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_config_lines() {
        let c = BrokerConfig::parse("flushDiskType=SYNC_FLUSH\nbrokerRole=ASYNC_MASTER\nx\n");
        assert_eq!(c.get("flushDiskType"), Some("SYNC_FLUSH"));
        assert_eq!(c.get("brokerRole"), Some("ASYNC_MASTER"));
        assert_eq!(c.get("x"), None);
    }
}
