//! AMQP 0-9-1 (RabbitMQ) transport for batches between regions.
//!
//! lapin does not reconnect by itself and does not replay unconfirmed publishes, so both ends
//! here own their connection: on any connection or channel error they drop it, wait with
//! exponential backoff and jitter, connect again and re-declare their topology. What survives a
//! broken connection is decided by the caller: a publisher keeps an outbox and publishes again
//! whatever was not confirmed; a consumer acknowledges only after its work is committed, so an
//! unacknowledged message comes back and is recognised by its `message_id`.

mod consumer;
mod publisher;

pub use crate::backoff::Backoff;
pub use consumer::{declare_topology, Consumer, Incoming};
pub use publisher::{Outgoing, PublishError, Publisher};

/// The exchange, queues and routing of one region's inbound batches.
///
/// Batches go to a durable direct exchange with the receiving region's code as routing key.
/// Each region consumes its own durable queue; a batch it rejects is dead-lettered to its
/// dead-letter queue and stays there for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub exchange: String,
    pub queue: String,
    pub routing_key: String,
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
}

impl Topology {
    /// The topology through which `region` receives batches on `exchange`.
    pub fn for_region(exchange: &str, region: &str) -> Topology {
        Topology {
            exchange: exchange.to_owned(),
            queue: format!("{exchange}.{region}"),
            routing_key: region.to_owned(),
            dead_letter_exchange: format!("{exchange}.dead"),
            dead_letter_queue: format!("{exchange}.{region}.dead"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("AMQP broker {endpoint}: {source}")]
    Broker {
        endpoint: String,
        source: lapin::Error,
    },
    #[error("AMQP broker {endpoint}: no answer within {seconds} s")]
    Timeout { endpoint: String, seconds: u64 },
}

/// The broker's address without credentials, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// How long one step with the broker (connecting, setting up a consumer, an acknowledgement)
/// may take before the connection is taken for lost: on a connection the broker reset, some of
/// lapin's steps never complete.
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// `step` if it completes within [`ANSWER_TIMEOUT`], else a timeout naming `endpoint`.
async fn answered<T>(
    endpoint: &str,
    step: impl std::future::Future<Output = Result<T, AmqpError>>,
) -> Result<T, AmqpError> {
    tokio::time::timeout(ANSWER_TIMEOUT, step)
        .await
        .unwrap_or_else(|_| {
            Err(AmqpError::Timeout {
                endpoint: endpoint.to_owned(),
                seconds: ANSWER_TIMEOUT.as_secs(),
            })
        })
}

async fn connect(url: &str) -> Result<lapin::Connection, AmqpError> {
    let endpoint = redact(url);
    answered(&endpoint, async {
        lapin::Connection::connect(url, lapin::ConnectionProperties::default())
            .await
            .map_err(|source| AmqpError::Broker {
                endpoint: endpoint.clone(),
                source,
            })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_messages() {
        assert_eq!(
            redact("amqp://hub:s3cret@mq.example.gov:5671/%2f"),
            "amqp://mq.example.gov:5671/%2f"
        );
        assert_eq!(redact("amqp://127.0.0.1:5672"), "amqp://127.0.0.1:5672");
    }

    #[test]
    fn each_region_has_its_own_queue_and_dead_letter_queue() {
        let t = Topology::for_region("vitalhub.migrants", "410600");
        assert_eq!(t.queue, "vitalhub.migrants.410600");
        assert_eq!(t.routing_key, "410600");
        assert_eq!(t.dead_letter_exchange, "vitalhub.migrants.dead");
        assert_eq!(t.dead_letter_queue, "vitalhub.migrants.410600.dead");
    }
}
