//! The dispatch table: request code -> handler, and the one place handler errors become
//! responses. Runs on the shard that accepted the connection.

use std::rc::Rc;

use crate::net::{Connection, Handler};
use crate::remoting::code::{request, response};
use crate::remoting::header::{self, FieldValue};
use crate::remoting::RemotingCommand;

use super::handlers::{admin, consumer, pull, query, send, send_back};
use super::{BrokerError, BrokerShard};

/// The broker's `net::Handler`: one per shard.
#[derive(Debug)]
pub struct BrokerService {
    pub shard: Rc<BrokerShard>,
}

pub type HandlerResult = Result<Option<RemotingCommand>, BrokerError>;

impl Handler for BrokerService {
    async fn handle(
        self: Rc<Self>,
        req: RemotingCommand,
        conn: Rc<Connection>,
    ) -> Option<RemotingCommand> {
        let shard = &self.shard;
        shard.requests.set(shard.requests.get().wrapping_add(1));
        shard
            .conns
            .borrow_mut()
            .entry(conn.info().id)
            .or_insert_with(|| Rc::downgrade(&conn));
        let vip = conn.info().local.port() == shard.settings.vip_port;
        let result = match req.code {
            request::SEND_MESSAGE | request::SEND_MESSAGE_V2 | request::SEND_BATCH_MESSAGE => {
                send::handle(shard, &req, &conn).await
            }
            request::PULL_MESSAGE | request::LITE_PULL_MESSAGE if !vip => {
                pull::handle(shard, &req).await
            }
            request::CONSUMER_SEND_MSG_BACK => send_back::handle(shard, &req).await,
            request::HEART_BEAT => consumer::heartbeat(shard, &req, &conn).await,
            request::UNREGISTER_CLIENT => consumer::unregister(shard, &req).await,
            request::GET_CONSUMER_LIST_BY_GROUP => consumer::consumer_list(shard, &req).await,
            request::QUERY_CONSUMER_OFFSET => consumer::query_offset(shard, &req).await,
            request::UPDATE_CONSUMER_OFFSET => consumer::update_offset(shard, &req).await,
            request::GET_MAX_OFFSET
            | request::GET_MIN_OFFSET
            | request::GET_EARLIEST_MSG_STORETIME
            | request::SEARCH_OFFSET_BY_TIMESTAMP => consumer::queue_info(shard, &req).await,
            request::UPDATE_AND_CREATE_TOPIC => admin::create_topic(shard, &req).await,
            request::DELETE_TOPIC_IN_BROKER => admin::delete_topic(shard, &req).await,
            request::GET_ALL_TOPIC_CONFIG => admin::all_topic_config(shard, &req),
            request::GET_BROKER_RUNTIME_INFO => admin::runtime_info(shard, &req).await,
            request::GET_BROKER_CONFIG => admin::broker_config(shard, &req),
            request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => admin::create_group(shard, &req).await,
            request::GET_TOPIC_STATS_INFO => admin::topic_stats(shard, &req).await,
            request::QUERY_MESSAGE => query::query_message(shard, &req).await,
            request::VIEW_MESSAGE_BY_ID => query::view_message(shard, &req).await,
            request::GET_ALL_CONSUMER_OFFSET => {
                crate::ha::meta::all_consumer_offsets(shard, &req).await
            }
            request::GET_ALL_DELAY_OFFSET => crate::ha::meta::all_delay_offsets(shard, &req).await,
            request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => {
                crate::ha::meta::all_groups(shard, &req).await
            }
            _ => Ok(Some(not_supported(&req))),
        };
        match result {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(code = req.code, error = %e, "request failed");
                Some(e.into_response(&req))
            }
        }
    }

    fn closed(self: Rc<Self>, conn: &Connection) {
        let id = conn.info().id;
        self.shard.conns.borrow_mut().remove(&id);
        let shard = self.shard.clone();
        glommio::spawn_local(async move {
            let _ = shard
                .on_control(move |_, cp| {
                    cp.clients.connection_closed(id);
                })
                .await;
        })
        .detach();
    }
}

/// Upstream's answer to an unknown code (spec/remoting.md §4).
pub fn not_supported(req: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(req, response::REQUEST_CODE_NOT_SUPPORTED)
        .with_remark(format!(" request type {} not supported", req.code))
}

/// A required header field, parsed by the codec's header rules. The remark matches
/// upstream's decoder exception (`the custom field <key> is null`).
pub fn req_field<T: FieldValue>(
    req: &RemotingCommand,
    key: &'static str,
) -> Result<T, BrokerError> {
    header::req(header::fields_of(req), key).map_err(|e| BrokerError::Header(e.to_string()))
}

/// An optional header field; a value that does not parse counts as absent (upstream logs it).
pub fn opt_field<T: FieldValue>(req: &RemotingCommand, key: &'static str) -> Option<T> {
    header::opt(header::fields_of(req), key).ok().flatten()
}
