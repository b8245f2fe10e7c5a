//! One function per nameserver request code (spec/remoting.md §7). Each reads its header
//! fields, calls the route table or KV store, and builds the response the Java nameserver
//! builds: same opaque and serialize type as the request, `extFields` present (`{}` at least)
//! exactly for the requests whose Java response carries a response header (103, 101, 205, 322)
//! and absent otherwise.

use crate::remoting::code::{request, response};
use crate::remoting::RemotingCommand;

use super::kv_config::NAMESPACE_ORDER_TOPIC_CONFIG;
use super::register_body::{decode_data_version, decode_register_body};
use super::route_json::{
    encode_cluster_info, encode_data_version, encode_kv_table, encode_topic_list,
    encode_topic_route, JsonStyle,
};
use super::route_table::BrokerIdentity;
use super::{ConnId, NameServer, NamesrvError};

/// Callers at or above this version (4.9.4) get standard JSON route data.
pub const VERSION_STANDARD_JSON: i32 = 401;

const FAQ_SUFFIX: &str = "\nSee http://rocketmq.apache.org/docs/faq/ for further details.";

pub(super) fn dispatch(
    ns: &mut NameServer,
    req: &RemotingCommand,
    conn: ConnId,
    now_ms: u64,
) -> Result<RemotingCommand, NamesrvError> {
    match req.code {
        request::REGISTER_BROKER => register_broker(ns, req, conn, now_ms),
        request::QUERY_DATA_VERSION => query_data_version(ns, req, now_ms),
        request::UNREGISTER_BROKER => unregister_broker(ns, req),
        request::GET_ROUTEINFO_BY_TOPIC => route_by_topic(ns, req),
        request::GET_BROKER_CLUSTER_INFO => Ok(success(req).with_body(encode_cluster_info(
            ns.routes.brokers(),
            ns.routes.clusters(),
        ))),
        request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => {
            Ok(success(req).with_body(encode_topic_list(ns.routes.topic_names())))
        }
        request::DELETE_TOPIC_IN_NAMESRV => {
            let topic = required(req, "topic")?;
            ns.routes.delete_topic(topic, req.field("clusterName"));
            Ok(success(req))
        }
        request::GET_TOPICS_BY_CLUSTER => {
            let cluster = required(req, "cluster")?;
            let topics = ns.routes.topics_by_cluster(cluster);
            Ok(success(req).with_body(encode_topic_list(topics)))
        }
        request::WIPE_WRITE_PERM_OF_BROKER => {
            let count = ns.routes.wipe_write_perm(required(req, "brokerName")?);
            Ok(success(req).with_field("wipeTopicCount", count.to_string()))
        }
        request::PUT_KV_CONFIG => {
            let namespace = required(req, "namespace")?;
            let key = required(req, "key")?;
            let value = required(req, "value")?;
            ns.kv.put(namespace, key, value);
            ns.kv_dirty = true;
            Ok(success(req))
        }
        request::GET_KV_CONFIG => get_kv_config(ns, req),
        request::DELETE_KV_CONFIG => {
            let namespace = required(req, "namespace")?;
            let key = required(req, "key")?;
            if ns.kv.delete(namespace, key) {
                ns.kv_dirty = true;
            }
            Ok(success(req))
        }
        request::GET_KVLIST_BY_NAMESPACE => {
            let namespace = required(req, "namespace")?;
            Ok(match ns.kv.namespace(namespace) {
                Some(table) => success(req).with_body(encode_kv_table(table)),
                None => RemotingCommand::response_to(req, response::QUERY_NOT_FOUND)
                    .with_remark(format!("No config item, Namespace: {namespace}")),
            })
        }
        request::GET_NAMESRV_CONFIG => Ok(success(req).with_body(config_text(ns))),
        code => Ok(
            RemotingCommand::response_to(req, response::REQUEST_CODE_NOT_SUPPORTED)
                .with_remark(format!(" request type {code} not supported")),
        ),
    }
}

fn success(req: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(req, response::SUCCESS)
}

fn required<'a>(req: &'a RemotingCommand, field: &'static str) -> Result<&'a str, NamesrvError> {
    req.field(field).ok_or(NamesrvError::MissingField {
        code: req.code,
        field,
    })
}

/// The four header fields naming a broker (REGISTER/UNREGISTER_BROKER, QUERY_DATA_VERSION).
fn identity(req: &RemotingCommand) -> Result<BrokerIdentity<'_>, NamesrvError> {
    let id_text = required(req, "brokerId")?;
    let broker_id = id_text
        .trim()
        .parse::<i64>()
        .map_err(|_| NamesrvError::InvalidField {
            code: req.code,
            field: "brokerId",
            value: id_text.to_string(),
            kind: "long",
        })?;
    Ok(BrokerIdentity {
        cluster_name: required(req, "clusterName")?,
        broker_addr: required(req, "brokerAddr")?,
        broker_name: required(req, "brokerName")?,
        broker_id,
    })
}

/// Java's `Boolean.parseBoolean`: "true" in any case, everything else false.
fn flag(req: &RemotingCommand, field: &str) -> bool {
    req.field(field)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn register_broker(
    ns: &mut NameServer,
    req: &RemotingCommand,
    conn: ConnId,
    now_ms: u64,
) -> Result<RemotingCommand, NamesrvError> {
    let who = identity(req)?;
    let ha_server_addr = required(req, "haServerAddr")?;
    // An unparsable bodyCrc32 is left at 0 (= not checked), as Java's header decoder does.
    let expected = req
        .field("bodyCrc32")
        .and_then(|v| v.trim().parse::<i32>().ok())
        .unwrap_or(0);
    if expected != 0 {
        let computed = (crc32fast::hash(&req.body) & 0x7FFF_FFFF) as i32;
        if computed != expected {
            return Err(NamesrvError::BodyCrc {
                expected,
                computed,
                len: req.body.len(),
            });
        }
    }
    let wrapper = decode_register_body(&req.body, flag(req, "compressed"), req.version)?;
    let known = ns.routes.data_version_of(who.broker_addr).is_some();
    let result = ns
        .routes
        .register(who, ha_server_addr, &wrapper, conn, now_ms);
    if !known {
        tracing::info!(
            broker = who.broker_addr,
            name = who.broker_name,
            id = who.broker_id,
            cluster = who.cluster_name,
            "new broker registered"
        );
    }

    let mut resp = success(req).with_empty_fields();
    if let Some(ha) = result.ha_server_addr {
        resp.set_field("haServerAddr", ha);
    }
    if let Some(master) = result.master_addr {
        resp.set_field("masterAddr", master);
    }
    if let Some(table) = ns.kv.namespace(NAMESPACE_ORDER_TOPIC_CONFIG) {
        resp.body = encode_kv_table(table).into();
    }
    Ok(resp)
}

fn query_data_version(
    ns: &mut NameServer,
    req: &RemotingCommand,
    now_ms: u64,
) -> Result<RemotingCommand, NamesrvError> {
    let who = identity(req)?;
    let version = decode_data_version(&req.body)?;
    let changed = ns.routes.is_changed(who.broker_addr, &version);
    if !changed {
        ns.routes.touch(who.broker_addr, now_ms);
    }
    let mut resp = success(req).with_field("changed", changed.to_string());
    if let Some(recorded) = ns.routes.data_version_of(who.broker_addr) {
        resp.body = encode_data_version(&recorded).into();
    }
    Ok(resp)
}

fn unregister_broker(
    ns: &mut NameServer,
    req: &RemotingCommand,
) -> Result<RemotingCommand, NamesrvError> {
    let who = identity(req)?;
    ns.routes.unregister(who);
    tracing::info!(
        broker = who.broker_addr,
        name = who.broker_name,
        id = who.broker_id,
        "broker unregistered"
    );
    Ok(success(req))
}

fn route_by_topic(ns: &NameServer, req: &RemotingCommand) -> Result<RemotingCommand, NamesrvError> {
    let topic = required(req, "topic")?;
    let Some(mut route) = ns.routes.route(topic) else {
        return Ok(
            RemotingCommand::response_to(req, response::TOPIC_NOT_EXIST).with_remark(format!(
                "No topic route info in name server for the topic: {topic}{FAQ_SUFFIX}"
            )),
        );
    };
    if ns.settings.order_message_enable {
        route.order_topic_conf = ns
            .kv
            .get(NAMESPACE_ORDER_TOPIC_CONFIG, topic)
            .map(str::to_string);
    }
    let style = if req.version >= VERSION_STANDARD_JSON || flag(req, "acceptStandardJsonOnly") {
        JsonStyle::Standard
    } else {
        JsonStyle::Fastjson
    };
    Ok(success(req).with_body(encode_topic_route(&route, style)))
}

fn get_kv_config(ns: &NameServer, req: &RemotingCommand) -> Result<RemotingCommand, NamesrvError> {
    let namespace = required(req, "namespace")?;
    let key = required(req, "key")?;
    Ok(match ns.kv.get(namespace, key) {
        Some(value) => success(req).with_field("value", value),
        None => RemotingCommand::response_to(req, response::QUERY_NOT_FOUND)
            .with_empty_fields()
            .with_remark(format!("No config item, Namespace: {namespace} Key: {key}")),
    })
}

/// GET_NAMESRV_CONFIG body: one `key=value\n` line per setting.
fn config_text(ns: &NameServer) -> String {
    let s = &ns.settings;
    let mut text = format!(
        "kvConfigPath={}\norderMessageEnable={}\n",
        s.kv_config_path.display(),
        s.order_message_enable
    );
    for (k, v) in &s.extra_config {
        if k != "kvConfigPath" && k != "orderMessageEnable" {
            text.push_str(k);
            text.push('=');
            text.push_str(v);
            text.push('\n');
        }
    }
    text
}
