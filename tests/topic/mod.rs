//! The UPDATE_AND_CREATE_TOPIC (17) header fields a test creates a topic with, shared by both
//! harnesses (`tests/common`, `tests/support`).
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
