//! OpenMessaging Benchmark workload files (YAML, OMB's field names). Fields mqbench has no use
//! for (payloadFile, keyDistributor, consumerBacklogSizeGB, ...) are accepted and ignored.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Workload {
    pub name: Option<String>,
    pub topics: Option<u32>,
    pub partitions_per_topic: Option<u32>,
    pub message_size: Option<usize>,
    pub subscriptions_per_topic: Option<u32>,
    pub producers_per_topic: Option<u32>,
    pub consumer_per_subscription: Option<u32>,
    pub producer_rate: Option<f64>,
    pub test_duration_minutes: Option<f64>,
    pub warmup_duration_minutes: Option<f64>,
    pub key_distributor: Option<String>,
    pub payload_file: Option<String>,
    pub consumer_backlog_size_gb: Option<f64>,
}

pub fn parse(text: &str) -> Result<Workload, String> {
    serde_yaml::from_str(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_omb_workload() {
        let w = parse(
            "name: 1 topic / 16 partitions / 1kb\n\ntopics: 1\npartitionsPerTopic: 16\nkeyDistributor: \"NO_KEY\"\nmessageSize: 1024\npayloadFile: \"payload/payload-1Kb.data\"\nsubscriptionsPerTopic: 1\nconsumerPerSubscription: 1\nproducersPerTopic: 1\nproducerRate: 50000\nconsumerBacklogSizeGB: 0\ntestDurationMinutes: 15\n",
        )
        .unwrap();
        assert_eq!(w.partitions_per_topic, Some(16));
        assert_eq!(w.message_size, Some(1024));
        assert_eq!(w.producer_rate, Some(50000.0));
        assert_eq!(w.test_duration_minutes, Some(15.0));
    }
}
