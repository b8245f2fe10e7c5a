//! Pulling: PULL_MESSAGE (11) for one queue with long polling and an inline subscription
//! (sysFlag SUBSCRIPTION, so no heartbeat is needed), records decoded from the response body.

use std::io::Read;
use std::time::Duration;

use bytes::Bytes;

use super::{remark_of, MessageQueue, MqClient, MqClientError};
use crate::remoting::code::{request, response};
use crate::remoting::RemotingCommand;
use crate::store::record::{self, Decoded};

const FLAG_COMMIT_OFFSET: i32 = 0x1;
const FLAG_SUSPEND: i32 = 0x2;
const FLAG_SUBSCRIPTION: i32 = 0x4;
/// sysFlag bit of a record whose body is zlib-compressed (upstream stores them so).
const SYSFLAG_COMPRESSED: i32 = 0x1;

/// One received message. `body` is a slice of the response (decompressed if it was stored
/// compressed).
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    pub topic: String,
    pub queue_id: i32,
    pub queue_offset: i64,
    pub born_timestamp: i64,
    pub store_timestamp: i64,
    pub body: Bytes,
    pub properties: String,
}

/// Pull outcome, as the response code says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullStatus {
    Found,
    NoNewMessage,
    OffsetMoved,
    Retry,
}

#[derive(Debug, Clone)]
pub struct PullResult {
    pub status: PullStatus,
    pub next_begin_offset: i64,
    pub min_offset: i64,
    pub max_offset: i64,
    pub messages: Vec<ReceivedMessage>,
}

/// Decodes a run of stored records (a pull response body).
pub fn decode_records(body: &Bytes) -> Result<Vec<ReceivedMessage>, String> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < body.len() {
        let rest = &body[at..];
        match record::decode(rest) {
            Ok(Decoded::Record(r)) => {
                let len = r.total_size as usize;
                let body_start = at + 88;
                let mut payload = body.slice(body_start..body_start + r.body.len());
                if r.sys_flag & SYSFLAG_COMPRESSED != 0 {
                    let mut inflated = Vec::new();
                    flate2::read::ZlibDecoder::new(r.body)
                        .read_to_end(&mut inflated)
                        .map_err(|e| {
                            format!("record at byte {at}: compressed body does not inflate: {e}")
                        })?;
                    payload = Bytes::from(inflated);
                }
                out.push(ReceivedMessage {
                    topic: r.topic.to_string(),
                    queue_id: r.queue_id,
                    queue_offset: r.queue_offset,
                    born_timestamp: r.born_timestamp,
                    store_timestamp: r.store_timestamp,
                    body: payload,
                    properties: r.properties.to_string(),
                });
                at += len;
            }
            Ok(other) => return Err(format!("record at byte {at}: {other:?}")),
            Err(e) => return Err(format!("record at byte {at}: {e}")),
        }
    }
    Ok(out)
}

fn field_i64(r: &RemotingCommand, key: &str) -> i64 {
    r.field(key).and_then(|s| s.parse().ok()).unwrap_or(-1)
}

impl MqClient {
    /// One PULL_MESSAGE for `mq` from `offset`; the broker holds it up to `suspend` when there
    /// is nothing new. `commit` (when given) is committed for `group` on the way.
    pub async fn pull(
        &self,
        group: &str,
        mq: &MessageQueue,
        offset: i64,
        max: u32,
        suspend: Duration,
        commit: Option<i64>,
    ) -> Result<PullResult, MqClientError> {
        let mut sys_flag = FLAG_SUBSCRIPTION;
        if !suspend.is_zero() {
            sys_flag |= FLAG_SUSPEND;
        }
        if commit.is_some() {
            sys_flag |= FLAG_COMMIT_OFFSET;
        }
        let suspend_ms = u64::try_from(suspend.as_millis()).unwrap_or(u64::MAX);
        let req = RemotingCommand::request(request::PULL_MESSAGE, 0)
            .with_field("consumerGroup", group)
            .with_field("topic", mq.topic.as_str())
            .with_field("queueId", mq.queue_id.to_string())
            .with_field("queueOffset", offset.to_string())
            .with_field("maxMsgNums", max.to_string())
            .with_field("sysFlag", sys_flag.to_string())
            .with_field("commitOffset", commit.unwrap_or(0).to_string())
            .with_field("suspendTimeoutMillis", suspend_ms.to_string())
            .with_field("subscription", "*")
            .with_field("subVersion", "0")
            .with_field("expressionType", "TAG");
        let resp = self
            .call_timeout(&mq.addr, req, suspend + self.timeout())
            .await?;
        let status = match resp.code {
            response::SUCCESS => PullStatus::Found,
            response::PULL_NOT_FOUND => PullStatus::NoNewMessage,
            response::PULL_OFFSET_MOVED => PullStatus::OffsetMoved,
            response::PULL_RETRY_IMMEDIATELY => PullStatus::Retry,
            code => {
                return Err(MqClientError::Refused {
                    what: "PULL_MESSAGE",
                    addr: mq.addr.clone(),
                    code,
                    remark: remark_of(&resp),
                })
            }
        };
        let messages = if status == PullStatus::Found {
            decode_records(&resp.body).map_err(|reason| MqClientError::BadResponse {
                what: "PULL_MESSAGE body",
                addr: mq.addr.clone(),
                reason,
            })?
        } else {
            Vec::new()
        };
        Ok(PullResult {
            status,
            next_begin_offset: field_i64(&resp, "nextBeginOffset"),
            min_offset: field_i64(&resp, "minOffset"),
            max_offset: field_i64(&resp, "maxOffset"),
            messages,
        })
    }

    /// GET_MAX_OFFSET (30): the next offset to be written in `mq`.
    pub async fn max_offset(&self, mq: &MessageQueue) -> Result<i64, MqClientError> {
        let req = RemotingCommand::request(request::GET_MAX_OFFSET, 0)
            .with_field("topic", mq.topic.as_str())
            .with_field("queueId", mq.queue_id.to_string());
        let resp = self.call(&mq.addr, req).await?;
        if resp.code != response::SUCCESS {
            return Err(MqClientError::Refused {
                what: "GET_MAX_OFFSET",
                addr: mq.addr.clone(),
                code: resp.code,
                remark: remark_of(&resp),
            });
        }
        resp.field("offset")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| MqClientError::BadResponse {
                what: "GET_MAX_OFFSET",
                addr: mq.addr.clone(),
                reason: "no numeric offset field".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::{encode, RecordFields};
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn rec(qo: i64, body: &[u8], out: &mut Vec<u8>) {
        let h = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1);
        encode(
            &RecordFields {
                queue_id: 2,
                flag: 0,
                queue_offset: qo,
                phys_offset: 0,
                sys_flag: 0,
                born_timestamp: 5,
                born_host: h,
                store_timestamp: 6,
                store_host: h,
                reconsume_times: 0,
                prepared_tx_offset: 0,
                body,
                topic: "T",
                properties: "a\u{1}b",
            },
            out,
        );
    }

    #[test]
    fn decodes_a_run_of_records() {
        let mut buf = Vec::new();
        rec(7, b"hello", &mut buf);
        rec(8, b"world!", &mut buf);
        let got = decode_records(&Bytes::from(buf)).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(&got[0].body[..], b"hello");
        assert_eq!(got[1].queue_offset, 8);
        assert_eq!(got[1].properties, "a\u{1}b");
        assert_eq!(got[1].queue_id, 2);
    }

    #[test]
    fn a_torn_run_is_an_error_naming_the_byte() {
        let mut buf = Vec::new();
        rec(7, b"hello", &mut buf);
        buf.truncate(buf.len() - 3);
        let e = decode_records(&Bytes::from(buf)).unwrap_err();
        assert!(e.contains("byte 0"), "{e}");
    }
}
