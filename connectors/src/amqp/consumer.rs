//! Consuming a region's queue with manual acknowledgements and a bounded prefetch.

use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::Acker;
use lapin::{Channel, Connection, ExchangeKind};

use super::{answered, connect, redact, AmqpError, Backoff, Topology};

/// A delivered message. Acknowledge it only once what it carries is committed.
pub struct Incoming {
    pub message_id: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub redelivered: bool,
    acker: Acker,
    endpoint: String,
}

impl Incoming {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Done with: the broker forgets it. If the connection broke meanwhile this fails (or
    /// times out) and the broker delivers the message again.
    pub async fn ack(&self) -> Result<(), AmqpError> {
        self.answered(self.acker.ack(BasicAckOptions::default()))
            .await
    }

    /// Refused for good: the broker moves it to the queue's dead-letter queue.
    pub async fn dead_letter(&self) -> Result<(), AmqpError> {
        self.answered(self.acker.reject(BasicRejectOptions { requeue: false }))
            .await
    }

    async fn answered(
        &self,
        sent: impl std::future::Future<Output = lapin::Result<bool>>,
    ) -> Result<(), AmqpError> {
        answered(&self.endpoint, async {
            sent.await.map(|_| ()).map_err(|source| AmqpError::Broker {
                endpoint: self.endpoint.clone(),
                source,
            })
        })
        .await
    }
}

/// A consumer of one queue that reconnects by itself.
pub struct Consumer {
    url: String,
    topology: Topology,
    prefetch: u16,
    backoff: Backoff,
    state: Option<(Connection, Channel, lapin::Consumer)>,
    /// Connections made so far (the first included); a test reads it to see a reconnect.
    pub connections: u64,
}

impl Consumer {
    pub fn new(url: &str, topology: Topology, prefetch: u16) -> Consumer {
        Consumer {
            url: url.to_owned(),
            topology,
            prefetch: prefetch.max(1),
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(10)),
            state: None,
            connections: 0,
        }
    }

    /// Connects and declares everything this consumer relies on; declaring is idempotent, so
    /// it is done again after every reconnect (a broker that lost its state gets it back).
    async fn open(&mut self) -> Result<(), AmqpError> {
        let endpoint = redact(&self.url);
        let broker = |source| AmqpError::Broker {
            endpoint: endpoint.clone(),
            source,
        };
        let conn = connect(&self.url).await?;
        let channel = conn.create_channel().await.map_err(broker)?;
        declare(&channel, &self.topology, &endpoint).await?;
        let t = &self.topology;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await
            .map_err(broker)?;
        let consumer = channel
            .basic_consume(
                ShortString::from(t.queue.as_str()),
                ShortString::from(""),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(broker)?;
        self.connections += 1;
        self.state = Some((conn, channel, consumer));
        Ok(())
    }

    /// Drops the connection (an acknowledgement failed on it); the next call reconnects, and
    /// the broker delivers again what was not acknowledged.
    pub fn reconnect(&mut self) {
        self.state = None;
    }

    /// The next message. Connection trouble is handled here: it reconnects with backoff for as
    /// long as it takes. With `idle`, returns `None` once no message has come for that long
    /// while connected (time spent reconnecting does not count).
    pub async fn next(&mut self, idle: Option<Duration>) -> Option<Incoming> {
        let mut quiet_since = Instant::now();
        loop {
            if self.state.is_none() {
                let endpoint = redact(&self.url);
                match answered(&endpoint, self.open()).await {
                    Ok(()) => {
                        self.backoff.reset();
                        quiet_since = Instant::now();
                    }
                    Err(e) => {
                        let wait = self.backoff.next_delay();
                        tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64, "cannot consume; reconnecting");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                }
            }
            let (_, _, consumer) = self.state.as_mut()?;
            let next = match idle {
                Some(limit) => {
                    let left = limit.saturating_sub(quiet_since.elapsed());
                    match tokio::time::timeout(left, consumer.next()).await {
                        Ok(next) => next,
                        Err(_) => return None,
                    }
                }
                None => consumer.next().await,
            };
            match next {
                Some(Ok(delivery)) => {
                    return Some(Incoming {
                        message_id: delivery
                            .properties
                            .message_id()
                            .as_ref()
                            .map(|m| m.to_string()),
                        headers: headers(delivery.properties.headers().as_ref()),
                        body: delivery.data,
                        redelivered: delivery.redelivered,
                        acker: delivery.acker,
                        endpoint: redact(&self.url),
                    })
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "connection to the broker lost; reconnecting");
                    self.state = None;
                }
                None => {
                    tracing::warn!("the broker cancelled the consumer; reconnecting");
                    self.state = None;
                }
            }
        }
    }
}

/// Declares the exchanges, queues and bindings of `t` (idempotent).
pub(super) async fn declare(
    channel: &Channel,
    t: &Topology,
    endpoint: &str,
) -> Result<(), AmqpError> {
    let broker = |source| AmqpError::Broker {
        endpoint: endpoint.to_owned(),
        source,
    };
    let durable_exchange = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let durable_queue = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    for exchange in [&t.exchange, &t.dead_letter_exchange] {
        channel
            .exchange_declare(
                ShortString::from(exchange.as_str()),
                ExchangeKind::Direct,
                durable_exchange,
                FieldTable::default(),
            )
            .await
            .map_err(broker)?;
    }
    let mut arguments = FieldTable::default();
    arguments.insert(
        ShortString::from("x-dead-letter-exchange"),
        AMQPValue::LongString(t.dead_letter_exchange.as_str().into()),
    );
    channel
        .queue_declare(
            ShortString::from(t.queue.as_str()),
            durable_queue,
            arguments,
        )
        .await
        .map_err(broker)?;
    channel
        .queue_declare(
            ShortString::from(t.dead_letter_queue.as_str()),
            durable_queue,
            FieldTable::default(),
        )
        .await
        .map_err(broker)?;
    for (queue, exchange) in [
        (&t.queue, &t.exchange),
        (&t.dead_letter_queue, &t.dead_letter_exchange),
    ] {
        channel
            .queue_bind(
                ShortString::from(queue.as_str()),
                ShortString::from(exchange.as_str()),
                ShortString::from(t.routing_key.as_str()),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(broker)?;
    }
    Ok(())
}

/// Declares `topology` on the broker at `url`, so that messages published to it before any
/// consumer has started are kept rather than returned unroutable.
pub async fn declare_topology(url: &str, topology: &Topology) -> Result<(), AmqpError> {
    let endpoint = redact(url);
    let conn = connect(url).await?;
    let channel = conn
        .create_channel()
        .await
        .map_err(|source| AmqpError::Broker {
            endpoint: endpoint.clone(),
            source,
        })?;
    declare(&channel, topology, &endpoint).await?;
    let _ = conn.close(200, "declared".into()).await;
    Ok(())
}

fn headers(table: Option<&FieldTable>) -> Vec<(String, String)> {
    let Some(table) = table else {
        return Vec::new();
    };
    table
        .inner()
        .iter()
        .filter_map(|(name, value)| {
            let text = match value {
                AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                AMQPValue::ShortString(s) => s.to_string(),
                _ => return None,
            };
            Some((name.to_string(), text))
        })
        .collect()
}
