//! CONSUMER_SEND_MSG_BACK (36): a consumer hands back a message it failed to consume
//! (spec/remoting.md §8.15). The original record is read from its owner shard by its global
//! commit-log offset and re-stored in `%RETRY%<group>` (or `%DLQ%<group>` once
//! `maxReconsumeTimes` is reached) with `reconsumeTimes + 1`, `RETRY_TOPIC` and
//! `ORIGIN_MESSAGE_ID`.
//!
//! TODO(#4): upstream delays the retry by delay level `3 + reconsumeTimes` through
//! `SCHEDULE_TOPIC_XXXX`; until delayed delivery exists the retry is delivered at once.

use std::rc::Rc;

use crate::broker::processor::{opt_field, req_field, HandlerResult};
use crate::broker::{register, BrokerError, BrokerShard};
use crate::remoting::code::response;
use crate::remoting::message::{encode_offset_msg_id, get_property, keys, tags_code};
use crate::remoting::RemotingCommand;
use crate::runtime::now_ms;
use crate::store::record::{check, Decoded};
use crate::store::{split_offset, PutBatch, PutMessage};

pub async fn handle(shard: &Rc<BrokerShard>, req: &RemotingCommand) -> HandlerResult {
    let offset: i64 = req_field(req, "offset")?;
    let group: String = req_field(req, "group")?;
    let delay_level: i32 = req_field(req, "delayLevel")?;
    let max_reconsume: i32 = opt_field(req, "maxReconsumeTimes").unwrap_or(16);
    if shard.settings.role.is_slave() {
        return Err(BrokerError::NoPermission(format!(
            "the broker[{}] sending message is forbidden",
            shard.settings.broker_addr()
        )));
    }
    let g = group.clone();
    let config = shard
        .on_control(move |s, cp| {
            let config = cp.groups.get_or_create(&g)?;
            if cp
                .topics
                .ensure_retry_topic(&g, config.retry_queue_nums.max(1), now_ms())
            {
                register::after_topic_change(s, cp.topics.snapshot());
            }
            Some(config)
        })
        .await?
        .ok_or_else(|| BrokerError::SubscriptionGroupNotExist(group.clone()))?;
    if config.retry_queue_nums == 0 {
        return Ok(Some(RemotingCommand::response_to(req, response::SUCCESS)));
    }
    let global = u64::try_from(offset)
        .map_err(|_| BrokerError::System(format!("look message by offset failed, {offset}")))?;
    let owner = usize::from(split_offset(global).0 .0);
    let record = shard
        .on_shard(owner, move |s| {
            Box::pin(async move { s.store.lookup_record(global).await })
        })
        .await??
        .ok_or_else(|| BrokerError::System(format!("look message by offset failed, {offset}")))?;
    let Ok(Decoded::Record(r)) = check(&record) else {
        return Err(BrokerError::System(format!(
            "look message by offset failed, {offset}: the stored record does not decode"
        )));
    };
    let to_dlq = r.reconsume_times >= max_reconsume || delay_level < 0;
    let (topic, queue_id) = if to_dlq {
        let dlq = format!("%DLQ%{group}");
        let t = dlq.clone();
        shard
            .on_control(move |s, cp| {
                if cp.topics.ensure_topic(&t, 1, now_ms()) {
                    register::after_topic_change(s, cp.topics.snapshot());
                }
            })
            .await?;
        (dlq, 0)
    } else {
        let queues = config.retry_queue_nums.max(1);
        (
            format!("%RETRY%{group}"),
            (r.born_timestamp.unsigned_abs() % u64::from(queues)) as u32,
        )
    };
    let mut properties = r.properties.trim_end_matches('\u{2}').to_string();
    let mut add = |key: &str, value: &str| {
        if get_property(&properties, key).is_none() {
            if !properties.is_empty() {
                properties.push('\u{2}');
            }
            properties.push_str(&format!("{key}\u{1}{value}"));
        }
    };
    add(keys::RETRY_TOPIC, r.topic);
    let origin = get_property(r.properties, keys::UNIQ_KEY).map_or_else(
        || encode_offset_msg_id(*r.store_host.ip(), u32::from(r.store_host.port()), global),
        str::to_string,
    );
    add("ORIGIN_MESSAGE_ID", &origin);
    let batch = PutBatch {
        topic: topic.clone(),
        queue_id,
        sys_flag: r.sys_flag,
        born_timestamp: r.born_timestamp,
        born_host: r.born_host,
        store_host: r.store_host,
        reconsume_times: r.reconsume_times.saturating_add(1),
        prepared_tx_offset: 0,
        messages: vec![PutMessage {
            body: bytes::Bytes::copy_from_slice(r.body),
            flag: r.flag,
            tags_code: tags_code(&properties),
            properties,
        }],
        wait_durable: false,
    };
    let target = shard.owner_of(&topic, queue_id);
    shard
        .on_shard(target, move |s| {
            Box::pin(async move { s.store.put(batch).await })
        })
        .await??;
    Ok(Some(RemotingCommand::response_to(req, response::SUCCESS)))
}
