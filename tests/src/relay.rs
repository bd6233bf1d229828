//! The relay in the tests: the relay function's handler over a stack's
//! table, fed by the local stream poller (what `make dev` runs), publishing
//! to an event bus of the stack's own on moto, with a rule that copies every
//! event to a queue of its own, so each test reads exactly its own events.

use aws_sdk_eventbridge::types::Target;
use contact_migration::relay::local::{Poll, StreamPoller};
use contact_migration::relay::{EventBus, Relay};
use serde_json::Value;
use std::sync::Mutex;
use std::time::Duration;

use crate::{env_or, local_config};

fn moto_endpoint() -> String {
    env_or("AWS_ENDPOINT_URL_EVENTBRIDGE", "http://127.0.0.1:8006")
}

/// A bus and the queue its rule copies every event to.
pub struct EventSink {
    pub bus: String,
    pub eventbridge: aws_sdk_eventbridge::Client,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    /// The EventBridge envelopes received so far, in arrival order.
    received: Mutex<Vec<Value>>,
}

impl EventSink {
    pub async fn new(name: &str) -> EventSink {
        let aws = local_config().await;
        let eventbridge = aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::config::Builder::from(&aws)
                .endpoint_url(moto_endpoint())
                .build(),
        );
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&aws)
                .endpoint_url(env_or("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:8006"))
                .build(),
        );
        let queue_url = sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .expect("moto serves SQS (make test starts it)")
            .queue_url
            .expect("a queue url");
        let queue_arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}");
        eventbridge
            .create_event_bus()
            .name(name)
            .send()
            .await
            .expect("moto serves EventBridge");
        eventbridge
            .put_rule()
            .name(name)
            .event_bus_name(name)
            .event_pattern(r#"{"source": ["contact-migration"]}"#)
            .send()
            .await
            .expect("a rule");
        eventbridge
            .put_targets()
            .rule(name)
            .event_bus_name(name)
            .targets(
                Target::builder()
                    .id("queue")
                    .arn(queue_arn)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("a target");
        EventSink {
            bus: name.to_owned(),
            eventbridge,
            sqs,
            queue_url,
            received: Mutex::new(Vec::new()),
        }
    }

    pub fn bus(&self) -> EventBus {
        EventBus::new(self.eventbridge.clone(), &self.bus)
    }

    /// Every event published to the bus so far (the CloudEvents, i.e. the
    /// envelopes' `detail`), in arrival order.
    pub async fn events(&self) -> Vec<Value> {
        self.envelopes()
            .await
            .into_iter()
            .map(|envelope| envelope["detail"].clone())
            .collect()
    }

    /// The EventBridge envelopes, as the queue received them.
    pub async fn envelopes(&self) -> Vec<Value> {
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("moto's queue answers");
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for message in messages {
                let body: Value =
                    serde_json::from_str(message.body().unwrap_or_default()).expect("JSON");
                self.received.lock().unwrap().push(body);
                if let Some(handle) = message.receipt_handle() {
                    let _ = self
                        .sqs
                        .delete_message()
                        .queue_url(&self.queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await;
                }
            }
        }
        self.received.lock().unwrap().clone()
    }
}

/// A stream poller of `relay`'s table.
pub async fn poller(relay: &Relay) -> StreamPoller {
    let aws = local_config().await;
    let streams = aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::config::Builder::from(&aws)
            .endpoint_url(crate::dynamodb_endpoint())
            .build(),
    );
    StreamPoller::new(relay.store.client(), streams, relay.store.table(), 100)
        .await
        .expect("the table has a stream")
}

/// Polls until a poll finds nothing new and nothing failing, or `rounds`
/// polls; answers the sum.
pub async fn drain(poller: &mut StreamPoller, relay: &Relay, rounds: usize) -> Poll {
    let mut total = Poll::default();
    for _ in 0..rounds {
        let poll = poller.poll(relay).await.expect("the stream reads");
        total.delivered += poll.delivered;
        total.failed += poll.failed;
        if poll.failed == 0 && poll.delivered == 0 {
            break;
        }
        if poll.failed > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    total
}
