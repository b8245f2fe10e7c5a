//! Metadata sync (spec/ha.md §6): a slave pulls, every 10 s (first 3 s after start), the
//! master's topics (21 GET_ALL_TOPIC_CONFIG, on the master's VIP port as a 4.3 slave does),
//! consumer offsets (43), delay offsets (45) and subscription groups (201), and the master
//! side of those requests. Runs on shard 0 (the control plane's owner).

use std::rc::Rc;
use std::time::Duration;

use crate::broker::groups::SubscriptionGroups;
use crate::broker::offsets::ConsumerOffsets;
use crate::broker::processor::HandlerResult;
use crate::broker::topics::TopicTable;
use crate::broker::{register, BrokerError, BrokerShard};
use crate::net::RemotingClient;
use crate::remoting::code::{request, response};
use crate::remoting::{fastjson, RemotingCommand};

/// First sync after start, then the period (upstream's values).
pub const FIRST_SYNC: Duration = Duration::from_secs(3);
pub const SYNC_PERIOD: Duration = Duration::from_secs(10);
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// GET_ALL_CONSUMER_OFFSET (43): the offset table as `consumerOffset.json` holds it.
pub async fn all_consumer_offsets(shard: &Rc<BrokerShard>, req: &RemotingCommand) -> HandlerResult {
    let json = shard.on_control(|_, cp| cp.offsets.to_json()).await?;
    Ok(Some(
        RemotingCommand::response_to(req, response::SUCCESS).with_body(json),
    ))
}

/// GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201): groups and their data version.
pub async fn all_groups(shard: &Rc<BrokerShard>, req: &RemotingCommand) -> HandlerResult {
    let json = shard.on_control(|_, cp| cp.groups.to_json()).await?;
    Ok(Some(
        RemotingCommand::response_to(req, response::SUCCESS).with_body(json),
    ))
}

/// GET_ALL_DELAY_OFFSET (45): `delayOffset.json` as stored (an empty table when there is none:
/// shardmq has no delay service yet, issue #4).
pub async fn all_delay_offsets(shard: &Rc<BrokerShard>, req: &RemotingCommand) -> HandlerResult {
    let path = shard.settings.config_dir.join("delayOffset.json");
    let body = match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => s,
        _ => "{\"offsetTable\":{}}".to_string(),
    };
    Ok(Some(
        RemotingCommand::response_to(req, response::SUCCESS).with_body(body),
    ))
}

/// The slave's sync loop (shard 0 of a slave).
pub async fn sync_periodically(shard: Rc<BrokerShard>) {
    glommio::timer::sleep(FIRST_SYNC).await;
    let mut clients: Option<(String, RemotingClient, RemotingClient)> = None;
    loop {
        if shard.stopping.get() {
            return;
        }
        let master = shard.ha.master.borrow().master.clone();
        if let Some(master) = master {
            if master != shard.settings.broker_addr() {
                let fresh = clients.as_ref().is_none_or(|(a, _, _)| *a != master);
                if fresh {
                    clients = vip_of(&master).map(|vip| {
                        (
                            master.clone(),
                            RemotingClient::new(master.clone(), CALL_TIMEOUT),
                            RemotingClient::new(vip, CALL_TIMEOUT),
                        )
                    });
                }
                if let Some((_, main, vip)) = &clients {
                    if let Err(e) = sync_once(&shard, main, vip).await {
                        tracing::debug!(master = %master, "metadata sync: {e}");
                    }
                }
            }
        }
        glommio::timer::sleep(SYNC_PERIOD).await;
    }
}

/// `host:port` -> `host:port-2`.
fn vip_of(addr: &str) -> Option<String> {
    let (host, port) = addr.rsplit_once(':')?;
    let p: u16 = port.parse().ok()?;
    Some(format!("{host}:{}", p.checked_sub(2)?))
}

async fn call(client: &RemotingClient, code: i32) -> Result<serde_json::Value, BrokerError> {
    let resp = client
        .call(RemotingCommand::request(code, 0), CALL_TIMEOUT)
        .await
        .map_err(|e| BrokerError::System(format!("request {code} to {}: {e}", client.addr())))?;
    if resp.code != response::SUCCESS {
        return Err(BrokerError::System(format!(
            "request {code} to {}: code {} {}",
            client.addr(),
            resp.code,
            resp.remark.as_deref().unwrap_or("")
        )));
    }
    fastjson::parse_lenient(&resp.body).map_err(|e| {
        BrokerError::System(format!(
            "request {code} to {}: bad body: {e}",
            client.addr()
        ))
    })
}

/// One round: topics (if their version changed), offsets, delay offsets, groups.
pub async fn sync_once(
    shard: &Rc<BrokerShard>,
    main: &RemotingClient,
    vip: &RemotingClient,
) -> Result<(), BrokerError> {
    // Topics (4.3 asks the VIP port; fall back to the main one).
    let topics = match call(vip, request::GET_ALL_TOPIC_CONFIG).await {
        Ok(v) => v,
        Err(_) => call(main, request::GET_ALL_TOPIC_CONFIG).await?,
    };
    let table: TopicTable = serde_json::from_value(topics)
        .map_err(|e| BrokerError::System(format!("master topic table: {e}")))?;
    let changed = shard
        .on_control(move |s, cp| {
            if cp.topics.snapshot().data_version == table.data_version {
                return false;
            }
            let t = cp.topics.replace(table);
            register::after_topic_change(s, t);
            true
        })
        .await?;
    if changed {
        tracing::info!("topic table taken from the master");
    }
    let offsets = call(main, request::GET_ALL_CONSUMER_OFFSET).await?;
    shard
        .on_control(move |_, cp| {
            cp.offsets = ConsumerOffsets::from_json(&offsets);
            cp.offsets.mark_dirty();
        })
        .await?;
    let delay = main
        .call(
            RemotingCommand::request(request::GET_ALL_DELAY_OFFSET, 0),
            CALL_TIMEOUT,
        )
        .await
        .map_err(|e| BrokerError::System(format!("request 45: {e}")))?;
    if delay.code == response::SUCCESS && !delay.body.is_empty() {
        let path = shard.settings.config_dir.join("delayOffset.json");
        crate::broker::persist::write_off_shard(
            path,
            String::from_utf8_lossy(&delay.body).into_owned(),
        )
        .await;
    }
    let groups = call(main, request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG).await?;
    shard
        .on_control(move |s, cp| {
            if cp.groups.data_version_json() != groups.get("dataVersion").cloned() {
                cp.groups = SubscriptionGroups::from_master(&groups, s.settings.auto_create_group);
            }
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::vip_of;

    #[test]
    fn vip_port_is_two_below() {
        assert_eq!(
            vip_of("127.0.0.57:10911").as_deref(),
            Some("127.0.0.57:10909")
        );
        assert_eq!(vip_of("h:1"), None);
    }
}
