//! SEND_MESSAGE (10), SEND_MESSAGE_V2 (310), SEND_BATCH_MESSAGE (320): spec/remoting.md
//! §8.1-8.3. The header becomes a store-level `PutBatch` here; the put runs on the queue's
//! owner shard and the response is built from its result.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::rc::Rc;

use crate::broker::processor::HandlerResult;
use crate::broker::settings::Role;
use crate::broker::topics::{validate_topic_name, CreateError, TopicConfig, AUTO_CREATE_TOPIC_KEY};
use crate::broker::{register, BrokerError, BrokerShard};
use crate::ha::ReplicaWait;
use crate::net::Connection;
use crate::remoting::code::{request, response};
use crate::remoting::header::SendMessageHeader;
use crate::remoting::message::{decode_batch, encode_offset_msg_id, get_property, keys, tags_code};
use crate::remoting::RemotingCommand;
use crate::runtime::now_ms;
use crate::store::record::record_len;
use crate::store::{split_offset, PutBatch, PutMessage, PutStatus};

pub async fn handle(
    shard: &Rc<BrokerShard>,
    req: &RemotingCommand,
    conn: &Connection,
) -> HandlerResult {
    let header =
        SendMessageHeader::from_request(req).map_err(|e| BrokerError::Header(e.to_string()))?;
    if shard.settings.role.is_slave() {
        return Err(BrokerError::ServiceNotAvailable(
            "broker is a SLAVE: it does not accept sends".to_string(),
        ));
    }
    if shard.stopping.get() {
        return Err(BrokerError::ServiceNotAvailable(
            "the broker is shutting down".to_string(),
        ));
    }
    if header.topic == AUTO_CREATE_TOPIC_KEY {
        return Err(BrokerError::System(format!(
            "the topic[{AUTO_CREATE_TOPIC_KEY}] is conflict with system reserved words."
        )));
    }
    validate_topic_name(&header.topic).map_err(BrokerError::System)?;
    let topic = topic_config(shard, &header).await?;
    if !topic.is_writable() {
        return Err(BrokerError::NoPermission(format!(
            "the topic[{}] sending message is forbidden",
            header.topic
        )));
    }
    let queue_id = choose_queue(&header, &topic)?;
    let batch = build_batch(shard, req, &header, queue_id, conn.info().peer)?;
    let owner = shard.owner_of(&header.topic, queue_id);
    // SYNC_MASTER: after the put, wait until a slave holds it (not for WAIT=false puts).
    let ha = &shard.settings.ha;
    let sync = (shard.settings.role == Role::SyncMaster && batch.wait_durable)
        .then_some((ha.slave_fallbehind_max, ha.sync_timeout));
    let last_len = batch.messages.last().map_or(0, |m| {
        record_len(m.body.len(), batch.topic.len(), m.properties.len())
    });
    let (result, replica) = shard
        .on_shard(owner, move |s| {
            Box::pin(async move {
                let r = s.store.put(batch).await?;
                let replica = match (sync, r.phys_offsets.last()) {
                    (Some((fallbehind, timeout)), Some(&last)) => {
                        let end = split_offset(last).1 + last_len;
                        Some(s.ha.wait_replicated(end, fallbehind, timeout).await)
                    }
                    _ => None,
                };
                Ok::<_, crate::store::StoreError>((r, replica))
            })
        })
        .await??;
    // 4.3 order: the flush wait, then the slave wait; a later failure overwrites.
    let code = match (result.status, replica) {
        (_, Some(ReplicaWait::SlaveNotAvailable)) => response::SLAVE_NOT_AVAILABLE,
        (_, Some(ReplicaWait::Timeout)) => response::FLUSH_SLAVE_TIMEOUT,
        (PutStatus::Ok, _) => response::SUCCESS,
        (PutStatus::FlushDiskTimeout, _) => response::FLUSH_DISK_TIMEOUT,
    };
    let host = shard.settings.store_host;
    let ids: Vec<String> = result
        .phys_offsets
        .iter()
        .map(|p| encode_offset_msg_id(*host.ip(), u32::from(host.port()), *p))
        .collect();
    let resp = RemotingCommand::response_to(req, code)
        .with_field("msgId", ids.join(","))
        .with_field("queueId", queue_id.to_string())
        .with_field("queueOffset", result.first_queue_offset.to_string())
        .with_field("MSG_REGION", shard.settings.region_id.clone())
        .with_field("TRACE_ON", shard.settings.trace_on.to_string());
    Ok(Some(resp))
}

/// The topic's config, auto-creating it on shard 0 when allowed.
async fn topic_config(
    shard: &Rc<BrokerShard>,
    h: &SendMessageHeader,
) -> Result<TopicConfig, BrokerError> {
    if let Some(t) = shard.topic_snapshot().get(&h.topic) {
        return Ok(t.clone());
    }
    let (topic, default_topic, nums) = (
        h.topic.clone(),
        h.default_topic.clone(),
        h.default_topic_queue_nums.max(1).unsigned_abs(),
    );
    let created = shard
        .on_control(move |s, cp| {
            let r = cp
                .topics
                .create_on_send(&topic, &default_topic, nums, now_ms());
            if let Ok((_, true)) = &r {
                let table = cp.topics.snapshot();
                register::after_topic_change(s, table);
                crate::broker::start::persist_soon(s);
            }
            r.map(|(c, _)| c)
        })
        .await?;
    match created {
        Ok(c) => Ok(c),
        Err(CreateError::NotExist) => Err(BrokerError::TopicNotExist(h.topic.clone())),
        Err(CreateError::Forbidden(why)) => Err(BrokerError::NoPermission(why)),
    }
}

fn choose_queue(h: &SendMessageHeader, topic: &TopicConfig) -> Result<u32, BrokerError> {
    let writable = topic.write_queue_nums.max(1);
    if h.queue_id < 0 {
        // The broker picks: spread by the born timestamp, cheap and good enough.
        return Ok((h.born_timestamp.unsigned_abs() % u64::from(writable)) as u32);
    }
    let q = h.queue_id.unsigned_abs();
    if q >= topic.write_queue_nums.max(topic.read_queue_nums) {
        return Err(BrokerError::System(format!(
            "request queueId[{q}] is illegal, {topic:?} Producer: {}",
            h.topic
        )));
    }
    Ok(q)
}

fn build_batch(
    shard: &BrokerShard,
    req: &RemotingCommand,
    h: &SendMessageHeader,
    queue_id: u32,
    peer: SocketAddr,
) -> Result<PutBatch, BrokerError> {
    let born_host = match peer {
        SocketAddr::V4(v4) => v4,
        SocketAddr::V6(v6) => SocketAddrV4::new(
            v6.ip().to_ipv4_mapped().unwrap_or(Ipv4Addr::LOCALHOST),
            v6.port(),
        ),
    };
    let header_props = h.properties.as_deref().unwrap_or_default();
    // The last WAIT wins, as in Java's property map; nothing is allocated to find it.
    let wait_durable =
        get_property(header_props, keys::WAIT).is_none_or(|v| !v.eq_ignore_ascii_case("false"));
    let mut sys_flag = h.sys_flag;
    // A batch: code 320, or `batch`/`m` set (the C++ client sends code 10 with `batch:"1"`).
    let messages = if h.batch || req.code == request::SEND_BATCH_MESSAGE {
        let body = if sys_flag & SYS_FLAG_COMPRESSED != 0 {
            // The C++ client zlib-compresses a whole batch body of 4 KiB or more. Records are
            // stored per message, so inflate here and store them uncompressed.
            sys_flag &= !SYS_FLAG_COMPRESSED;
            inflate_batch(&req.body)?
        } else {
            req.body.clone()
        };
        let inner = decode_batch(&body)
            .map_err(|e| BrokerError::MessageIllegal(format!("bad batch body: {e}")))?;
        if inner.is_empty() {
            return Err(BrokerError::MessageIllegal("empty batch".to_string()));
        }
        inner
            .into_iter()
            .map(|m| {
                let properties = join_properties(&m.properties, header_props);
                PutMessage {
                    tags_code: tags_code(&properties),
                    body: m.body,
                    flag: m.flag,
                    properties,
                }
            })
            .collect()
    } else {
        vec![PutMessage {
            body: req.body.clone(),
            flag: h.flag,
            tags_code: tags_code(header_props),
            properties: header_props.to_string(),
        }]
    };
    Ok(PutBatch {
        topic: h.topic.clone(),
        queue_id,
        sys_flag,
        born_timestamp: h.born_timestamp,
        born_host,
        store_host: shard.settings.store_host,
        reconsume_times: h.reconsume_times.unwrap_or(0),
        prepared_tx_offset: 0,
        messages,
        wait_durable,
    })
}

/// Message sysFlag bit 0: the body is zlib-compressed.
const SYS_FLAG_COMPRESSED: i32 = 0x1;

/// Inflates a compressed batch body, refusing to grow past the frame limit.
fn inflate_batch(body: &[u8]) -> Result<bytes::Bytes, BrokerError> {
    use std::io::Read;
    let limit = u64::try_from(crate::constants::FRAME_MAX_LEN).unwrap_or(u64::MAX);
    let mut out = Vec::with_capacity(body.len() * 4);
    flate2::read::ZlibDecoder::new(body)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| BrokerError::MessageIllegal(format!("bad compressed batch body: {e}")))?;
    if out.len() as u64 > limit {
        return Err(BrokerError::MessageIllegal(format!(
            "compressed batch body inflates beyond {limit} bytes"
        )));
    }
    Ok(out.into())
}

/// A batch message's own properties, then the batch-level ones (message-format.md §6).
fn join_properties(own: &str, batch: &str) -> String {
    if own.is_empty() {
        return batch.to_string();
    }
    if batch.is_empty() {
        return own.to_string();
    }
    if own.ends_with('\u{2}') {
        format!("{own}{batch}")
    } else {
        format!("{own}\u{2}{batch}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remoting::message::java_string_hash;

    #[test]
    fn batch_properties_are_joined_with_one_separator() {
        assert_eq!(
            join_properties("a\u{1}1", "WAIT\u{1}true"),
            "a\u{1}1\u{2}WAIT\u{1}true"
        );
        assert_eq!(
            join_properties("a\u{1}1\u{2}", "WAIT\u{1}true"),
            "a\u{1}1\u{2}WAIT\u{1}true"
        );
        assert_eq!(join_properties("", "x\u{1}y"), "x\u{1}y");
    }

    #[test]
    fn tags_code_is_the_java_hash_of_tags() {
        assert_eq!(
            tags_code("TAGS\u{1}TagA\u{2}KEYS\u{1}k"),
            i64::from(java_string_hash("TagA"))
        );
        assert_eq!(tags_code("KEYS\u{1}k"), 0);
    }
}
