//! Publishing with publisher confirms and mandatory routing.

use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ExchangeKind};

use super::{connect, redact, AmqpError, Backoff};

/// One message to publish. `message_id` lets the receiver recognise a message sent twice.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub message_id: String,
    pub routing_key: String,
    pub body: Vec<u8>,
    pub content_type: String,
    /// Application headers, sent as AMQP long strings.
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The broker has no queue bound for the routing key: the partner has not declared its
    /// queue yet. Publishing again later is right; publishing again now is not.
    #[error("no queue on exchange {exchange} takes routing key {routing_key} (has the partner set up its queue?)")]
    Unroutable {
        exchange: String,
        routing_key: String,
    },
    #[error("the broker refused message {message_id} (nack)")]
    Nacked { message_id: String },
    #[error(transparent)]
    Connection(#[from] AmqpError),
}

impl PublishError {
    /// Whether a reconnect may cure it.
    pub fn is_connection(&self) -> bool {
        matches!(self, PublishError::Connection(_))
    }
}

pub struct Publisher {
    url: String,
    exchange: String,
    confirm_timeout: Duration,
    state: Option<(Connection, Channel)>,
}

impl Publisher {
    pub fn new(url: &str, exchange: &str) -> Publisher {
        Publisher {
            url: url.to_owned(),
            exchange: exchange.to_owned(),
            confirm_timeout: Duration::from_secs(30),
            state: None,
        }
    }

    fn endpoint(&self) -> String {
        redact(&self.url)
    }

    async fn channel(&mut self) -> Result<Channel, AmqpError> {
        if let Some((conn, channel)) = &self.state {
            if conn.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        self.state = None;
        let endpoint = self.endpoint();
        let broker = |source| AmqpError::Broker {
            endpoint: endpoint.clone(),
            source,
        };
        let conn = connect(&self.url).await?;
        let channel = conn.create_channel().await.map_err(broker)?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(broker)?;
        channel
            .exchange_declare(
                ShortString::from(self.exchange.as_str()),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(broker)?;
        self.state = Some((conn, channel.clone()));
        Ok(channel)
    }

    /// Publishes once and waits for the broker's confirm. A message is persistent and
    /// mandatory: it is confirmed only when a durable queue has taken it.
    pub async fn publish(&mut self, message: &Outgoing) -> Result<(), PublishError> {
        let result = self.try_publish(message).await;
        if let Err(PublishError::Connection(_)) = &result {
            // The connection may be half dead; the next attempt starts a new one.
            self.state = None;
        }
        result
    }

    async fn try_publish(&mut self, message: &Outgoing) -> Result<(), PublishError> {
        let channel = self.channel().await?;
        let endpoint = self.endpoint();
        let broker = |source| AmqpError::Broker {
            endpoint: endpoint.clone(),
            source,
        };
        let mut headers = FieldTable::default();
        for (name, value) in &message.headers {
            headers.insert(
                ShortString::from(name.as_str()),
                AMQPValue::LongString(LongString::from(value.as_bytes())),
            );
        }
        let properties = BasicProperties::default()
            .with_message_id(ShortString::from(message.message_id.as_str()))
            .with_content_type(ShortString::from(message.content_type.as_str()))
            .with_app_id(ShortString::from("vitalhub"))
            .with_delivery_mode(2)
            .with_headers(headers);
        let confirm = channel
            .basic_publish(
                ShortString::from(self.exchange.as_str()),
                ShortString::from(message.routing_key.as_str()),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &message.body,
                properties,
            )
            .await
            .map_err(broker)?;
        let confirmation = match tokio::time::timeout(self.confirm_timeout, confirm).await {
            Ok(result) => result.map_err(broker)?,
            Err(_) => {
                return Err(AmqpError::Timeout {
                    endpoint,
                    seconds: self.confirm_timeout.as_secs(),
                }
                .into())
            }
        };
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => Err(PublishError::Unroutable {
                exchange: self.exchange.clone(),
                routing_key: message.routing_key.clone(),
            }),
            Confirmation::Nack(_) => Err(PublishError::Nacked {
                message_id: message.message_id.clone(),
            }),
            // confirm_select is always on, so this would mean the broker ignored it.
            Confirmation::NotRequested => Err(PublishError::Nacked {
                message_id: message.message_id.clone(),
            }),
        }
    }

    /// Publishes, reconnecting with backoff on connection errors for up to `patience`.
    /// Other errors are returned at once.
    pub async fn publish_patiently(
        &mut self,
        message: &Outgoing,
        backoff: &mut Backoff,
        patience: Duration,
    ) -> Result<(), PublishError> {
        let started = Instant::now();
        loop {
            match self.publish(message).await {
                Ok(()) => {
                    backoff.reset();
                    return Ok(());
                }
                Err(e) if e.is_connection() && started.elapsed() < patience => {
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64, "publish failed; reconnecting");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
