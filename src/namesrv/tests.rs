//! Request-level tests of [`NameServer`]: every handled code, through `handle`.

use std::io::Write;

use serde_json::Value;

use super::register_body::quote_bare_keys;
use super::*;
use crate::remoting::code::request;
use crate::remoting::command::{FLAG_ONEWAY, FLAG_RESPONSE};
use crate::remoting::SerializeType;

const MIN: u64 = 60_000;

fn ns() -> NameServer {
    NameServer::new(NamesrvSettings {
        kv_config_path: "/tmp/kv.json".into(),
        order_message_enable: false,
        extra_config: vec![("listenPort".into(), "9876".into())],
    })
}

fn req(code: i32, opaque: i32, fields: &[(&str, &str)]) -> RemotingCommand {
    let mut r = RemotingCommand::request(code, opaque);
    r.version = 275;
    for (k, v) in fields {
        r.set_field(*k, *v);
    }
    r
}

fn body_json(counter: i64, topics: &[(&str, i32)]) -> String {
    let table: Vec<String> = topics
        .iter()
        .map(|(t, q)| {
            format!(
                "\"{t}\":{{\"order\":false,\"perm\":6,\"readQueueNums\":{q},\
                 \"topicFilterType\":\"SINGLE_TAG\",\"topicName\":\"{t}\",\"topicSysFlag\":0,\
                 \"writeQueueNums\":{q}}}"
            )
        })
        .collect();
    format!(
        "{{\"filterServerList\":[],\"topicConfigSerializeWrapper\":{{\"dataVersion\":\
         {{\"counter\":{counter},\"timestamp\":1700000000000}},\"topicConfigTable\":{{{}}}}}}}",
        table.join(",")
    )
}

fn crc(body: &[u8]) -> String {
    (crc32fast::hash(body) & 0x7FFF_FFFF).to_string()
}

fn register(name: &str, addr: &str, id: i64, body: &[u8], compressed: bool) -> RemotingCommand {
    let id = id.to_string();
    let ha = format!("{addr}-ha");
    let crc = crc(body);
    let compressed = compressed.to_string();
    let mut r = req(
        request::REGISTER_BROKER,
        7,
        &[
            ("brokerId", &id),
            ("bodyCrc32", &crc),
            ("clusterName", "DefaultCluster"),
            ("brokerAddr", addr),
            ("haServerAddr", &ha),
            ("compressed", &compressed),
            ("brokerName", name),
        ],
    );
    r.body = body.to_vec().into();
    r
}

fn reg(ns: &mut NameServer, name: &str, addr: &str, id: i64, counter: i64, conn: u64, now: u64) {
    let body = body_json(counter, &[("T", 4), ("U", 2)]);
    let resp = ns
        .handle(
            &register(name, addr, id, body.as_bytes(), false),
            ConnId(conn),
            now,
        )
        .unwrap();
    assert_eq!(resp.code, response::SUCCESS, "{:?}", resp.remark);
}

fn route(ns: &mut NameServer, topic: &str, version: i32) -> RemotingCommand {
    let mut r = req(request::GET_ROUTEINFO_BY_TOPIC, 3, &[("topic", topic)]);
    r.version = version;
    ns.handle(&r, ConnId(99), 0).unwrap()
}

fn lenient(body: &[u8]) -> Value {
    serde_json::from_str(&quote_bare_keys(std::str::from_utf8(body).unwrap())).unwrap()
}

#[test]
fn register_then_route_in_both_key_styles() {
    let mut ns = ns();
    reg(&mut ns, "broker-a", "10.0.0.1:10911", 0, 1, 1, 0);

    let old = route(&mut ns, "T", 275);
    assert_eq!(old.code, response::SUCCESS);
    assert_eq!(old.opaque, 3);
    assert_eq!(old.flag, FLAG_RESPONSE);
    assert!(old.ext_fields.is_none());
    assert!(old.remark.is_none());
    let text = std::str::from_utf8(&old.body).unwrap();
    assert!(
        text.contains("\"brokerAddrs\":{0:\"10.0.0.1:10911\"}"),
        "{text}"
    );
    assert!(serde_json::from_slice::<Value>(&old.body).is_err());
    let v = lenient(&old.body);
    assert_eq!(v["queueDatas"][0]["writeQueueNums"], 4);
    assert_eq!(v["queueDatas"][0]["topicSynFlag"], 0);
    assert_eq!(v["queueDatas"][0]["topicSysFlag"], 0);
    assert_eq!(v["brokerDatas"][0]["enableActingMaster"], false);
    assert_eq!(v["filterServerTable"], serde_json::json!({}));
    assert!(v.get("orderTopicConf").is_none());

    let new = route(&mut ns, "T", 409);
    let v: Value = serde_json::from_slice(&new.body).unwrap();
    assert_eq!(v["brokerDatas"][0]["brokerAddrs"]["0"], "10.0.0.1:10911");
    assert_eq!(v, lenient(&old.body));

    let mut flagged = req(
        request::GET_ROUTEINFO_BY_TOPIC,
        4,
        &[("topic", "T"), ("acceptStandardJsonOnly", "true")],
    );
    flagged.serialize_type = SerializeType::RocketMq;
    let resp = ns.handle(&flagged, ConnId(9), 0).unwrap();
    assert_eq!(resp.serialize_type, SerializeType::RocketMq);
    assert!(serde_json::from_slice::<Value>(&resp.body).is_ok());
}

#[test]
fn topic_not_exist_remark_is_exact() {
    let mut ns = ns();
    let resp = route(&mut ns, "GoldenTopic", 275);
    assert_eq!(resp.code, response::TOPIC_NOT_EXIST);
    assert_eq!(
        resp.remark.as_deref(),
        Some(
            "No topic route info in name server for the topic: GoldenTopic\n\
             See http://rocketmq.apache.org/docs/faq/ for further details."
        )
    );
    assert!(resp.ext_fields.is_none());
    assert!(resp.body.is_empty());
}

#[test]
fn two_masters_with_slaves() {
    let mut ns = ns();
    reg(&mut ns, "broker-a", "a0:1", 0, 1, 1, 0);
    reg(&mut ns, "broker-a", "a1:1", 1, 1, 2, 0);
    reg(&mut ns, "broker-a", "a2:1", 2, 1, 3, 0);
    reg(&mut ns, "broker-b", "b0:1", 0, 1, 4, 0);
    reg(&mut ns, "broker-b", "b1:1", 1, 1, 5, 0);

    let v = lenient(&route(&mut ns, "T", 275).body);
    assert_eq!(v["queueDatas"].as_array().unwrap().len(), 2);
    let datas = v["brokerDatas"].as_array().unwrap();
    assert_eq!(datas.len(), 2);
    let a = datas
        .iter()
        .find(|d| d["brokerName"] == "broker-a")
        .unwrap();
    assert_eq!(
        a["brokerAddrs"],
        serde_json::json!({"0": "a0:1", "1": "a1:1", "2": "a2:1"})
    );

    let info = ns
        .handle(&req(request::GET_BROKER_CLUSTER_INFO, 1, &[]), ConnId(9), 0)
        .unwrap();
    let text = std::str::from_utf8(&info.body).unwrap();
    assert!(
        text.contains("{0:\"a0:1\",1:\"a1:1\",2:\"a2:1\"}"),
        "{text}"
    );
    let v = lenient(&info.body);
    assert_eq!(
        v["clusterAddrTable"]["DefaultCluster"],
        serde_json::json!(["broker-a", "broker-b"])
    );
    assert_eq!(v["brokerAddrTable"]["broker-b"]["brokerAddrs"]["1"], "b1:1");
}

#[test]
fn slave_registration_gets_master_addresses() {
    let mut ns = ns();
    // Slave first: no master yet, so `{}`.
    let body = body_json(0, &[]);
    let resp = ns
        .handle(
            &register("broker-a", "s:1", 1, body.as_bytes(), false),
            ConnId(2),
            0,
        )
        .unwrap();
    assert_eq!(resp.ext_fields, Some(crate::remoting::ExtFields::new()));
    reg(&mut ns, "broker-a", "m:1", 0, 1, 1, 0);
    let resp = ns
        .handle(
            &register("broker-a", "s:1", 1, body.as_bytes(), false),
            ConnId(2),
            0,
        )
        .unwrap();
    assert_eq!(resp.field("masterAddr"), Some("m:1"));
    assert_eq!(resp.field("haServerAddr"), Some("m:1-ha"));
    assert!(resp.body.is_empty());
}

#[test]
fn eviction_by_scan_and_by_connection_close() {
    let mut ns = ns();
    reg(&mut ns, "broker-a", "a:1", 0, 1, 1, 0);
    reg(&mut ns, "broker-b", "b:1", 0, 1, 2, MIN);
    assert!(ns.scan_expired(2 * MIN).is_empty());
    assert_eq!(ns.scan_expired(2 * MIN + 1), vec!["a:1".to_string()]);
    let v = lenient(&route(&mut ns, "T", 275).body);
    assert_eq!(v["brokerDatas"].as_array().unwrap().len(), 1);
    assert_eq!(v["queueDatas"].as_array().unwrap().len(), 1);

    ns.on_connection_closed(ConnId(7));
    assert_eq!(route(&mut ns, "T", 275).code, response::SUCCESS);
    ns.on_connection_closed(ConnId(2));
    assert_eq!(route(&mut ns, "T", 275).code, response::TOPIC_NOT_EXIST);
    assert!(ns.routes().clusters().is_empty());
}

#[test]
fn query_data_version_refreshes_liveness() {
    let mut ns = ns();
    reg(&mut ns, "broker-a", "a:1", 0, 1, 1, 0);
    let fields = [
        ("brokerId", "0"),
        ("clusterName", "DefaultCluster"),
        ("brokerAddr", "a:1"),
        ("brokerName", "broker-a"),
    ];
    let mut q = req(request::QUERY_DATA_VERSION, 5, &fields);
    q.body = "{\"counter\":1,\"timestamp\":1700000000000}"
        .as_bytes()
        .into();
    let resp = ns.handle(&q, ConnId(1), 2 * MIN).unwrap();
    assert_eq!(resp.field("changed"), Some("false"));
    assert_eq!(
        std::str::from_utf8(&resp.body).unwrap(),
        "{\"counter\":1,\"timestamp\":1700000000000}"
    );
    assert!(ns.scan_expired(2 * MIN + 1).is_empty());

    q.body = "{\"counter\":2,\"timestamp\":1700000000000}"
        .as_bytes()
        .into();
    let resp = ns.handle(&q, ConnId(1), 4 * MIN).unwrap();
    assert_eq!(resp.field("changed"), Some("true"));
    assert_eq!(ns.scan_expired(4 * MIN + 1), vec!["a:1".to_string()]);
}

#[test]
fn compressed_register_round_trip_and_crc_check() {
    let mut raw = Vec::new();
    let dv = b"{\"counter\":3,\"timestamp\":42}";
    raw.extend_from_slice(&(dv.len() as i32).to_be_bytes());
    raw.extend_from_slice(dv);
    let topics = ["Z 3 5 6 SINGLE_TAG", "Y 1 1 2 MULTI_TAG"];
    raw.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        raw.extend_from_slice(&(t.len() as i32).to_be_bytes());
        raw.extend_from_slice(t.as_bytes());
    }
    raw.extend_from_slice(&2i32.to_be_bytes());
    raw.extend_from_slice(b"[]");
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&raw).unwrap();
    let body = enc.finish().unwrap();

    let mut ns = ns();
    let mut bad = register("broker-a", "a:1", 0, &body, true);
    bad.set_field("bodyCrc32", "12345");
    let resp = ns.handle(&bad, ConnId(1), 0).unwrap();
    assert_eq!(resp.code, response::SYSTEM_ERROR);
    let remark = resp.remark.unwrap();
    assert!(
        remark.contains("CRC32") && remark.contains("12345"),
        "{remark}"
    );
    assert_eq!(route(&mut ns, "Z", 275).code, response::TOPIC_NOT_EXIST);

    let resp = ns
        .handle(&register("broker-a", "a:1", 0, &body, true), ConnId(1), 0)
        .unwrap();
    assert_eq!(resp.code, response::SUCCESS, "{:?}", resp.remark);
    let v = lenient(&route(&mut ns, "Z", 275).body);
    assert_eq!(v["queueDatas"][0]["readQueueNums"], 3);
    assert_eq!(v["queueDatas"][0]["writeQueueNums"], 5);
    assert_eq!(
        lenient(&route(&mut ns, "Y", 275).body)["queueDatas"][0]["perm"],
        2
    );

    // Unchecked CRC (0) and a corrupt stream: a clear decode error.
    let mut corrupt = register("broker-a", "a:1", 0, b"garbage", true);
    corrupt.set_field("bodyCrc32", "0");
    let resp = ns.handle(&corrupt, ConnId(1), 0).unwrap();
    assert_eq!(resp.code, response::SYSTEM_ERROR);
    assert!(resp.remark.unwrap().contains("zlib"));
}

#[test]
fn kv_calls_and_persistence() {
    let mut ns = ns();
    assert!(ns.take_kv_to_persist().is_none());
    let ok = ns
        .handle(
            &req(
                request::PUT_KV_CONFIG,
                1,
                &[("namespace", "NS"), ("key", "k"), ("value", "v")],
            ),
            ConnId(1),
            0,
        )
        .unwrap();
    assert_eq!(ok.code, response::SUCCESS);
    assert!(ok.ext_fields.is_none());
    let (path, content) = ns.take_kv_to_persist().unwrap();
    assert_eq!(path, std::path::PathBuf::from("/tmp/kv.json"));
    assert_eq!(content, "{\"configTable\":{\"NS\":{\"k\":\"v\"}}}");
    assert!(ns.take_kv_to_persist().is_none());

    let get = |ns: &mut NameServer, key: &str| {
        ns.handle(
            &req(
                request::GET_KV_CONFIG,
                2,
                &[("namespace", "NS"), ("key", key)],
            ),
            ConnId(1),
            0,
        )
        .unwrap()
    };
    assert_eq!(get(&mut ns, "k").field("value"), Some("v"));
    let miss = get(&mut ns, "x");
    assert_eq!(miss.code, response::QUERY_NOT_FOUND);
    assert_eq!(
        miss.remark.as_deref(),
        Some("No config item, Namespace: NS Key: x")
    );
    assert_eq!(miss.ext_fields.as_ref().map(|f| f.len()), Some(0));

    let list = |ns: &mut NameServer, namespace: &str| {
        ns.handle(
            &req(
                request::GET_KVLIST_BY_NAMESPACE,
                3,
                &[("namespace", namespace)],
            ),
            ConnId(1),
            0,
        )
        .unwrap()
    };
    assert_eq!(&list(&mut ns, "NS").body[..], b"{\"table\":{\"k\":\"v\"}}");
    let miss = list(&mut ns, "none");
    assert_eq!(miss.code, response::QUERY_NOT_FOUND);
    assert_eq!(
        miss.remark.as_deref(),
        Some("No config item, Namespace: none")
    );

    let del = req(
        request::DELETE_KV_CONFIG,
        4,
        &[("namespace", "NS"), ("key", "k")],
    );
    assert_eq!(
        ns.handle(&del, ConnId(1), 0).unwrap().code,
        response::SUCCESS
    );
    assert_eq!(get(&mut ns, "k").code, response::QUERY_NOT_FOUND);
    assert!(ns.take_kv_to_persist().is_some());

    ns.load_kv("{\"configTable\":{\"ORDER_TOPIC_CONFIG\":{\"T\":\"broker-a:4\"}}}")
        .unwrap();
    assert!(ns.take_kv_to_persist().is_none());
    let err = ns.load_kv("{bad").unwrap_err().to_string();
    assert!(err.contains("/tmp/kv.json"), "{err}");
}

#[test]
fn order_topic_conf_in_route_and_register_response() {
    let mut ns = NameServer::new(NamesrvSettings {
        kv_config_path: "kv.json".into(),
        order_message_enable: true,
        extra_config: Vec::new(),
    });
    ns.load_kv("{\"configTable\":{\"ORDER_TOPIC_CONFIG\":{\"T\":\"broker-a:4\"}}}")
        .unwrap();
    let body = body_json(1, &[("T", 4), ("U", 4)]);
    let resp = ns
        .handle(
            &register("broker-a", "a:1", 0, body.as_bytes(), false),
            ConnId(1),
            0,
        )
        .unwrap();
    assert_eq!(&resp.body[..], b"{\"table\":{\"T\":\"broker-a:4\"}}");
    assert_eq!(
        lenient(&route(&mut ns, "T", 275).body)["orderTopicConf"],
        "broker-a:4"
    );
    assert!(lenient(&route(&mut ns, "U", 275).body)
        .get("orderTopicConf")
        .is_none());
}

#[test]
fn unknown_code_missing_field_and_oneway() {
    let mut ns = ns();
    let resp = ns.handle(&req(9999, 11, &[]), ConnId(1), 0).unwrap();
    assert_eq!(resp.code, response::REQUEST_CODE_NOT_SUPPORTED);
    assert_eq!(
        resp.remark.as_deref(),
        Some(" request type 9999 not supported")
    );
    assert_eq!(resp.opaque, 11);
    assert!(resp.ext_fields.is_none());

    let resp = ns
        .handle(&req(request::GET_ROUTEINFO_BY_TOPIC, 12, &[]), ConnId(1), 0)
        .unwrap();
    assert_eq!(resp.code, response::SYSTEM_ERROR);
    assert!(resp
        .remark
        .unwrap()
        .starts_with("the custom field <topic> is null"));

    let mut bad_id = register("b", "a:1", 0, b"", false);
    bad_id.set_field("brokerId", "zero");
    let resp = ns.handle(&bad_id, ConnId(1), 0).unwrap();
    assert!(resp.remark.unwrap().contains("brokerId"));

    // Oneway: processed, never answered (not even on error).
    let body = body_json(1, &[("T", 4)]);
    let mut oneway = register("broker-a", "a:1", 0, body.as_bytes(), false);
    oneway.flag = FLAG_ONEWAY;
    assert!(ns.handle(&oneway, ConnId(1), 0).is_none());
    assert_eq!(route(&mut ns, "T", 275).code, response::SUCCESS);
    let mut oneway_bad = req(9999, 1, &[]);
    oneway_bad.flag = FLAG_ONEWAY;
    assert!(ns.handle(&oneway_bad, ConnId(1), 0).is_none());
    // A stray response is ignored.
    let mut stray = req(request::GET_BROKER_CLUSTER_INFO, 1, &[]);
    stray.flag = FLAG_RESPONSE;
    assert!(ns.handle(&stray, ConnId(1), 0).is_none());
}

#[test]
fn unregister_delete_wipe_topics_by_cluster_and_config() {
    let mut ns = ns();
    reg(&mut ns, "broker-a", "a:1", 0, 1, 1, 0);
    reg(&mut ns, "broker-a", "s:1", 1, 1, 2, 0);

    let wipe = req(
        request::WIPE_WRITE_PERM_OF_BROKER,
        1,
        &[("brokerName", "broker-a")],
    );
    let resp = ns.handle(&wipe, ConnId(5), 0).unwrap();
    assert_eq!(resp.field("wipeTopicCount"), Some("2"));
    assert_eq!(
        lenient(&route(&mut ns, "T", 275).body)["queueDatas"][0]["perm"],
        4
    );

    let by_cluster = req(
        request::GET_TOPICS_BY_CLUSTER,
        2,
        &[("cluster", "DefaultCluster")],
    );
    let resp = ns.handle(&by_cluster, ConnId(5), 0).unwrap();
    assert_eq!(&resp.body[..], b"{\"topicList\":[\"T\",\"U\"]}");

    let del = req(request::DELETE_TOPIC_IN_NAMESRV, 3, &[("topic", "U")]);
    let resp = ns.handle(&del, ConnId(5), 0).unwrap();
    assert_eq!(resp.code, response::SUCCESS);
    assert!(resp.ext_fields.is_none());
    let all = ns
        .handle(
            &req(request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER, 4, &[]),
            ConnId(5),
            0,
        )
        .unwrap();
    assert_eq!(&all.body[..], b"{\"topicList\":[\"T\"]}");

    let unreg = req(
        request::UNREGISTER_BROKER,
        5,
        &[
            ("brokerId", "0"),
            ("clusterName", "DefaultCluster"),
            ("brokerAddr", "a:1"),
            ("brokerName", "broker-a"),
        ],
    );
    let resp = ns.handle(&unreg, ConnId(1), 0).unwrap();
    assert_eq!(resp.code, response::SUCCESS);
    assert!(resp.ext_fields.is_none());
    // The slave keeps the broker name (and so the route) alive.
    let v = lenient(&route(&mut ns, "T", 275).body);
    assert_eq!(
        v["brokerDatas"][0]["brokerAddrs"],
        serde_json::json!({"1": "s:1"})
    );

    let cfg = ns
        .handle(&req(request::GET_NAMESRV_CONFIG, 6, &[]), ConnId(1), 0)
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&cfg.body).unwrap(),
        "kvConfigPath=/tmp/kv.json\norderMessageEnable=false\nlistenPort=9876\n"
    );
}
