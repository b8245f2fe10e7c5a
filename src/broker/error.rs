//! Broker errors and THE one translation point into RocketMQ response codes and remarks.

use crate::remoting::code::response;
use crate::remoting::RemotingCommand;
use crate::runtime::MeshError;
use crate::store::StoreError;

/// The FAQ suffix upstream appends to several remarks.
pub const FAQ_SUFFIX: &str = "\nSee http://rocketmq.apache.org/docs/faq/ for further details.";

/// Upstream 4.x's remark for MESSAGE_SIZE_EXCEEDED / PROPERTIES_SIZE_EXCEEDED.
pub const MESSAGE_ILLEGAL_REMARK: &str = "the message is illegal, maybe msg body or properties length not matched. msg body length limit 128k, msg properties length limit 32k.";

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
        _ => response::SYSTEM_ERROR,
    }
}
