//! The JSON bodies the nameserver emits: TopicRouteData (105), ClusterInfo (106), TopicList
//! (206, 224), KVTable (101/219/103 responses), DataVersion (322) and the persisted KV file.
//!
//! A tiny hand-written writer, because fastjson's output is not something serde can be told to
//! produce: bean properties in alphabetical order, `Map<Long, _>` keys written bare
//! (`{0:"a"}`, not valid JSON) unless the caller asked for standard JSON (spec/remoting.md §7.3,
//! §9). Emitted extras on purpose, so that every client generation accepts the route:
//! QueueData carries both `topicSynFlag` (4.3 spelling) and `topicSysFlag` (4.9+), BrokerData
//! carries `enableActingMaster:false` (5.x clients refuse a route without it).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::route_table::{BrokerData, DataVersion, QueueData, TopicRouteData};

/// How non-string map keys (broker ids) and non-ASCII text are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonStyle {
    /// fastjson default: bare numeric keys `{0:"a"}`, non-ASCII raw UTF-8.
    Fastjson,
    /// Standard JSON (4.9 namesrv for callers >= 4.9.4): quoted keys, non-ASCII as `\uXXXX`.
    Standard,
}

/// Appends JSON tokens to a `String`, inserting commas itself.
#[derive(Debug)]
pub struct JsonWriter {
    buf: String,
    style: JsonStyle,
    needs_comma: bool,
}

impl JsonWriter {
    pub fn new(style: JsonStyle) -> Self {
        Self {
            buf: String::with_capacity(256),
            style,
            needs_comma: false,
        }
    }

    pub fn finish(self) -> String {
        self.buf
    }

    fn separate(&mut self) {
        if self.needs_comma {
            self.buf.push(',');
        }
        self.needs_comma = false;
    }

    pub fn begin_object(&mut self) {
        self.separate();
        self.buf.push('{');
    }

    pub fn end_object(&mut self) {
        self.buf.push('}');
        self.needs_comma = true;
    }

    pub fn begin_array(&mut self) {
        self.separate();
        self.buf.push('[');
    }

    pub fn end_array(&mut self) {
        self.buf.push(']');
        self.needs_comma = true;
    }

    /// A string key (always quoted).
    pub fn key(&mut self, key: &str) {
        self.separate();
        self.push_quoted(key);
        self.buf.push(':');
    }

    /// A numeric map key: bare in fastjson style, quoted in standard style.
    pub fn numeric_key(&mut self, key: i64) {
        self.separate();
        match self.style {
            JsonStyle::Fastjson => {
                let _ = write!(self.buf, "{key}:");
            }
            JsonStyle::Standard => {
                let _ = write!(self.buf, "\"{key}\":");
            }
        }
    }

    pub fn string(&mut self, value: &str) {
        self.separate();
        self.push_quoted(value);
        self.needs_comma = true;
    }

    pub fn int(&mut self, value: i64) {
        self.separate();
        let _ = write!(self.buf, "{value}");
        self.needs_comma = true;
    }

    pub fn boolean(&mut self, value: bool) {
        self.separate();
        self.buf.push_str(if value { "true" } else { "false" });
        self.needs_comma = true;
    }

    fn push_quoted(&mut self, s: &str) {
        let ascii_only = self.style == JsonStyle::Standard;
        push_escaped(&mut self.buf, s, ascii_only);
    }
}

/// Writes `s` as a JSON string literal: `"` and `\` backslash-escaped, control characters (and,
/// with `ascii_only`, every non-ASCII UTF-16 unit) as `\uXXXX`.
pub fn push_escaped(out: &mut String, s: &str, ascii_only: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if ascii_only && !c.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_queue_data(w: &mut JsonWriter, q: &QueueData) {
    w.begin_object();
    w.key("brokerName");
    w.string(&q.broker_name);
    w.key("perm");
    w.int(i64::from(q.perm));
    w.key("readQueueNums");
    w.int(i64::from(q.read_queue_nums));
    w.key("topicSynFlag");
    w.int(i64::from(q.topic_sys_flag));
    w.key("topicSysFlag");
    w.int(i64::from(q.topic_sys_flag));
    w.key("writeQueueNums");
    w.int(i64::from(q.write_queue_nums));
    w.end_object();
}

fn write_broker_data(w: &mut JsonWriter, b: &BrokerData) {
    w.begin_object();
    w.key("brokerAddrs");
    w.begin_object();
    for (id, addr) in &b.broker_addrs {
        w.numeric_key(*id);
        w.string(addr);
    }
    w.end_object();
    w.key("brokerName");
    w.string(&b.broker_name);
    w.key("cluster");
    w.string(&b.cluster);
    w.key("enableActingMaster");
    w.boolean(false);
    w.end_object();
}

/// TopicRouteData: `{brokerDatas, filterServerTable, orderTopicConf?, queueDatas}`.
pub fn encode_topic_route(route: &TopicRouteData, style: JsonStyle) -> String {
    let mut w = JsonWriter::new(style);
    w.begin_object();
    w.key("brokerDatas");
    w.begin_array();
    for b in &route.broker_datas {
        write_broker_data(&mut w, b);
    }
    w.end_array();
    w.key("filterServerTable");
    w.begin_object();
    w.end_object();
    if let Some(conf) = &route.order_topic_conf {
        w.key("orderTopicConf");
        w.string(conf);
    }
    w.key("queueDatas");
    w.begin_array();
    for q in &route.queue_datas {
        write_queue_data(&mut w, q);
    }
    w.end_array();
    w.end_object();
    w.finish()
}

/// ClusterInfo: `{brokerAddrTable:{name:BrokerData}, clusterAddrTable:{cluster:[names]}}`,
/// always with bare numeric keys (every upstream version does so).
pub fn encode_cluster_info(
    brokers: &BTreeMap<String, BrokerData>,
    clusters: &BTreeMap<String, BTreeSet<String>>,
) -> String {
    let mut w = JsonWriter::new(JsonStyle::Fastjson);
    w.begin_object();
    w.key("brokerAddrTable");
    w.begin_object();
    for (name, data) in brokers {
        w.key(name);
        write_broker_data(&mut w, data);
    }
    w.end_object();
    w.key("clusterAddrTable");
    w.begin_object();
    for (cluster, names) in clusters {
        w.key(cluster);
        w.begin_array();
        for name in names {
            w.string(name);
        }
        w.end_array();
    }
    w.end_object();
    w.end_object();
    w.finish()
}

/// TopicList: `{"topicList":[...]}` (`brokerAddr` is null for namesrv answers, so omitted).
pub fn encode_topic_list<'a>(topics: impl IntoIterator<Item = &'a str>) -> String {
    let mut w = JsonWriter::new(JsonStyle::Fastjson);
    w.begin_object();
    w.key("topicList");
    w.begin_array();
    for t in topics {
        w.string(t);
    }
    w.end_array();
    w.end_object();
    w.finish()
}

fn write_string_map(w: &mut JsonWriter, map: &BTreeMap<String, String>) {
    w.begin_object();
    for (k, v) in map {
        w.key(k);
        w.string(v);
    }
    w.end_object();
}

/// KVTable: `{"table":{k:v}}`.
pub fn encode_kv_table(table: &BTreeMap<String, String>) -> String {
    let mut w = JsonWriter::new(JsonStyle::Fastjson);
    w.begin_object();
    w.key("table");
    write_string_map(&mut w, table);
    w.end_object();
    w.finish()
}

/// The KV file: `{"configTable":{namespace:{k:v}}}`.
pub fn encode_kv_file(config: &BTreeMap<String, BTreeMap<String, String>>) -> String {
    let mut w = JsonWriter::new(JsonStyle::Fastjson);
    w.begin_object();
    w.key("configTable");
    w.begin_object();
    for (ns, table) in config {
        w.key(ns);
        write_string_map(&mut w, table);
    }
    w.end_object();
    w.end_object();
    w.finish()
}

/// DataVersion: `{"counter":n,"timestamp":t}` (plus 5.x `stateVersion` when non-zero).
pub fn encode_data_version(v: &DataVersion) -> String {
    let mut w = JsonWriter::new(JsonStyle::Fastjson);
    w.begin_object();
    w.key("counter");
    w.int(v.counter);
    if v.state_version != 0 {
        w.key("stateVersion");
        w.int(v.state_version);
    }
    w.key("timestamp");
    w.int(v.timestamp);
    w.end_object();
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> TopicRouteData {
        TopicRouteData {
            queue_datas: vec![QueueData {
                broker_name: "broker-a".into(),
                read_queue_nums: 8,
                write_queue_nums: 8,
                perm: 7,
                topic_sys_flag: 0,
            }],
            broker_datas: vec![BrokerData {
                cluster: "DefaultCluster".into(),
                broker_name: "broker-a".into(),
                broker_addrs: BTreeMap::from([
                    (0, "127.0.0.1:20961".to_string()),
                    (1, "127.0.0.1:20971".to_string()),
                ]),
            }],
            order_topic_conf: None,
        }
    }

    #[test]
    fn route_fastjson_matches_golden_shape() {
        let text = encode_topic_route(&route(), JsonStyle::Fastjson);
        assert_eq!(
            text,
            "{\"brokerDatas\":[{\"brokerAddrs\":{0:\"127.0.0.1:20961\",1:\"127.0.0.1:20971\"},\
             \"brokerName\":\"broker-a\",\"cluster\":\"DefaultCluster\",\"enableActingMaster\":false}],\
             \"filterServerTable\":{},\"queueDatas\":[{\"brokerName\":\"broker-a\",\"perm\":7,\
             \"readQueueNums\":8,\"topicSynFlag\":0,\"topicSysFlag\":0,\"writeQueueNums\":8}]}"
        );
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_err());
    }

    #[test]
    fn route_standard_is_valid_json() {
        let mut r = route();
        r.order_topic_conf = Some("broker-a:4".into());
        let text = encode_topic_route(&r, JsonStyle::Standard);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["brokerDatas"][0]["brokerAddrs"]["1"], "127.0.0.1:20971");
        assert_eq!(v["orderTopicConf"], "broker-a:4");
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "brokerDatas",
                "filterServerTable",
                "orderTopicConf",
                "queueDatas"
            ]
        );
    }

    #[test]
    fn escaping() {
        let mut s = String::new();
        push_escaped(&mut s, "a\"b\\c\u{1}\n€𝄞", false);
        assert_eq!(s, "\"a\\\"b\\\\c\\u0001\\u000a€𝄞\"");
        let mut s = String::new();
        push_escaped(&mut s, "€𝄞", true);
        assert_eq!(s, "\"\\u20ac\\ud834\\udd1e\"");
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, "€𝄞");
    }

    #[test]
    fn small_bodies() {
        assert_eq!(
            encode_topic_list(["a", "b"]),
            "{\"topicList\":[\"a\",\"b\"]}"
        );
        let t = BTreeMap::from([("T".to_string(), "broker-a:4".to_string())]);
        assert_eq!(encode_kv_table(&t), "{\"table\":{\"T\":\"broker-a:4\"}}");
        let f = BTreeMap::from([("NS".to_string(), t)]);
        assert_eq!(
            encode_kv_file(&f),
            "{\"configTable\":{\"NS\":{\"T\":\"broker-a:4\"}}}"
        );
        let dv = DataVersion {
            timestamp: 5,
            counter: 2,
            state_version: 0,
        };
        assert_eq!(encode_data_version(&dv), "{\"counter\":2,\"timestamp\":5}");
        let clusters =
            BTreeMap::from([("C".to_string(), BTreeSet::from(["broker-a".to_string()]))]);
        let brokers = BTreeMap::from([("broker-a".to_string(), route().broker_datas[0].clone())]);
        let text = encode_cluster_info(&brokers, &clusters);
        assert!(text.starts_with("{\"brokerAddrTable\":{\"broker-a\":{\"brokerAddrs\":{0:"));
        assert!(text.ends_with("\"clusterAddrTable\":{\"C\":[\"broker-a\"]}}"));
    }
}
