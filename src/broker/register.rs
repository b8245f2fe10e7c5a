//! Registration with every nameserver in `namesrvAddr` (spec/remoting.md §7.1): at start,
//! every `registerNameServerPeriod`, oneway right after the topic table changes, and
//! UNREGISTER_BROKER at shutdown. Runs on shard 0, which also pushes each new topic table to
//! the other shards.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::broker::topics::TopicTable;
use crate::broker::BrokerShard;
use crate::remoting::code::{request, response};
use crate::remoting::RemotingCommand;

/// Broadcasts `table` to every shard and registers it with the nameservers (oneway).
/// Called on shard 0 from inside a control-plane closure, so it only spawns.
pub fn after_topic_change(shard: &Rc<BrokerShard>, table: Arc<TopicTable>) {
    *shard.topics.borrow_mut() = table.clone();
    let shard = shard.clone();
    glommio::spawn_local(async move {
        for target in 1..shard.mesh.shard_count() {
            let t = table.clone();
            let pushed = shard
                .mesh
                .post_to(target, move |s| {
                    Box::pin(async move {
                        *s.topics.borrow_mut() = t;
                    })
                })
                .await;
            if let Err(e) = pushed {
                tracing::error!(error = %e, "cannot push the topic table to shard {target}");
            }
        }
        register_all(&shard, &table, true).await;
    })
    .detach();
}

fn register_request(shard: &BrokerShard, table: &TopicTable) -> RemotingCommand {
    let s = &shard.settings;
    let body = serde_json::json!({
        "filterServerList": [],
        "topicConfigSerializeWrapper": table,
    })
    .to_string();
    let crc = crc32fast::hash(body.as_bytes()) & 0x7FFF_FFFF;
    RemotingCommand::request(request::REGISTER_BROKER, 0)
        .with_field("brokerAddr", s.broker_addr())
        .with_field("brokerId", s.broker_id.to_string())
        .with_field("brokerName", s.broker_name.clone())
        .with_field("clusterName", s.cluster.clone())
        .with_field("haServerAddr", s.ha_addr.clone())
        .with_field("compressed", "false")
        .with_field("bodyCrc32", crc.to_string())
        .with_body(body)
}

/// Registers with every nameserver; failures are logged and retried next period.
pub async fn register_all(shard: &Rc<BrokerShard>, table: &TopicTable, oneway: bool) {
    let timeout = Duration::from_millis(shard.settings.register_timeout_ms);
    for client in &shard.namesrv_clients {
        let req = register_request(shard, table);
        let result = if oneway {
            client.call_oneway(req).await.map(|()| None)
        } else {
            client.call(req, timeout).await.map(Some)
        };
        match result {
            Ok(Some(resp)) if resp.code == response::SUCCESS && s_is_slave(shard) => {
                crate::ha::on_register_answer(
                    shard,
                    resp.field("masterAddr"),
                    resp.field("haServerAddr"),
                );
                tracing::debug!(namesrv = client.addr(), "registered");
            }
            Ok(Some(resp)) if resp.code != response::SUCCESS => tracing::warn!(
                namesrv = client.addr(),
                code = resp.code,
                remark = resp.remark.as_deref().unwrap_or(""),
                "nameserver refused the registration"
            ),
            Ok(_) => tracing::debug!(namesrv = client.addr(), "registered"),
            Err(e) => tracing::warn!(namesrv = client.addr(), error = %e, "cannot register"),
        }
    }
}

fn s_is_slave(shard: &BrokerShard) -> bool {
    shard.settings.role.is_slave()
}

/// Periodic registration, forever (shard 0).
pub async fn register_periodically(shard: Rc<BrokerShard>) {
    let period = Duration::from_millis(shard.settings.register_period_ms.clamp(10_000, 60_000));
    loop {
        let table = shard.topic_snapshot();
        register_all(&shard, &table, false).await;
        glommio::timer::sleep(period).await;
    }
}

/// UNREGISTER_BROKER to every nameserver (clean shutdown).
pub async fn unregister_all(shard: &Rc<BrokerShard>) {
    let s = &shard.settings;
    for client in &shard.namesrv_clients {
        let req = RemotingCommand::request(request::UNREGISTER_BROKER, 0)
            .with_field("brokerAddr", s.broker_addr())
            .with_field("brokerId", s.broker_id.to_string())
            .with_field("brokerName", s.broker_name.clone())
            .with_field("clusterName", s.cluster.clone());
        if let Err(e) = client.call(req, Duration::from_secs(3)).await {
            tracing::warn!(namesrv = client.addr(), error = %e, "cannot unregister");
        }
    }
}
