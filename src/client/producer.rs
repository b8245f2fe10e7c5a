//! Sending: SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320) with the header fields a Java 4.3
//! producer sends (golden producer.jsonl: one-letter keys `a`..`m`, defaultTopic TBW102, four
//! default queues, `WAIT=true`, a `UNIQ_KEY` per message).

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::{remark_of, MessageQueue, MqClient, MqClientError};
use crate::remoting::code::{request, response};
use crate::remoting::message::{encode_batch, encode_properties, keys, BatchMessage};
use crate::remoting::RemotingCommand;

/// A message to send: body plus properties (tags, keys, delay level, user properties).
#[derive(Debug, Clone, Default)]
pub struct OutgoingMessage {
    pub body: Bytes,
    pub tags: Option<String>,
    pub keys: Option<String>,
    /// Delay level (1..=18 in upstream's default table); 0 = none.
    pub delay_level: u32,
    pub user_properties: Vec<(String, String)>,
}

/// What the broker answered to a send. `status` is the response code: 0 SEND_OK,
/// 10 FLUSH_DISK_TIMEOUT, 11 SLAVE_NOT_AVAILABLE, 12 FLUSH_SLAVE_TIMEOUT (all stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    pub status: i32,
    pub msg_id: String,
    pub queue_offset: i64,
}

thread_local! {
    static UNIQ_COUNTER: Cell<u32> = const { Cell::new(0) };
}

/// A 32-hex-digit unique id in the shape Java's `MessageClientIDSetter` makes: 4 bytes of
/// address (loopback here), pid, a per-thread tag, the time in seconds, and a counter.
fn uniq_key() -> String {
    let n = UNIQ_COUNTER.with(|c| {
        let v = c.get().wrapping_add(1);
        c.set(v);
        v
    });
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "7F000001{:04X}{:04X}{:08X}{:08X}",
        std::process::id() & 0xFFFF,
        thread_id_hash() & 0xFFFF,
        secs & 0xFFFF_FFFF,
        n
    )
}

fn thread_id_hash() -> u32 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::thread::current().id().hash(&mut h);
    (h.finish() & 0xFFFF_FFFF) as u32
}

fn properties_of(m: &OutgoingMessage) -> String {
    let mut props: Vec<(&str, String)> = Vec::with_capacity(5 + m.user_properties.len());
    for (k, v) in &m.user_properties {
        props.push((k.as_str(), v.clone()));
    }
    if let Some(k) = &m.keys {
        props.push((keys::KEYS, k.clone()));
    }
    props.push((keys::UNIQ_KEY, uniq_key()));
    props.push((keys::WAIT, "true".to_string()));
    if let Some(t) = &m.tags {
        props.push((keys::TAGS, t.clone()));
    }
    if m.delay_level > 0 {
        props.push((keys::DELAY, m.delay_level.to_string()));
    }
    encode_properties(&props)
}

fn born_ms() -> String {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
        .to_string()
}

fn send_header(
    code: i32,
    group: &str,
    mq: &MessageQueue,
    properties: String,
    batch: bool,
) -> RemotingCommand {
    RemotingCommand::request(code, 0)
        .with_field("a", group)
        .with_field("b", mq.topic.as_str())
        .with_field("c", "TBW102")
        .with_field("d", "4")
        .with_field("e", mq.queue_id.to_string())
        .with_field("f", "0")
        .with_field("g", born_ms())
        .with_field("h", "0")
        .with_field("i", properties)
        .with_field("j", "0")
        .with_field("k", "false")
        .with_field("m", if batch { "true" } else { "false" })
}

impl MqClient {
    /// Sends one message to `mq` and waits for the broker's answer.
    pub async fn send(
        &self,
        group: &str,
        mq: &MessageQueue,
        msg: &OutgoingMessage,
    ) -> Result<SendResult, MqClientError> {
        let req = send_header(
            request::SEND_MESSAGE_V2,
            group,
            mq,
            properties_of(msg),
            false,
        )
        .with_body(msg.body.clone());
        self.finish_send(mq, req).await
    }

    /// Sends several messages to `mq` as one SEND_BATCH_MESSAGE.
    pub async fn send_batch(
        &self,
        group: &str,
        mq: &MessageQueue,
        msgs: &[OutgoingMessage],
    ) -> Result<SendResult, MqClientError> {
        let batch: Vec<BatchMessage> = msgs
            .iter()
            .map(|m| BatchMessage {
                flag: 0,
                body: m.body.clone(),
                properties: properties_of(m),
            })
            .collect();
        let props = encode_properties(&[(keys::WAIT, "true")]);
        let req = send_header(request::SEND_BATCH_MESSAGE, group, mq, props, true)
            .with_body(encode_batch(&batch));
        self.finish_send(mq, req).await
    }

    async fn finish_send(
        &self,
        mq: &MessageQueue,
        req: RemotingCommand,
    ) -> Result<SendResult, MqClientError> {
        let resp = self.call(&mq.addr, req).await?;
        match resp.code {
            response::SUCCESS
            | response::FLUSH_DISK_TIMEOUT
            | response::SLAVE_NOT_AVAILABLE
            | response::FLUSH_SLAVE_TIMEOUT => Ok(SendResult {
                status: resp.code,
                msg_id: resp.field("msgId").unwrap_or_default().to_string(),
                queue_offset: resp
                    .field("queueOffset")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(-1),
            }),
            code => Err(MqClientError::Refused {
                what: "send",
                addr: mq.addr.clone(),
                code,
                remark: remark_of(&resp),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remoting::message::get_property;

    #[test]
    fn properties_carry_keys_tags_delay_and_a_unique_key() {
        let m = OutgoingMessage {
            body: Bytes::from_static(b"x"),
            tags: Some("TagA".into()),
            keys: Some("k1".into()),
            delay_level: 3,
            user_properties: vec![("p".into(), "v".into())],
        };
        let p = properties_of(&m);
        assert_eq!(get_property(&p, "KEYS"), Some("k1"));
        assert_eq!(get_property(&p, "TAGS"), Some("TagA"));
        assert_eq!(get_property(&p, "DELAY"), Some("3"));
        assert_eq!(get_property(&p, "WAIT"), Some("true"));
        assert_eq!(get_property(&p, "p"), Some("v"));
        let u1 = get_property(&p, "UNIQ_KEY").unwrap().to_string();
        let u2 = get_property(&properties_of(&m), "UNIQ_KEY")
            .unwrap()
            .to_string();
        assert_eq!(u1.len(), 32);
        assert_ne!(u1, u2);
    }
}
