//! QUERY_MESSAGE (12) and VIEW_MESSAGE_BY_ID (33) (spec/remoting.md §8.13/§8.14): message lookup
//! by key through every shard's index, and by (global) commit-log offset on its owner shard.
//! Both answer with stored records byte for byte (what upstream sends as a FileRegion).

use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use crate::broker::processor::{opt_field, req_field, HandlerResult};
use crate::broker::{BrokerError, BrokerShard};
use crate::remoting::code::response;
use crate::remoting::RemotingCommand;
use crate::store::index_format::{MAX_QUERY_RESULTS, UNIQUE_QUERY_MAX};
use crate::store::split_offset;

/// QUERY_MESSAGE: asks every shard's index, concatenates the records found (at most `maxNum`,
/// capped at upstream's 64; 32 for a unique-key query). The index fields are the newest over
/// all shards.
pub async fn query_message(shard: &Rc<BrokerShard>, req: &RemotingCommand) -> HandlerResult {
    let topic: String = req_field(req, "topic")?;
    let key: String = req_field(req, "key")?;
    let max_num: i32 = req_field(req, "maxNum")?;
    let begin: i64 = req_field(req, "beginTimestamp")?;
    let end: i64 = req_field(req, "endTimestamp")?;
    let unique = opt_field::<String>(req, "_UNIQUE_KEY_QUERY").is_some_and(|v| v == "true");
    let max = if unique {
        UNIQUE_QUERY_MAX
    } else {
        usize::try_from(max_num).unwrap_or(0)
    }
    .min(MAX_QUERY_RESULTS);
    let asks = (0..shard.mesh.shard_count()).map(|target| {
        let (t, k) = (topic.clone(), key.clone());
        shard.on_shard(target, move |s| {
            Box::pin(async move { s.store.query_message(&t, &k, max, begin, end).await })
        })
    });
    let mut body = BytesMut::new();
    let (mut found, mut last_ts, mut last_phy) = (0usize, 0i64, 0u64);
    for answer in futures::future::join_all(asks).await {
        let r = answer??;
        last_ts = last_ts.max(r.index_last_update_timestamp);
        last_phy = last_phy.max(r.index_last_update_phyoffset);
        for rec in r.records {
            if found < max {
                body.extend_from_slice(&rec);
                found += 1;
            }
        }
    }
    let resp = if found == 0 {
        RemotingCommand::response_to(req, response::QUERY_NOT_FOUND)
            .with_remark("can not find message, maybe time range not correct")
    } else {
        RemotingCommand::response_to(req, response::SUCCESS).with_body(body.freeze())
    };
    Ok(Some(
        resp.with_field("indexLastUpdateTimestamp", last_ts.to_string())
            .with_field("indexLastUpdatePhyoffset", last_phy.to_string()),
    ))
}

/// VIEW_MESSAGE_BY_ID: the record at a global commit-log offset, read on its shard.
pub async fn view_message(shard: &Rc<BrokerShard>, req: &RemotingCommand) -> HandlerResult {
    let offset: i64 = req_field(req, "offset")?;
    let not_found = || BrokerError::System(format!("can not find message by the offset, {offset}"));
    let global = u64::try_from(offset).map_err(|_| not_found())?;
    let owner = usize::from(split_offset(global).0 .0);
    if owner >= shard.mesh.shard_count() {
        return Err(not_found());
    }
    let record: Option<Bytes> = shard
        .on_shard(owner, move |s| {
            Box::pin(async move { s.store.lookup_record(global).await })
        })
        .await??;
    let record = record.ok_or_else(not_found)?;
    Ok(Some(
        RemotingCommand::response_to(req, response::SUCCESS).with_body(record),
    ))
}
