//! Topic routes from the nameserver (GET_ROUTEINFO_BY_TOPIC, 105) and the queue list a
//! producer round-robins over.

use std::rc::Rc;

use serde_json::Value;

use super::{remark_of, MqClient, MqClientError};
use crate::remoting::code::{request, response};
use crate::remoting::{parse_lenient, RemotingCommand};

/// One queue of a topic on one broker (master address resolved).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageQueue {
    pub topic: String,
    pub broker_name: String,
    pub queue_id: i32,
    pub addr: String,
}

/// A topic's route: write queues (masters only) and read queues.
#[derive(Debug, Clone, Default)]
pub struct TopicRoute {
    pub write_queues: Vec<MessageQueue>,
    pub read_queues: Vec<MessageQueue>,
    /// (brokerName, master address) of every broker in the route.
    pub masters: Vec<(String, String)>,
}

const PERM_READ: i64 = 4;
const PERM_WRITE: i64 = 2;

impl TopicRoute {
    /// Parses a route body (fastjson: numeric map keys) for `topic`.
    pub fn parse(topic: &str, body: &[u8]) -> Result<Self, String> {
        let v = parse_lenient(body).map_err(|e| format!("route JSON: {e}"))?;
        let mut route = TopicRoute::default();
        let brokers = v["brokerDatas"].as_array().cloned().unwrap_or_default();
        for b in &brokers {
            let name = b["brokerName"].as_str().unwrap_or_default().to_string();
            if let Some(addr) = b["brokerAddrs"].get("0").and_then(Value::as_str) {
                route.masters.push((name, addr.to_string()));
            }
        }
        let queues = v["queueDatas"].as_array().cloned().unwrap_or_default();
        for q in &queues {
            let name = q["brokerName"].as_str().unwrap_or_default();
            let Some((_, addr)) = route.masters.iter().find(|(n, _)| n == name) else {
                continue;
            };
            let perm = q["perm"].as_i64().unwrap_or(6);
            let n_read = q["readQueueNums"].as_i64().unwrap_or(0);
            let n_write = q["writeQueueNums"].as_i64().unwrap_or(0);
            let mk = |i: i64| MessageQueue {
                topic: topic.to_string(),
                broker_name: name.to_string(),
                queue_id: i32::try_from(i).unwrap_or(0),
                addr: addr.clone(),
            };
            if perm & PERM_WRITE != 0 {
                route.write_queues.extend((0..n_write).map(mk));
            }
            if perm & PERM_READ != 0 {
                route.read_queues.extend((0..n_read).map(mk));
            }
        }
        route.masters.sort();
        Ok(route)
    }
}

impl MqClient {
    /// Asks the nameservers for the route of `topic` (no cache).
    pub async fn fetch_route(&self, topic: &str) -> Result<TopicRoute, MqClientError> {
        let req =
            RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC, 0).with_field("topic", topic);
        let (ns, resp) = self.call_namesrv(&req).await?;
        if resp.code == response::TOPIC_NOT_EXIST {
            return Err(MqClientError::NoRoute(
                topic.to_string(),
                self.namesrvs.join(";"),
            ));
        }
        if resp.code != response::SUCCESS {
            return Err(MqClientError::Refused {
                what: "GET_ROUTEINFO_BY_TOPIC",
                addr: ns,
                code: resp.code,
                remark: remark_of(&resp),
            });
        }
        TopicRoute::parse(topic, &resp.body).map_err(|reason| MqClientError::BadResponse {
            what: "route",
            addr: ns,
            reason,
        })
    }

    /// The cached route of `topic`, fetched on first use.
    pub async fn route(&self, topic: &str) -> Result<Rc<TopicRoute>, MqClientError> {
        if let Some(r) = self.routes.borrow().get(topic) {
            return Ok(r.clone());
        }
        let r = Rc::new(self.fetch_route(topic).await?);
        self.routes
            .borrow_mut()
            .insert(topic.to_string(), r.clone());
        Ok(r)
    }

    /// Drops the cached route of `topic` (after a send failure, say).
    pub fn forget_route(&self, topic: &str) {
        self.routes.borrow_mut().remove(topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_fastjson_route_with_numeric_keys() {
        let body = br#"{"brokerDatas":[{"brokerAddrs":{0:"127.0.0.1:20961",1:"127.0.0.1:20971"},"brokerName":"broker-a","cluster":"DefaultCluster"}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":8,"topicSynFlag":0,"writeQueueNums":4}]}"#;
        let r = TopicRoute::parse("T", body).unwrap();
        assert_eq!(r.write_queues.len(), 4);
        assert_eq!(r.read_queues.len(), 8);
        assert_eq!(r.write_queues[3].queue_id, 3);
        assert_eq!(r.write_queues[0].addr, "127.0.0.1:20961");
        assert_eq!(
            r.masters,
            vec![("broker-a".to_string(), "127.0.0.1:20961".to_string())]
        );
    }

    #[test]
    fn a_read_only_queue_is_not_written() {
        let body = br#"{"brokerDatas":[{"brokerAddrs":{"0":"h:1"},"brokerName":"b"}],"queueDatas":[{"brokerName":"b","perm":4,"readQueueNums":2,"writeQueueNums":2}]}"#;
        let r = TopicRoute::parse("T", body).unwrap();
        assert!(r.write_queues.is_empty());
        assert_eq!(r.read_queues.len(), 2);
    }
}
