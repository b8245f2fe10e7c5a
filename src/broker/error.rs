//! Broker errors and THE one translation point into RocketMQ response codes and remarks.

use crate::remoting::code::response;
use crate::remoting::RemotingCommand;
use crate::runtime::MeshError;
use crate::store::StoreError;

/// The FAQ suffix upstream appends to several remarks.
pub const FAQ_SUFFIX: &str = "\nSee http://rocketmq.apache.org/docs/faq/ for further details.";

/// Upstream 4.x's remark for MESSAGE_SIZE_EXCEEDED / PROPERTIES_SIZE_EXCEEDED.
pub const MESSAGE_ILLEGAL_REMARK: &str = "the message is illegal, maybe msg body or properties length not matched. msg body length limit 128k, msg properties length limit 32k.";

/// Start of the SERVICE_NOT_AVAILABLE remark of a store that refuses writes (upstream's
/// "service not available now, …" wording, then why).
pub const NOT_WRITABLE_REMARK: &str =
    "service not available now, the message store is not writable";

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A request header field is missing or malformed.
    #[error("{0}")]
    Header(String),
    #[error("topic[{0}] not exist, apply first please!{FAQ_SUFFIX}")]
    TopicNotExist(String),
    #[error("{0}")]
    NoPermission(String),
    #[error("{0}")]
    System(String),
    #[error("{0}")]
    MessageIllegal(String),
    #[error("{0}")]
    ServiceNotAvailable(String),
    #[error("subscription group [{0}] does not exist, {FAQ_SUFFIX}")]
    SubscriptionGroupNotExist(String),
    #[error("the consumer's subscription not exist, group: {group} topic: {topic}")]
    SubscriptionNotExist { group: String, topic: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal: {0}")]
    Mesh(#[from] MeshError),
}

impl BrokerError {
    fn code(&self) -> i32 {
        match self {
            BrokerError::Header(_) | BrokerError::System(_) | BrokerError::Mesh(_) => {
                response::SYSTEM_ERROR
            }
            BrokerError::TopicNotExist(_) => response::TOPIC_NOT_EXIST,
            BrokerError::NoPermission(_) => response::NO_PERMISSION,
            BrokerError::MessageIllegal(_) => response::MESSAGE_ILLEGAL,
            BrokerError::ServiceNotAvailable(_) => response::SERVICE_NOT_AVAILABLE,
            BrokerError::SubscriptionGroupNotExist(_) => response::SUBSCRIPTION_GROUP_NOT_EXIST,
            BrokerError::SubscriptionNotExist { .. } => response::SUBSCRIPTION_NOT_EXIST,
            BrokerError::Store(e) => store_code(e),
        }
    }

    /// The response a client gets for this error.
    pub fn into_response(self, request: &RemotingCommand) -> RemotingCommand {
        let code = self.code();
        let remark = match &self {
            // Upstream's remark for an oversized record, then what exactly was too big.
            BrokerError::Store(StoreError::MessageIllegal(detail)) => {
                format!("{MESSAGE_ILLEGAL_REMARK} ({detail})")
            }
            // The batch whose write or fdatasync failed: SYSTEM_ERROR naming op, file, OS error.
            BrokerError::Store(e @ StoreError::Io { .. }) => format!(
                "store I/O error, message not stored: {e}; the store stops taking writes until restart"
            ),
            // Every later send: upstream's SERVICE_NOT_AVAILABLE, with the reason.
            BrokerError::Store(StoreError::NotWritable(reason)) => {
                format!("{NOT_WRITABLE_REMARK}: the store stopped taking writes after an I/O error ({reason}); restart the broker once the disk is fixed")
            }
            _ => self.to_string(),
        };
        RemotingCommand::response_to(request, code).with_remark(remark)
    }
}

fn store_code(e: &StoreError) -> i32 {
    match e {
        StoreError::MessageIllegal(_) => response::MESSAGE_ILLEGAL,
        StoreError::NotWritable(_) => response::SERVICE_NOT_AVAILABLE,
        // The remark is upstream's "service not available now, maybe disk full, ..." text.
        StoreError::DiskFull { .. } => response::SERVICE_NOT_AVAILABLE,
        // Upstream's fast failure answers queued sends with SYSTEM_BUSY.
        StoreError::Busy { .. } => response::SYSTEM_BUSY,
        _ => response::SYSTEM_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn store_io_errors_answer_system_error_then_not_available() {
        let req = RemotingCommand::request(310, 0);
        let io = StoreError::Io {
            op: "fdatasync",
            path: "/s/commitlog/0/00000000000000000000".into(),
            source: Arc::new(std::io::Error::other("EIO")),
        };
        let r = BrokerError::Store(io.clone()).into_response(&req);
        assert_eq!(r.code, response::SYSTEM_ERROR);
        let remark = r.remark.unwrap_or_default();
        assert!(
            remark.contains("fdatasync /s/commitlog/0/00000000000000000000: EIO"),
            "{remark}"
        );
        let r = BrokerError::Store(StoreError::NotWritable(io.to_string())).into_response(&req);
        assert_eq!(r.code, response::SERVICE_NOT_AVAILABLE);
        let remark = r.remark.unwrap_or_default();
        assert!(remark.starts_with(NOT_WRITABLE_REMARK), "{remark}");
        assert!(remark.contains("fdatasync"), "{remark}");
    }

    #[test]
    fn a_busy_store_answers_system_busy_with_upstreams_remark() {
        let req = RemotingCommand::request(310, 0);
        let busy = StoreError::Busy {
            waited_ms: 1200,
            batches: 3,
            why: "the oldest batch waiting to be written has waited over osPageCacheBusyTimeOutMills=1000 ms".into(),
        };
        let r = BrokerError::Store(busy).into_response(&req);
        assert_eq!(r.code, response::SYSTEM_BUSY);
        let remark = r.remark.unwrap_or_default();
        assert!(
            remark.starts_with(
                "[PCBUSY_CLEAN_QUEUE]broker busy, start flow control for a while, period in queue: 1200ms, size of queue: 3 ("
            ),
            "{remark}"
        );
        assert!(
            remark.contains("osPageCacheBusyTimeOutMills=1000"),
            "{remark}"
        );
    }
}
