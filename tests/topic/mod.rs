//! The UPDATE_AND_CREATE_TOPIC (17) header fields a test creates a topic with, and the
//! SEND_MESSAGE (10) fields of a raw send, shared by both harnesses (`tests/common`,
//! `tests/support`).
#![allow(dead_code)]

/// Header fields for a read-write topic of `queues` read and write queues, from TBW102.
pub fn create_topic_fields<'a>(topic: &'a str, queues: &'a str) -> [(&'static str, &'a str); 8] {
    [
        ("topic", topic),
        ("defaultTopic", "TBW102"),
        ("readQueueNums", queues),
        ("writeQueueNums", queues),
        ("perm", "6"),
        ("topicFilterType", "SINGLE_TAG"),
        ("topicSysFlag", "0"),
        ("order", "false"),
    ]
}

/// SEND_MESSAGE (10) header fields of one message to `queue_id` (auto-creating the topic from
/// TBW102 with 4 queues), born at `born_ms`, with `properties` (name\u{1}value pairs joined by
/// \u{2}).
pub fn send_message_fields<'a>(
    group: &'a str,
    topic: &'a str,
    queue_id: &'a str,
    born_ms: &'a str,
    properties: &'a str,
) -> [(&'static str, &'a str); 11] {
    [
        ("producerGroup", group),
        ("topic", topic),
        ("defaultTopic", "TBW102"),
        ("defaultTopicQueueNums", "4"),
        ("queueId", queue_id),
        ("sysFlag", "0"),
        ("bornTimestamp", born_ms),
        ("flag", "0"),
        ("properties", properties),
        ("reconsumeTimes", "0"),
        ("unitMode", "false"),
    ]
}
