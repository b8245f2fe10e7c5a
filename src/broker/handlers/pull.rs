//! PULL_MESSAGE (11) and LITE_PULL_MESSAGE (361) with long polling: spec/remoting.md §8.4.
//!
//! The accepting shard resolves the subscription (from the request, or from the client
//! registry on shard 0), then runs the read on the queue's owner shard. When nothing is there
//! and the client allows suspension, the owner parks the pull until a message for that queue
//! is dispatched or the suspend time ends, then reads once more. The response suggests the
//! broker for the next pull (`suggestWhichBrokerId`, rule in broker/suggest.rs).

use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::channel::oneshot;

use crate::broker::clients::Subscription;
use crate::broker::processor::{opt_field, req_field, HandlerResult};
use crate::broker::suggest::{GroupIds, SuggestRule};
use crate::broker::{BrokerError, BrokerShard};
use crate::constants::{PULL_MAX_BYTES, PULL_MAX_MESSAGES, PULL_SUSPEND_MAX_MS};
use crate::remoting::code::response;
use crate::remoting::RemotingCommand;
use crate::store::{GetResult, GetStatus};

const FLAG_COMMIT_OFFSET: i32 = 0x1;
const FLAG_SUSPEND: i32 = 0x2;
const FLAG_SUBSCRIPTION: i32 = 0x4;

#[derive(Debug)]
struct PullHeader {
    group: String,
    topic: String,
    queue_id: u32,
    queue_offset: u64,
    max_msg_nums: u32,
    sys_flag: i32,
    commit_offset: i64,
    suspend_ms: u64,
    subscription: Option<String>,
    sub_version: i64,
}

impl PullHeader {
    fn parse(req: &RemotingCommand) -> Result<Self, BrokerError> {
        let queue_offset: i64 = req_field(req, "queueOffset")?;
        let queue_id: i32 = req_field(req, "queueId")?;
        Ok(Self {
            group: req_field(req, "consumerGroup")?,
            topic: req_field(req, "topic")?,
            queue_id: u32::try_from(queue_id)
                .map_err(|_| BrokerError::System(format!("queueId[{queue_id}] is illegal")))?,
            queue_offset: u64::try_from(queue_offset).unwrap_or(0),
            max_msg_nums: req_field::<i32>(req, "maxMsgNums")?
                .clamp(1, i32::MAX)
                .unsigned_abs(),
            sys_flag: req_field(req, "sysFlag")?,
            commit_offset: opt_field(req, "commitOffset").unwrap_or(-1),
            suspend_ms: opt_field::<i64>(req, "suspendTimeoutMillis")
                .unwrap_or(0)
                .max(0)
                .unsigned_abs(),
            subscription: req.field("subscription").map(str::to_string),
            sub_version: opt_field(req, "subVersion").unwrap_or(0),
        })
    }
}

pub async fn handle(shard: &Rc<BrokerShard>, req: &RemotingCommand) -> HandlerResult {
    let h = PullHeader::parse(req)?;
    let topic = shard
        .topic_snapshot()
        .get(&h.topic)
        .cloned()
        .ok_or_else(|| BrokerError::TopicNotExist(h.topic.clone()))?;
    if !topic.is_readable() {
        return Err(BrokerError::NoPermission(format!(
            "the topic[{}] pulling message is forbidden",
            h.topic
        )));
    }
    if h.queue_id >= topic.read_queue_nums {
        return Err(BrokerError::System(format!(
            "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}] consumer:[{}]",
            h.queue_id, h.topic, topic.read_queue_nums, h.group
        )));
    }
    let rule = SuggestRule {
        slave_read_enable: shard.settings.slave_read_enable,
        in_memory_max_bytes: shard.settings.in_memory_max_bytes,
    };
    let (subscription, group_ids) = resolve_subscription(shard, &h, rule.needs_group()).await?;
    if h.sys_flag & FLAG_COMMIT_OFFSET != 0
        && h.commit_offset >= 0
        && !shard.settings.role.is_slave()
    {
        let (g, t, q, o) = (
            h.group.clone(),
            h.topic.clone(),
            h.queue_id,
            h.commit_offset.unsigned_abs(),
        );
        // The commit need not finish before the read: queue it on shard 0 and go on. Jobs from
        // one shard run in order there, so commits of consecutive pulls do not reorder.
        shard
            .mesh
            .post_to(0, move |s| {
                Box::pin(async move {
                    if let Some(cp) = &s.control {
                        cp.borrow_mut().offsets.commit(&g, &t, q, o);
                    }
                })
            })
            .await?;
    }
    let suspend_ms = if h.sys_flag & FLAG_SUSPEND == 0 {
        0
    } else if shard.settings.long_polling {
        h.suspend_ms.min(PULL_SUSPEND_MAX_MS)
    } else {
        shard.settings.short_polling_ms.min(PULL_SUSPEND_MAX_MS)
    };
    let (topic_name, queue_id, offset, max) =
        (h.topic.clone(), h.queue_id, h.queue_offset, h.max_msg_nums);
    let owner = shard.owner_of(&h.topic, h.queue_id);
    let result = shard
        .on_shard(owner, move |s| {
            Box::pin(async move {
                read_or_park(
                    &s,
                    &topic_name,
                    queue_id,
                    offset,
                    max,
                    &subscription,
                    suspend_ms,
                )
                .await
            })
        })
        .await??;
    let slave = shard.settings.role.is_slave();
    let answer = answer_for(&result, h.queue_offset, slave);
    let group_ids = match group_ids {
        Some(ids) => ids,
        // Rare (a slave asked beyond its data): only then is the group needed without
        // slaveReadEnable.
        None if answer.retried_on_slave => group_ids_of(shard, &h.group).await?,
        None => GroupIds::default(),
    };
    let suggest = rule.suggest(result.behind_bytes, group_ids, answer.retried_on_slave);
    tracing::debug!(
        group = %h.group, topic = %h.topic, queue = h.queue_id, offset = h.queue_offset,
        code = answer.code, suggest, behind = ?result.behind_bytes, "pull answered"
    );
    Ok(Some(response_for(req, result, answer, suggest)))
}

/// The group's broker ids, from shard 0 (auto-creating the group as the pull's other lookups
/// do); defaults if the group is unknown.
async fn group_ids_of(shard: &Rc<BrokerShard>, group: &str) -> Result<GroupIds, BrokerError> {
    let g = group.to_string();
    Ok(shard
        .on_control(move |_, cp| cp.groups.get_or_create(&g).as_ref().map(GroupIds::from))
        .await?
        .unwrap_or_default())
}

/// The subscription to filter with, and the group's broker ids when shard 0 was asked anyway
/// or `want_group` (slaveReadEnable) asks for them: the inline-subscription path of a broker
/// that auto-creates groups makes no hop to shard 0 otherwise.
async fn resolve_subscription(
    shard: &Rc<BrokerShard>,
    h: &PullHeader,
    want_group: bool,
) -> Result<(Subscription, Option<GroupIds>), BrokerError> {
    if h.sys_flag & FLAG_SUBSCRIPTION != 0 {
        let expr = h.subscription.clone().unwrap_or_else(|| "*".to_string());
        let ids = if !shard.settings.auto_create_group || want_group {
            Some(ensure_group(shard, &h.group).await?)
        } else {
            None
        };
        return Ok((
            Subscription::from_expression(&h.topic, &expr, h.sub_version),
            ids,
        ));
    }
    let (g, t) = (h.group.clone(), h.topic.clone());
    let found = shard
        .on_control(move |_, cp| {
            let ids = cp.groups.get_or_create(&g).as_ref().map(GroupIds::from);
            (ids, cp.clients.subscription(&g, &t).cloned())
        })
        .await?;
    match found {
        (None, _) => Err(BrokerError::SubscriptionGroupNotExist(h.group.clone())),
        (Some(_), None) => Err(BrokerError::SubscriptionNotExist {
            group: h.group.clone(),
            topic: h.topic.clone(),
        }),
        (Some(ids), Some(s)) => Ok((s, Some(ids))),
    }
}

async fn ensure_group(shard: &Rc<BrokerShard>, group: &str) -> Result<GroupIds, BrokerError> {
    let g = group.to_string();
    shard
        .on_control(move |_, cp| cp.groups.get_or_create(&g).as_ref().map(GroupIds::from))
        .await?
        .ok_or_else(|| BrokerError::SubscriptionGroupNotExist(group.to_string()))
}

/// Runs on the owner shard: read, and if there is nothing yet, park until data or timeout.
async fn read_or_park(
    s: &Rc<BrokerShard>,
    topic: &str,
    queue_id: u32,
    offset: u64,
    max: u32,
    sub: &Subscription,
    suspend_ms: u64,
) -> Result<GetResult, BrokerError> {
    let max = max.min(PULL_MAX_MESSAGES);
    let filter = |code: i64| sub.matches(code);
    let first = s
        .store
        .get_messages(topic, queue_id, offset, max, PULL_MAX_BYTES, &filter)
        .await?;
    if suspend_ms == 0 || !is_not_found(&first, offset) {
        return Ok(first);
    }
    let (tx, rx) = oneshot::channel();
    {
        let mut waiters = s.pull_waiters.borrow_mut();
        let parked = waiters.entry((topic.to_string(), queue_id)).or_default();
        // Pulls that timed out dropped their receivers; forget them so an idle queue's list
        // stays as long as the number of pulls actually waiting.
        parked.retain(|w| !w.is_canceled());
        parked.push(tx);
    }
    // Data may have landed between the read and the registration.
    if s.store.max_offset(topic, queue_id) <= offset {
        let _ = glommio::timer::timeout(Duration::from_millis(suspend_ms), async {
            let _ = rx.await;
            Ok(())
        })
        .await;
    }
    Ok(s.store
        .get_messages(topic, queue_id, offset, max, PULL_MAX_BYTES, &filter)
        .await?)
}

fn is_not_found(r: &GetResult, requested: u64) -> bool {
    match r.status {
        GetStatus::OffsetOverflowOne | GetStatus::OffsetFoundNull => true,
        GetStatus::NoMessageInQueue => requested == 0,
        _ => false,
    }
}

/// Response code and `nextBeginOffset` of a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Answer {
    code: i32,
    next: u64,
    /// A slave answered PULL_RETRY_IMMEDIATELY where a master moves the offset.
    retried_on_slave: bool,
}

/// Maps a store result to the response code (spec/remoting.md §8.4 table).
/// On a slave (`offsetCheckInSlave=false`, spec/ha.md §7) an offset the slave cannot serve
/// yet is never "moved": the consumer retries instead of resetting its offset.
fn answer_for(r: &GetResult, requested: u64, slave: bool) -> Answer {
    let (code, next) = match r.status {
        GetStatus::NoMessageInQueue
        | GetStatus::OffsetTooSmall
        | GetStatus::OffsetOverflowBadly
            if slave && requested != 0 =>
        {
            return Answer {
                code: response::PULL_RETRY_IMMEDIATELY,
                next: requested,
                retried_on_slave: true,
            };
        }
        GetStatus::Found => (response::SUCCESS, r.next_begin_offset),
        GetStatus::NoMatchedMessage => (response::PULL_RETRY_IMMEDIATELY, r.next_begin_offset),
        GetStatus::NoMessageInQueue if requested != 0 => (response::PULL_OFFSET_MOVED, 0),
        GetStatus::NoMessageInQueue => (response::PULL_NOT_FOUND, 0),
        GetStatus::OffsetTooSmall | GetStatus::OffsetOverflowBadly => {
            (response::PULL_OFFSET_MOVED, r.next_begin_offset)
        }
        GetStatus::OffsetOverflowOne | GetStatus::OffsetFoundNull => {
            (response::PULL_NOT_FOUND, r.next_begin_offset)
        }
    };
    Answer {
        code,
        next,
        retried_on_slave: false,
    }
}

fn response_for(
    req: &RemotingCommand,
    r: GetResult,
    Answer { code, next, .. }: Answer,
    suggest: i64,
) -> RemotingCommand {
    let body: Bytes = if code == response::SUCCESS {
        let mut buf = BytesMut::with_capacity(r.records.iter().map(Bytes::len).sum());
        for rec in &r.records {
            buf.extend_from_slice(rec);
        }
        buf.freeze()
    } else {
        Bytes::new()
    };
    RemotingCommand::response_to(req, code)
        .with_remark(r.status.as_str())
        .with_field("suggestWhichBrokerId", suggest.to_string())
        .with_field("nextBeginOffset", next.to_string())
        .with_field("minOffset", r.min_offset.to_string())
        .with_field("maxOffset", r.max_offset.to_string())
        .with_body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(status: GetStatus, next: u64) -> GetResult {
        GetResult {
            status,
            next_begin_offset: next,
            min_offset: 0,
            max_offset: 10,
            records: Vec::new(),
            behind_bytes: None,
        }
    }

    #[test]
    fn a_slave_retries_where_a_master_moves_the_offset() {
        for status in [
            GetStatus::NoMessageInQueue,
            GetStatus::OffsetTooSmall,
            GetStatus::OffsetOverflowBadly,
        ] {
            let r = result(status, 10);
            let on_slave = answer_for(&r, 12, true);
            assert_eq!(
                on_slave,
                Answer {
                    code: response::PULL_RETRY_IMMEDIATELY,
                    next: 12,
                    retried_on_slave: true
                },
                "{status:?}"
            );
            let on_master = answer_for(&r, 12, false);
            assert_eq!(on_master.code, response::PULL_OFFSET_MOVED, "{status:?}");
            assert!(!on_master.retried_on_slave);
        }
        // A slave serves what it has, as a master does.
        let found = answer_for(&result(GetStatus::Found, 5), 3, true);
        assert_eq!(
            (found.code, found.next, found.retried_on_slave),
            (response::SUCCESS, 5, false)
        );
        let end = answer_for(&result(GetStatus::OffsetOverflowOne, 10), 10, true);
        assert_eq!(
            (end.code, end.retried_on_slave),
            (response::PULL_NOT_FOUND, false)
        );
    }

    #[test]
    fn the_response_carries_the_suggestion() {
        let req = RemotingCommand::request(crate::remoting::code::request::PULL_MESSAGE, 0);
        let r = result(GetStatus::OffsetOverflowOne, 10);
        let a = answer_for(&r, 10, false);
        let resp = response_for(&req, r, a, 1);
        assert_eq!(resp.field("suggestWhichBrokerId"), Some("1"));
        assert_eq!(resp.field("nextBeginOffset"), Some("10"));
        assert_eq!(resp.remark.as_deref(), Some("OFFSET_OVERFLOW_ONE"));
    }
}
