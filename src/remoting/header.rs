//! Typed views of the custom headers (`extFields`) that the broker and the
//! nameserver read and write (spec/remoting.md §3.4, §7, §8). Each header is a
//! plain struct with `from_fields` (decode, Java's `decodeCommandCustomHeader`
//! rules) and `to_fields` (encode, every present field as a string).
//!
//! Decoding rules: a required field (`R` in the spec) that is absent gives
//! `HeaderError::Missing(key)`, whose text is upstream's exception text
//! (`the custom field <key> is null`), used as the SYSTEM_ERROR remark; a number
//! that does not parse gives `HeaderError::BadNumber`; booleans follow Java's
//! `Boolean.parseBoolean` (only a case-insensitive `true` is true). Unknown keys
//! are ignored.
//!
//! SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320) carry the send header
//! with one-letter keys `a`..`n` (§8.2); [`SendMessageHeader::from_request`]
//! maps both spellings to the same struct.

use super::code::request;
use super::command::{ExtFields, RemotingCommand};

/// Why a custom header could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the custom field <{0}> is null")]
    Missing(&'static str),
    #[error("the custom field <{key}> has an invalid value <{value}>")]
    BadNumber { key: &'static str, value: String },
}

static NO_FIELDS: ExtFields = ExtFields::new();

/// The command's `extFields`, or an empty map when absent.
pub fn fields_of(cmd: &RemotingCommand) -> &ExtFields {
    cmd.ext_fields.as_ref().unwrap_or(&NO_FIELDS)
}

/// A type a header field can have: parsed from and written to its string form.
pub trait FieldValue: Sized {
    fn parse_field(key: &'static str, raw: &str) -> Result<Self, HeaderError>;
    /// Appends the value as its field text.
    fn write_field(&self, out: &mut String);
}

impl FieldValue for String {
    fn parse_field(_: &'static str, raw: &str) -> Result<Self, HeaderError> {
        Ok(raw.to_owned())
    }
    fn write_field(&self, out: &mut String) {
        out.push_str(self);
    }
}

macro_rules! number_field {
    ($($t:ty),*) => {$(
        impl FieldValue for $t {
            fn parse_field(key: &'static str, raw: &str) -> Result<Self, HeaderError> {
                raw.parse::<$t>().map_err(|_| HeaderError::BadNumber {
                    key,
                    value: raw.chars().take(64).collect(),
                })
            }
            fn write_field(&self, out: &mut String) {
                match i64::try_from(*self) {
                    Ok(v) => super::fastjson::write_i64(out, v),
                    Err(_) => out.push_str(&self.to_string()),
                }
            }
        }
    )*};
}
number_field!(i32, i64, u32, u64);

/// `true` in any case, or `1`: the C++ client writes booleans as `0`/`1` (Java's
/// `parseBoolean` would read its `batch:"1"` as false; we honour what the client meant).
impl FieldValue for bool {
    fn parse_field(_: &'static str, raw: &str) -> Result<Self, HeaderError> {
        Ok(raw.eq_ignore_ascii_case("true") || raw == "1")
    }
    fn write_field(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
}

/// A required field.
pub fn req<T: FieldValue>(f: &ExtFields, key: &'static str) -> Result<T, HeaderError> {
    let raw = f.get(key).ok_or(HeaderError::Missing(key))?;
    T::parse_field(key, raw)
}

/// An optional field: `None` when absent.
pub fn opt<T: FieldValue>(f: &ExtFields, key: &'static str) -> Result<Option<T>, HeaderError> {
    f.get(key).map(|raw| T::parse_field(key, raw)).transpose()
}

/// An optional field of a Java primitive type: its default (0, false) when absent.
pub fn def<T: FieldValue + Default>(f: &ExtFields, key: &'static str) -> Result<T, HeaderError> {
    Ok(opt(f, key)?.unwrap_or_default())
}

/// Shorthands for the common cases.
pub fn req_str(f: &ExtFields, key: &'static str) -> Result<String, HeaderError> {
    req(f, key)
}
pub fn req_i32(f: &ExtFields, key: &'static str) -> Result<i32, HeaderError> {
    req(f, key)
}
pub fn req_i64(f: &ExtFields, key: &'static str) -> Result<i64, HeaderError> {
    req(f, key)
}
pub fn opt_str(f: &ExtFields, key: &'static str) -> Result<Option<String>, HeaderError> {
    opt(f, key)
}
pub fn opt_i32(f: &ExtFields, key: &'static str) -> Result<Option<i32>, HeaderError> {
    opt(f, key)
}
pub fn opt_i64(f: &ExtFields, key: &'static str) -> Result<Option<i64>, HeaderError> {
    opt(f, key)
}
pub fn opt_bool(f: &ExtFields, key: &'static str) -> Result<Option<bool>, HeaderError> {
    opt(f, key)
}

// Writers used by `to_fields`, one per kind.
fn put_req<T: FieldValue>(out: &mut ExtFields, key: &str, v: &T) {
    out.insert_with(key, |text| v.write_field(text));
}
fn put_def<T: FieldValue>(out: &mut ExtFields, key: &str, v: &T) {
    out.insert_with(key, |text| v.write_field(text));
}
fn put_opt<T: FieldValue>(out: &mut ExtFields, key: &str, v: &Option<T>) {
    if let Some(v) = v {
        out.insert_with(key, |text| v.write_field(text));
    }
}

/// Declares a header struct with its keys. Kinds: `req` (type `T`, absent =
/// error), `opt` (type `Option<T>`), `def` (type `T`, absent = default).
macro_rules! header {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $kind:ident $key:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $name {
            pub fn from_fields(f: &ExtFields) -> Result<Self, HeaderError> {
                Ok(Self { $( $field: header!(@get $kind, f, $key), )* })
            }

            pub fn from_command(cmd: &RemotingCommand) -> Result<Self, HeaderError> {
                Self::from_fields(fields_of(cmd))
            }

            pub fn to_fields(&self) -> ExtFields {
                let mut out = ExtFields::new();
                $( header!(@put $kind, out, $key, &self.$field); )*
                out
            }
        }
    };
    (@get req, $f:ident, $key:literal) => { req($f, $key)? };
    (@get opt, $f:ident, $key:literal) => { opt($f, $key)? };
    (@get def, $f:ident, $key:literal) => { def($f, $key)? };
    (@put req, $out:ident, $key:literal, $v:expr) => { put_req(&mut $out, $key, $v) };
    (@put opt, $out:ident, $key:literal, $v:expr) => { put_opt(&mut $out, $key, $v) };
    (@put def, $out:ident, $key:literal, $v:expr) => { put_def(&mut $out, $key, $v) };
}

// ---------------------------------------------------------------------------
// Send (10, 310, 320)

/// SEND_MESSAGE (10) header; SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320)
/// carry the same fields under one-letter keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendMessageHeader {
    pub producer_group: String,
    pub topic: String,
    pub default_topic: String,
    pub default_topic_queue_nums: i32,
    pub queue_id: i32,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub flag: i32,
    pub properties: Option<String>,
    pub reconsume_times: Option<i32>,
    pub unit_mode: bool,
    pub batch: bool,
    pub max_reconsume_times: Option<i32>,
    pub broker_name: Option<String>,
}

/// (long key, V2 key) for each send header field, in declaration order.
const SEND_KEYS: [(&str, &str); 14] = [
    ("producerGroup", "a"),
    ("topic", "b"),
    ("defaultTopic", "c"),
    ("defaultTopicQueueNums", "d"),
    ("queueId", "e"),
    ("sysFlag", "f"),
    ("bornTimestamp", "g"),
    ("flag", "h"),
    ("properties", "i"),
    ("reconsumeTimes", "j"),
    ("unitMode", "k"),
    ("maxReconsumeTimes", "l"),
    ("batch", "m"),
    ("bname", "n"),
];

impl SendMessageHeader {
    /// Decodes by request code: 310 and 320 use the one-letter keys, anything
    /// else (10) the long names.
    pub fn from_request(cmd: &RemotingCommand) -> Result<Self, HeaderError> {
        let f = fields_of(cmd);
        match cmd.code {
            request::SEND_MESSAGE_V2 | request::SEND_BATCH_MESSAGE => Self::from_fields_v2(f),
            _ => Self::from_fields(f),
        }
    }

    pub fn from_fields(f: &ExtFields) -> Result<Self, HeaderError> {
        Self::decode_with(f, |i| SEND_KEYS[i].0)
    }

    pub fn from_fields_v2(f: &ExtFields) -> Result<Self, HeaderError> {
        Self::decode_with(f, |i| SEND_KEYS[i].1)
    }

    fn decode_with(f: &ExtFields, k: impl Fn(usize) -> &'static str) -> Result<Self, HeaderError> {
        // Errors name the key as spelled on the wire (a letter for V2), as Java does.
        Ok(Self {
            producer_group: req(f, k(0))?,
            topic: req(f, k(1))?,
            default_topic: req(f, k(2))?,
            default_topic_queue_nums: req(f, k(3))?,
            queue_id: req(f, k(4))?,
            sys_flag: req(f, k(5))?,
            born_timestamp: req(f, k(6))?,
            flag: req(f, k(7))?,
            properties: opt(f, k(8))?,
            reconsume_times: opt(f, k(9))?,
            unit_mode: def(f, k(10))?,
            max_reconsume_times: opt(f, k(11))?,
            batch: def(f, k(12))?,
            broker_name: opt(f, k(13))?,
        })
    }

    pub fn to_fields(&self) -> ExtFields {
        self.encode_with(|i| SEND_KEYS[i].0)
    }

    pub fn to_fields_v2(&self) -> ExtFields {
        self.encode_with(|i| SEND_KEYS[i].1)
    }

    fn encode_with(&self, k: impl Fn(usize) -> &'static str) -> ExtFields {
        let mut out = ExtFields::new();
        put_req(&mut out, k(0), &self.producer_group);
        put_req(&mut out, k(1), &self.topic);
        put_req(&mut out, k(2), &self.default_topic);
        put_req(&mut out, k(3), &self.default_topic_queue_nums);
        put_req(&mut out, k(4), &self.queue_id);
        put_req(&mut out, k(5), &self.sys_flag);
        put_req(&mut out, k(6), &self.born_timestamp);
        put_req(&mut out, k(7), &self.flag);
        put_opt(&mut out, k(8), &self.properties);
        put_opt(&mut out, k(9), &self.reconsume_times);
        put_def(&mut out, k(10), &self.unit_mode);
        put_opt(&mut out, k(11), &self.max_reconsume_times);
        put_def(&mut out, k(12), &self.batch);
        put_opt(&mut out, k(13), &self.broker_name);
        out
    }
}

header! {
    /// Send response (10/310/320): `msgId` is the offset id (comma-joined for batches).
    pub struct SendMessageResponseHeader {
        msg_id: String = req "msgId",
        queue_id: i32 = req "queueId",
        queue_offset: i64 = req "queueOffset",
        transaction_id: Option<String> = opt "transactionId",
    }
}

// ---------------------------------------------------------------------------
// Pull and offsets

header! {
    /// PULL_MESSAGE (11) request (§8.4).
    pub struct PullMessageHeader {
        consumer_group: String = req "consumerGroup",
        topic: String = req "topic",
        queue_id: i32 = req "queueId",
        queue_offset: i64 = req "queueOffset",
        max_msg_nums: i32 = req "maxMsgNums",
        sys_flag: i32 = req "sysFlag",
        commit_offset: i64 = req "commitOffset",
        suspend_timeout_millis: i64 = req "suspendTimeoutMillis",
        subscription: Option<String> = opt "subscription",
        sub_version: i64 = req "subVersion",
        expression_type: Option<String> = opt "expressionType",
        broker_name: Option<String> = opt "bname",
        max_msg_bytes: Option<i32> = opt "maxMsgBytes",
    }
}

header! {
    /// PULL_MESSAGE response header.
    pub struct PullMessageResponseHeader {
        suggest_which_broker_id: i64 = req "suggestWhichBrokerId",
        next_begin_offset: i64 = req "nextBeginOffset",
        min_offset: i64 = req "minOffset",
        max_offset: i64 = req "maxOffset",
    }
}

header! {
    /// QUERY_CONSUMER_OFFSET (14).
    pub struct QueryConsumerOffsetHeader {
        consumer_group: String = req "consumerGroup",
        topic: String = req "topic",
        queue_id: i32 = req "queueId",
        set_zero_if_not_found: Option<bool> = opt "setZeroIfNotFound",
    }
}

header! {
    /// UPDATE_CONSUMER_OFFSET (15).
    pub struct UpdateConsumerOffsetHeader {
        consumer_group: String = req "consumerGroup",
        topic: String = req "topic",
        queue_id: i32 = req "queueId",
        commit_offset: i64 = req "commitOffset",
    }
}

header! {
    /// (topic, queueId): GET_MAX_OFFSET (30), GET_MIN_OFFSET (31),
    /// GET_EARLIEST_MSG_STORETIME (32).
    pub struct TopicQueueHeader {
        topic: String = req "topic",
        queue_id: i32 = req "queueId",
    }
}

pub type GetMaxOffsetHeader = TopicQueueHeader;
pub type GetMinOffsetHeader = TopicQueueHeader;
pub type GetEarliestMsgStoretimeHeader = TopicQueueHeader;

header! {
    /// SEARCH_OFFSET_BY_TIMESTAMP (29).
    pub struct SearchOffsetHeader {
        topic: String = req "topic",
        queue_id: i32 = req "queueId",
        timestamp: i64 = req "timestamp",
    }
}

header! {
    /// Responses carrying one offset (14, 29, 30, 31).
    pub struct OffsetResponseHeader {
        offset: i64 = req "offset",
    }
}

header! {
    /// GET_EARLIEST_MSG_STORETIME response.
    pub struct TimestampResponseHeader {
        timestamp: i64 = req "timestamp",
    }
}

// ---------------------------------------------------------------------------
// Query / view / send-back / transactions

header! {
    /// QUERY_MESSAGE (12); `_UNIQUE_KEY_QUERY` is an extra key Java reads separately.
    pub struct QueryMessageHeader {
        topic: String = req "topic",
        key: String = req "key",
        max_num: i32 = req "maxNum",
        begin_timestamp: i64 = req "beginTimestamp",
        end_timestamp: i64 = req "endTimestamp",
        unique_key_query: bool = def "_UNIQUE_KEY_QUERY",
    }
}

header! {
    /// QUERY_MESSAGE response header.
    pub struct QueryMessageResponseHeader {
        index_last_update_timestamp: i64 = req "indexLastUpdateTimestamp",
        index_last_update_phyoffset: i64 = req "indexLastUpdatePhyoffset",
    }
}

header! {
    /// VIEW_MESSAGE_BY_ID (33).
    pub struct ViewMessageByIdHeader {
        offset: i64 = req "offset",
    }
}

header! {
    /// CONSUMER_SEND_MSG_BACK (36).
    pub struct ConsumerSendMsgBackHeader {
        offset: i64 = req "offset",
        group: String = req "group",
        delay_level: i32 = req "delayLevel",
        origin_msg_id: Option<String> = opt "originMsgId",
        origin_topic: Option<String> = opt "originTopic",
        unit_mode: bool = def "unitMode",
        max_reconsume_times: Option<i32> = opt "maxReconsumeTimes",
        broker_name: Option<String> = opt "bname",
    }
}

header! {
    /// END_TRANSACTION (37); `commit_or_rollback` is 8 commit, 12 rollback, 0 unknown.
    pub struct EndTransactionHeader {
        producer_group: String = req "producerGroup",
        tran_state_table_offset: i64 = req "tranStateTableOffset",
        commit_log_offset: i64 = req "commitLogOffset",
        commit_or_rollback: i32 = req "commitOrRollback",
        from_transaction_check: bool = def "fromTransactionCheck",
        msg_id: String = req "msgId",
        transaction_id: Option<String> = opt "transactionId",
    }
}

header! {
    /// CHECK_TRANSACTION_STATE (39), broker -> producer.
    pub struct CheckTransactionStateHeader {
        tran_state_table_offset: i64 = req "tranStateTableOffset",
        commit_log_offset: i64 = req "commitLogOffset",
        msg_id: Option<String> = opt "msgId",
        transaction_id: Option<String> = opt "transactionId",
        offset_msg_id: Option<String> = opt "offsetMsgId",
        broker_name: Option<String> = opt "bname",
    }
}

// ---------------------------------------------------------------------------
// Clients and groups

header! {
    /// UNREGISTER_CLIENT (35): one of the groups is set.
    pub struct UnregisterClientHeader {
        client_id: String = req "clientID",
        producer_group: Option<String> = opt "producerGroup",
        consumer_group: Option<String> = opt "consumerGroup",
    }
}

header! {
    /// `consumerGroup` only: GET_CONSUMER_LIST_BY_GROUP (38),
    /// NOTIFY_CONSUMER_IDS_CHANGED (40), GET_CONSUMER_CONNECTION_LIST (203).
    pub struct ConsumerGroupHeader {
        consumer_group: String = req "consumerGroup",
    }
}

pub type GetConsumerListHeader = ConsumerGroupHeader;
pub type NotifyConsumerIdsChangedHeader = ConsumerGroupHeader;
pub type GetConsumerConnectionListHeader = ConsumerGroupHeader;

header! {
    /// GET_PRODUCER_CONNECTION_LIST (204).
    pub struct GetProducerConnectionListHeader {
        producer_group: String = req "producerGroup",
    }
}

header! {
    /// GET_CONSUME_STATS (208): no topic = every topic the group has offsets for.
    pub struct GetConsumeStatsHeader {
        consumer_group: String = req "consumerGroup",
        topic: Option<String> = opt "topic",
    }
}

header! {
    /// DELETE_SUBSCRIPTIONGROUP (207).
    pub struct DeleteSubscriptionGroupHeader {
        group_name: String = req "groupName",
        remove_offset: bool = def "removeOffset",
    }
}

header! {
    /// GET_CONSUMER_RUNNING_INFO (307).
    pub struct GetConsumerRunningInfoHeader {
        consumer_group: String = req "consumerGroup",
        client_id: String = req "clientId",
        jstack_enable: bool = def "jstackEnable",
    }
}

header! {
    /// CONSUME_MESSAGE_DIRECTLY (309).
    pub struct ConsumeMessageDirectlyHeader {
        consumer_group: String = req "consumerGroup",
        client_id: Option<String> = opt "clientId",
        msg_id: Option<String> = opt "msgId",
        broker_name: Option<String> = opt "brokerName",
    }
}

// ---------------------------------------------------------------------------
// Topics

header! {
    /// `topic` only: DELETE_TOPIC_IN_BROKER (215), GET_TOPIC_STATS_INFO (202),
    /// QUERY_TOPIC_CONSUME_BY_WHO (300).
    pub struct TopicHeader {
        topic: String = req "topic",
    }
}

pub type DeleteTopicHeader = TopicHeader;
pub type GetTopicStatsInfoHeader = TopicHeader;
pub type QueryTopicConsumeByWhoHeader = TopicHeader;

header! {
    /// UPDATE_AND_CREATE_TOPIC (17).
    pub struct CreateTopicHeader {
        topic: String = req "topic",
        default_topic: String = req "defaultTopic",
        read_queue_nums: i32 = req "readQueueNums",
        write_queue_nums: i32 = req "writeQueueNums",
        perm: i32 = req "perm",
        topic_filter_type: String = req "topicFilterType",
        topic_sys_flag: Option<i32> = opt "topicSysFlag",
        order: bool = req "order",
    }
}

header! {
    /// GET_ROUTEINFO_BY_TOPIC (105).
    pub struct GetRouteInfoHeader {
        topic: String = req "topic",
        accept_standard_json_only: Option<bool> = opt "acceptStandardJsonOnly",
    }
}

header! {
    /// DELETE_TOPIC_IN_NAMESRV (216); no cluster = every cluster.
    pub struct DeleteTopicFromNamesrvHeader {
        topic: String = req "topic",
        cluster_name: Option<String> = opt "clusterName",
    }
}

header! {
    /// GET_TOPICS_BY_CLUSTER (224).
    pub struct GetTopicsByClusterHeader {
        cluster: String = req "cluster",
    }
}

// ---------------------------------------------------------------------------
// Nameserver

header! {
    /// REGISTER_BROKER (103).
    pub struct RegisterBrokerHeader {
        broker_name: String = req "brokerName",
        broker_addr: String = req "brokerAddr",
        cluster_name: String = req "clusterName",
        ha_server_addr: String = req "haServerAddr",
        broker_id: i64 = req "brokerId",
        compressed: bool = def "compressed",
        body_crc32: i32 = def "bodyCrc32",
    }
}

header! {
    /// REGISTER_BROKER response header (slave registrations only).
    pub struct RegisterBrokerResponseHeader {
        ha_server_addr: Option<String> = opt "haServerAddr",
        master_addr: Option<String> = opt "masterAddr",
    }
}

header! {
    /// UNREGISTER_BROKER (104) and QUERY_DATA_VERSION (322).
    pub struct BrokerIdentityHeader {
        broker_name: String = req "brokerName",
        broker_addr: String = req "brokerAddr",
        cluster_name: String = req "clusterName",
        broker_id: i64 = req "brokerId",
    }
}

pub type UnregisterBrokerHeader = BrokerIdentityHeader;
pub type QueryDataVersionHeader = BrokerIdentityHeader;

header! {
    /// QUERY_DATA_VERSION response header.
    pub struct QueryDataVersionResponseHeader {
        changed: bool = def "changed",
    }
}

header! {
    /// PUT_KV_CONFIG (100).
    pub struct PutKvConfigHeader {
        namespace: String = req "namespace",
        key: String = req "key",
        value: String = req "value",
    }
}

header! {
    /// GET_KV_CONFIG (101) and DELETE_KV_CONFIG (102).
    pub struct KvConfigKeyHeader {
        namespace: String = req "namespace",
        key: String = req "key",
    }
}

pub type GetKvConfigHeader = KvConfigKeyHeader;
pub type DeleteKvConfigHeader = KvConfigKeyHeader;

header! {
    /// GET_KV_CONFIG response header.
    pub struct GetKvConfigResponseHeader {
        value: Option<String> = opt "value",
    }
}

header! {
    /// GET_KVLIST_BY_NAMESPACE (219).
    pub struct GetKvListByNamespaceHeader {
        namespace: String = req "namespace",
    }
}

header! {
    /// WIPE_WRITE_PERM_OF_BROKER (205).
    pub struct WipeWritePermHeader {
        broker_name: String = req "brokerName",
    }
}

header! {
    /// VIEW_BROKER_STATS_DATA (315).
    pub struct ViewBrokerStatsDataHeader {
        stats_name: String = req "statsName",
        stats_key: String = req "statsKey",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> ExtFields {
        let mut f = ExtFields::new();
        for (k, v) in pairs {
            f.insert(*k, *v);
        }
        f
    }

    #[test]
    fn send_v2_and_v1_map_to_one_struct() {
        // From producer.jsonl (SEND_MESSAGE_V2, no `l`).
        let v2 = fields(&[
            ("a", "GoldenProducerGroup"),
            ("b", "GoldenTopic"),
            ("c", "TBW102"),
            ("d", "4"),
            ("e", "1"),
            ("f", "0"),
            ("g", "1795528590000"),
            ("h", "0"),
            (
                "i",
                "KEYS\u{1}golden-key-1\u{2}WAIT\u{1}true\u{2}TAGS\u{1}TagA",
            ),
            ("j", "0"),
            ("k", "false"),
            ("m", "false"),
        ]);
        let mut cmd = RemotingCommand::request(request::SEND_MESSAGE_V2, 3);
        cmd.ext_fields = Some(v2.clone());
        let h = SendMessageHeader::from_request(&cmd).unwrap();
        assert_eq!(h.producer_group, "GoldenProducerGroup");
        assert_eq!(h.default_topic_queue_nums, 4);
        assert_eq!(h.born_timestamp, 1_795_528_590_000);
        assert_eq!(h.max_reconsume_times, None);
        assert!(!h.batch);
        assert_eq!(h.to_fields_v2().get("i"), v2.get("i"));
        let long = h.to_fields();
        assert_eq!(long.get("producerGroup"), Some("GoldenProducerGroup"));
        let mut cmd10 = RemotingCommand::request(request::SEND_MESSAGE, 4);
        cmd10.ext_fields = Some(long);
        assert_eq!(SendMessageHeader::from_request(&cmd10).unwrap(), h);
        // Batch uses the V2 keys too.
        cmd.code = request::SEND_BATCH_MESSAGE;
        assert_eq!(SendMessageHeader::from_request(&cmd).unwrap(), h);
    }

    #[test]
    fn missing_and_bad_numbers() {
        let f = fields(&[("topic", "T")]);
        let e = TopicQueueHeader::from_fields(&f).unwrap_err();
        assert_eq!(e, HeaderError::Missing("queueId"));
        assert_eq!(e.to_string(), "the custom field <queueId> is null");
        let f = fields(&[("topic", "T"), ("queueId", "x1")]);
        let e = TopicQueueHeader::from_fields(&f).unwrap_err();
        assert_eq!(
            e,
            HeaderError::BadNumber {
                key: "queueId",
                value: "x1".into()
            }
        );
        assert!(e.to_string().contains("queueId"));
        let cmd = RemotingCommand::request(request::PULL_MESSAGE, 1);
        assert_eq!(
            PullMessageHeader::from_command(&cmd),
            Err(HeaderError::Missing("consumerGroup"))
        );
        let cmd = RemotingCommand::request(request::SEND_MESSAGE_V2, 1).with_field("a", "g");
        assert_eq!(
            SendMessageHeader::from_request(&cmd),
            Err(HeaderError::Missing("b"))
        );
    }

    #[test]
    fn defaults_booleans_and_round_trip() {
        let f = fields(&[
            ("brokerName", "broker-a"),
            ("brokerAddr", "127.0.0.1:20961"),
            ("clusterName", "DefaultCluster"),
            ("haServerAddr", "192.0.2.2:20962"),
            ("brokerId", "0"),
            ("compressed", "FALSE"),
            ("extra", "ignored"),
        ]);
        let h = RegisterBrokerHeader::from_fields(&f).unwrap();
        assert_eq!(h.body_crc32, 0);
        assert!(!h.compressed);
        assert_eq!(
            RegisterBrokerHeader::from_fields(&h.to_fields()).unwrap(),
            h
        );
        let c = CreateTopicHeader::from_fields(&fields(&[
            ("topic", "NewT"),
            ("defaultTopic", "TBW102"),
            ("readQueueNums", "8"),
            ("writeQueueNums", "8"),
            ("perm", "6"),
            ("topicFilterType", "SINGLE_TAG"),
            ("topicSysFlag", "0"),
            ("order", "True"),
        ]))
        .unwrap();
        assert!(c.order);
        assert_eq!(c.topic_sys_flag, Some(0));
        let pull = PullMessageResponseHeader {
            suggest_which_broker_id: 0,
            next_begin_offset: 5,
            min_offset: 0,
            max_offset: 5,
        };
        let f = pull.to_fields();
        assert_eq!(f.get("nextBeginOffset"), Some("5"));
        assert_eq!(PullMessageResponseHeader::from_fields(&f).unwrap(), pull);
        assert_eq!(opt_i64(&f, "nope").unwrap(), None);
        assert_eq!(req_str(&f, "maxOffset").unwrap(), "5");
    }
}
