//! Admin requests mqadmin and the console send: UPDATE_AND_CREATE_TOPIC (17),
//! DELETE_TOPIC_IN_BROKER (215), GET_ALL_TOPIC_CONFIG (21), GET_BROKER_RUNTIME_INFO (28),
//! GET_BROKER_CONFIG (26), UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200), GET_TOPIC_STATS_INFO (202).

use std::rc::Rc;

use crate::broker::groups::GroupConfig;
use crate::broker::processor::{opt_field, req_field, HandlerResult};
use crate::broker::topics::{validate_topic_name, TopicConfig};
use crate::broker::{register, BrokerError, BrokerShard};
use crate::remoting::code::response;
use crate::remoting::{fastjson, RemotingCommand};
use crate::runtime::now_ms;

const SLAVE_REFUSAL: &str = "Can't modify topic or subscription group from slave broker, please execute it from master broker.";

pub async fn create_topic(shard: &Rc<BrokerShard>, req: &RemotingCommand) -> HandlerResult {
    if shard.settings.role.is_slave() {
        return Err(BrokerError::System(SLAVE_REFUSAL.to_string()));
    }
    let topic: String = req_field(req, "topic")?;
    validate_topic_name(&topic).map_err(BrokerError::System)?;
    let read: u32 = req_field(req, "readQueueNums")?;
    let write: u32 = req_field(req, "writeQueueNums")?;
    let perm: i32 = req_field(req, "perm")?;
    let mut config = TopicConfig::new(&topic, read, write, perm);
    if let Some(t) = req.field("topicFilterType") {
        config.topic_filter_type = t.to_string();
    }
    config.topic_sys_flag = opt_field(req, "topicSysFlag").unwrap_or(0);
    config.order = opt_field(req, "order").unwrap_or(false);
    shard
        .on_control(move |s, cp| {
            let table = cp.topics.upsert(config, now_ms());
            register::after_topic_change(s, table);
        })
        .await?;
    crate::broker::start::persist_soon(shard);
    Ok(Some(
        RemotingCommand::response_to(req, response::SUCCESS).with_empty_fields(),
    ))
}

pub async fn delete_topic(shard: &Rc<BrokerShard>, req: &RemotingCommand) -> HandlerResult {
    if shard.settings.role.is_slave() {
        return Err(BrokerError::System(SLAVE_REFUSAL.to_string()));
    }
    let topic: String = req_field(req, "topic")?;
    shard
        .on_control(move |s, cp| {
            if let Some(table) = cp.topics.remove(&topic, now_ms()) {
                register::after_topic_change(s, table);
            }
        })
        .await?;
    Ok(Some(
        RemotingCommand::response_to(req, response::SUCCESS).with_empty_fields(),
    ))
}

pub fn all_topic_config(shard: &Rc<BrokerShard>, req: &RemotingCommand) -> HandlerResult {
    let table = shard.topic_snapshot();
    let body = serde_json::to_string(&*table)
        .map_err(|e| BrokerError::System(format!("cannot encode topic table: {e}")))?;
    Ok(Some(
        RemotingCommand::response_to(req, response::SUCCESS)
            .with_empty_fields()
            .with_body(body),
    ))
}

pub fn broker_config(shard: &Rc<BrokerShard>, req: &RemotingCommand) -> HandlerResult {
    Ok(Some(
        RemotingCommand::response_to(req, response::SUCCESS)
            .with_field("version", "{\"counter\":1,\"timestamp\":0}")
            .with_body(shard.settings.config_text.clone()),
    ))
}

pub async fn create_group(shard: &Rc<BrokerShard>, req: &RemotingCommand) -> HandlerResult {
    if shard.settings.role.is_slave() {
        return Err(BrokerError::System(SLAVE_REFUSAL.to_string()));
    }
    let v = fastjson::parse_lenient(&req.body)
        .map_err(|e| BrokerError::System(format!("bad subscription group body: {e}")))?;
    let config: GroupConfig = serde_json::from_value(v)
        .map_err(|e| BrokerError::System(format!("bad subscription group body: {e}")))?;
    shard
        .on_control(move |_, cp| cp.groups.upsert(config))
        .await?;
    Ok(Some(
        RemotingCommand::response_to(req, response::SUCCESS).with_empty_fields(),
    ))
}

/// GET_TOPIC_STATS_INFO: min/max offset and last store time per queue, asked of each owner.
pub async fn topic_stats(shard: &Rc<BrokerShard>, req: &RemotingCommand) -> HandlerResult {
    let topic: String = req_field(req, "topic")?;
    let Some(config) = shard.topic_snapshot().get(&topic).cloned() else {
        return Err(BrokerError::TopicNotExist(topic));
    };
    let mut entries = Vec::new();
    for queue_id in 0..config.write_queue_nums {
        let owner = shard.owner_of(&topic, queue_id);
        let t = topic.clone();
        let (min, max, last) = shard
            .on_shard(owner, move |s| {
                Box::pin(async move {
                    let (min, max) = (
                        s.store.min_offset(&t, queue_id),
                        s.store.max_offset(&t, queue_id),
                    );
                    let last = match max {
                        0 => 0,
                        m => s
                            .store
                            .store_timestamp_at(&t, queue_id, m - 1)
                            .await
                            .ok()
                            .flatten()
                            .unwrap_or(0),
                    };
                    (min, max, last)
                })
            })
            .await?;
        entries.push(format!(
            "{}:{{\"lastUpdateTimestamp\":{last},\"maxOffset\":{max},\"minOffset\":{min}}}",
            message_queue_key(&shard.settings.broker_name, queue_id, &topic)
        ));
    }
    let body = format!("{{\"offsetTable\":{{{}}}}}", entries.join(","));
    Ok(Some(
        RemotingCommand::response_to(req, response::SUCCESS)
            .with_empty_fields()
            .with_body(body),
    ))
}

/// fastjson writes a `MessageQueue` map key as a raw JSON object.
fn message_queue_key(broker: &str, queue_id: u32, topic: &str) -> String {
    serde_json::json!({"brokerName": broker, "queueId": queue_id, "topic": topic}).to_string()
}

/// GET_BROKER_RUNTIME_INFO: the keys mqadmin `clusterList`/`brokerStatus` and the console read.
pub async fn runtime_info(shard: &Rc<BrokerShard>, req: &RemotingCommand) -> HandlerResult {
    let mut puts = 0u64;
    let mut stalls = crate::runtime::lag::Stalls::default();
    let mut slow_flushes = crate::runtime::lag::Stalls::default();
    for target in 0..shard.mesh.shard_count() {
        let (stats, shard_stalls, shard_flushes) = shard
            .on_shard(target, |s| {
                Box::pin(async move {
                    (
                        s.store.stats(),
                        s.stalls.borrow().clone(),
                        s.store.slow_flushes(),
                    )
                })
            })
            .await?;
        puts += stats.put_message_count;
        stalls.merge(&shard_stalls);
        slow_flushes.merge(&shard_flushes);
    }
    let table = serde_json::json!({
        "brokerVersionDesc": "V4_9_8",
        "brokerVersion": "409",
        "bootTimestamp": shard.settings.boot_timestamp_ms.to_string(),
        "putTps": "0.00 0.00 0.00",
        "getTotalTps": "0.00 0.00 0.00",
        "getFoundTps": "0.00 0.00 0.00",
        "getMissTps": "0.00 0.00 0.00",
        "getTransferedTps": "0.00 0.00 0.00",
        "msgPutTotalTodayNow": puts.to_string(),
        "msgPutTotalTodayMorning": "0",
        "msgPutTotalYesterdayMorning": "0",
        "msgGetTotalTodayNow": "0",
        "msgGetTotalTodayMorning": "0",
        "msgGetTotalYesterdayMorning": "0",
        "earliestMessageTimeStamp": "0",
        "commitLogDiskRatio": "0.0",
        "sendThreadPoolQueueSize": "0",
        "sendThreadPoolQueueCapacity": "10000",
        "pullThreadPoolQueueSize": "0",
        "pullThreadPoolQueueCapacity": "100000",
        "pageCacheLockTimeMills": "0",
        "sendThreadPoolQueueHeadWaitTimeMills": "0",
        "pullThreadPoolQueueHeadWaitTimeMills": "0",
        "dispatchBehindBytes": "0",
        "remainHowManyDataToFlush": "0 B",
        // shardmq's own: event-loop stalls of all shards (runtime::lag), for mqbench and
        // operators. Count and max since boot; the last ones as `epochMs:lagMs` words.
        "shardmqLoopStallCount": stalls.count.to_string(),
        "shardmqLoopStallMaxMs": stalls.max_ms.to_string(),
        "shardmqLoopStalls": stalls.to_words(),
        // Group-commit flushes (write + fdatasync with SYNC_FLUSH) of 5 ms or more: the
        // device's share of a send's latency, as `epochMs:ms` words.
        "shardmqSlowFlushCount": slow_flushes.count.to_string(),
        "shardmqSlowFlushMaxMs": slow_flushes.max_ms.to_string(),
        "shardmqSlowFlushes": slow_flushes.to_words(),
    });
    let body = serde_json::json!({ "table": table }).to_string();
    Ok(Some(
        RemotingCommand::response_to(req, response::SUCCESS)
            .with_empty_fields()
            .with_body(body),
    ))
}
