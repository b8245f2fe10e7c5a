//! Client management and offsets: HEART_BEAT (34), UNREGISTER_CLIENT (35),
//! GET_CONSUMER_LIST_BY_GROUP (38), QUERY_/UPDATE_CONSUMER_OFFSET (14/15), GET_MAX_OFFSET (30),
//! GET_MIN_OFFSET (31), GET_EARLIEST_MSG_STORETIME (32), SEARCH_OFFSET_BY_TIMESTAMP (29).
//! spec/remoting.md §8.5-8.12.

use std::rc::Rc;

use crate::broker::clients::ClientChannel;
use crate::broker::processor::{opt_field, req_field, HandlerResult};
use crate::broker::{register, BrokerError, BrokerShard};
use crate::net::Connection;
use crate::remoting::code::{request, response};
use crate::remoting::{fastjson, RemotingCommand};
use crate::runtime::now_ms;

pub async fn heartbeat(
    shard: &Rc<BrokerShard>,
    req: &RemotingCommand,
    conn: &Connection,
) -> HandlerResult {
    let data = fastjson::parse_lenient(&req.body)
        .map_err(|e| BrokerError::System(format!("bad heartbeat body: {e}")))?;
    let channel = ClientChannel {
        client_id: String::new(),
        conn_id: conn.info().id,
        addr: conn.info().peer.to_string(),
        language: req.language.name().to_string(),
        version: req.version,
        last_seen_ms: now_ms(),
    };
    let notify = shard
        .on_control(move |s, cp| {
            let outcome = cp.clients.heartbeat(&data, channel);
            let mut topics_changed = false;
            for group in &outcome.consumer_groups {
                if let Some(cfg) = cp.groups.get_or_create(group) {
                    topics_changed |=
                        cp.topics
                            .ensure_retry_topic(group, cfg.retry_queue_nums.max(1), now_ms());
                }
            }
            if topics_changed {
                register::after_topic_change(s, cp.topics.snapshot());
            }
            outcome
                .changed_groups
                .iter()
                .map(|g| (g.clone(), cp.clients.consumer_conns(g)))
                .collect::<Vec<_>>()
        })
        .await?;
    for (group, conns) in notify {
        notify_ids_changed(shard, &group, conns);
    }
    Ok(Some(RemotingCommand::response_to(req, response::SUCCESS)))
}

/// Tells every consumer of `group` to rebalance now (oneway NOTIFY_CONSUMER_IDS_CHANGED),
/// on whichever shard holds its connection.
fn notify_ids_changed(shard: &Rc<BrokerShard>, group: &str, conns: Vec<u64>) {
    for conn_id in conns {
        let target = usize::try_from(conn_id >> 48).unwrap_or(0);
        let group = group.to_string();
        let mesh = shard.mesh.clone();
        glommio::spawn_local(async move {
            let _ = mesh
                .post_to(target, move |s| {
                    Box::pin(async move {
                        let conn = s
                            .conns
                            .borrow()
                            .get(&conn_id)
                            .and_then(std::rc::Weak::upgrade);
                        if let Some(conn) = conn {
                            let cmd =
                                RemotingCommand::request(request::NOTIFY_CONSUMER_IDS_CHANGED, 0)
                                    .with_field("consumerGroup", group);
                            let _ = conn.call_oneway(cmd).await;
                        }
                    })
                })
                .await;
        })
        .detach();
    }
}

pub async fn unregister(shard: &Rc<BrokerShard>, req: &RemotingCommand) -> HandlerResult {
    let client_id: String = req_field(req, "clientID")?;
    let producer = req.field("producerGroup").map(str::to_string);
    let consumer = req.field("consumerGroup").map(str::to_string);
    let notify = shard
        .on_control(move |_, cp| {
            let changed =
                cp.clients
                    .unregister(&client_id, producer.as_deref(), consumer.as_deref());
            match (changed, consumer) {
                (true, Some(g)) => {
                    let conns = cp.clients.consumer_conns(&g);
                    Some((g, conns))
                }
                _ => None,
            }
        })
        .await?;
    if let Some((group, conns)) = notify {
        notify_ids_changed(shard, &group, conns);
    }
    Ok(Some(
        RemotingCommand::response_to(req, response::SUCCESS).with_empty_fields(),
    ))
}

pub async fn consumer_list(shard: &Rc<BrokerShard>, req: &RemotingCommand) -> HandlerResult {
    let group: String = req_field(req, "consumerGroup")?;
    let g = group.clone();
    let ids = shard
        .on_control(move |_, cp| cp.clients.consumer_ids(&g))
        .await?;
    if ids.is_empty() {
        return Err(BrokerError::System(format!(
            "no consumer for this group, {group}"
        )));
    }
    let body = serde_json::json!({ "consumerIdList": ids }).to_string();
    Ok(Some(
        RemotingCommand::response_to(req, response::SUCCESS)
            .with_empty_fields()
            .with_body(body),
    ))
}

pub async fn query_offset(shard: &Rc<BrokerShard>, req: &RemotingCommand) -> HandlerResult {
    let group: String = req_field(req, "consumerGroup")?;
    let topic: String = req_field(req, "topic")?;
    let queue_id: u32 = req_field(req, "queueId")?;
    let (g, t) = (group.clone(), topic.clone());
    let stored = shard
        .on_control(move |_, cp| cp.offsets.query(&g, &t, queue_id))
        .await?;
    let offset = match stored {
        Some(o) => Some(o),
        None => {
            // Upstream: a new group on a queue whose first message is still at hand starts at 0.
            let owner = shard.owner_of(&topic, queue_id);
            let t = topic.clone();
            let min = shard
                .on_shard(owner, move |s| {
                    Box::pin(async move { s.store.min_offset(&t, queue_id) })
                })
                .await?;
            (min == 0).then_some(0)
        }
    };
    Ok(Some(match offset {
        Some(o) => {
            RemotingCommand::response_to(req, response::SUCCESS).with_field("offset", o.to_string())
        }
        None => RemotingCommand::response_to(req, response::QUERY_NOT_FOUND)
            .with_remark("Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first"),
    }))
}

pub async fn update_offset(shard: &Rc<BrokerShard>, req: &RemotingCommand) -> HandlerResult {
    let group: String = req_field(req, "consumerGroup")?;
    let topic: String = req_field(req, "topic")?;
    let queue_id: u32 = req_field(req, "queueId")?;
    let offset: i64 = req_field(req, "commitOffset")?;
    // Some clients (ali-ons) send -1 for "nothing consumed yet": nothing to store.
    if let Ok(offset) = u64::try_from(offset) {
        shard
            .on_control(move |_, cp| cp.offsets.commit(&group, &topic, queue_id, offset))
            .await?;
    }
    Ok(Some(
        RemotingCommand::response_to(req, response::SUCCESS).with_empty_fields(),
    ))
}

/// GET_MAX_OFFSET, GET_MIN_OFFSET, GET_EARLIEST_MSG_STORETIME, SEARCH_OFFSET_BY_TIMESTAMP:
/// all answered by the queue's owner shard.
pub async fn queue_info(shard: &Rc<BrokerShard>, req: &RemotingCommand) -> HandlerResult {
    let topic: String = req_field(req, "topic")?;
    let queue_id: u32 = req_field(req, "queueId")?;
    let code = req.code;
    let timestamp: i64 = if code == request::SEARCH_OFFSET_BY_TIMESTAMP {
        req_field(req, "timestamp")?
    } else {
        opt_field(req, "timestamp").unwrap_or(0)
    };
    let owner = shard.owner_of(&topic, queue_id);
    let value = shard
        .on_shard(owner, move |s| {
            Box::pin(async move {
                let store = &s.store;
                Ok::<i64, crate::store::StoreError>(match code {
                    request::GET_MAX_OFFSET => to_i64(store.max_offset(&topic, queue_id)),
                    request::GET_MIN_OFFSET => to_i64(store.min_offset(&topic, queue_id)),
                    request::GET_EARLIEST_MSG_STORETIME => {
                        let min = store.min_offset(&topic, queue_id);
                        store
                            .store_timestamp_at(&topic, queue_id, min)
                            .await?
                            .unwrap_or(-1)
                    }
                    _ => to_i64(
                        store
                            .search_offset_by_timestamp(&topic, queue_id, timestamp)
                            .await?,
                    ),
                })
            })
        })
        .await??;
    let key = if code == request::GET_EARLIEST_MSG_STORETIME {
        "timestamp"
    } else {
        "offset"
    };
    Ok(Some(
        RemotingCommand::response_to(req, response::SUCCESS).with_field(key, value.to_string()),
    ))
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
