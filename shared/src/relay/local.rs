//! The local stand-in for Lambda's event source mapping: it reads the
//! table's stream (DynamoDB Local serves one), passes only what the
//! template's filter passes (the insertion of outbox items), builds the same
//! event Lambda would, calls the relay's handler, and moves each shard's
//! position past what the handler did not report as failed, as Lambda does
//! with `ReportBatchItemFailures`: a failed record comes again, with the
//! records after it. `make dev` runs it (`admin relay`); the tests call it.

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use aws_sdk_dynamodbstreams::Client;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};

use super::{Relay, StreamChange, StreamEvent, StreamRecord};

/// What one poll did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Poll {
    /// Outbox records handed to the handler and done with.
    pub delivered: usize,
    /// Outbox records the handler reported as failed (to come again).
    pub failed: usize,
}

pub struct StreamPoller {
    streams: Client,
    stream_arn: String,
    batch_size: i32,
    /// Per shard, the sequence number of the last record done with.
    positions: HashMap<String, String>,
    /// Closed shards read to their end.
    finished: HashSet<String>,
}

fn attribute_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(b) => json!({ "NULL": b }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::L(v) => json!({ "L": v.iter().map(attribute_json).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": image_json(m) }),
        // Outbox items hold no binary attributes; other items are filtered out.
        _ => Value::Null,
    }
}

fn image_json(item: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), attribute_json(v)))
            .collect::<Map<_, _>>(),
    )
}

/// The record as the event source mapping delivers it.
fn lambda_record(record: &Record, stream_arn: &str) -> Option<StreamRecord> {
    let change = record.dynamodb()?;
    Some(StreamRecord {
        event_id: record.event_id().unwrap_or_default().to_owned(),
        event_name: record.event_name()?.as_str().to_owned(),
        event_source: "aws:dynamodb".into(),
        event_source_arn: stream_arn.to_owned(),
        dynamodb: StreamChange {
            keys: image_json(change.keys.as_ref()?),
            sequence_number: change.sequence_number()?.to_owned(),
            approximate_creation_date_time: change
                .approximate_creation_date_time()
                .map(|t| t.as_secs_f64()),
            new_image: change.new_image.as_ref().map(image_json),
            stream_view_type: change.stream_view_type().map(|v| v.as_str().to_owned()),
        },
    })
}

impl StreamPoller {
    /// A poller of `table`'s stream, from its oldest record.
    pub async fn new(
        dynamodb: &aws_sdk_dynamodb::Client,
        streams: Client,
        table: &str,
        batch_size: i32,
    ) -> Result<StreamPoller, String> {
        let described = dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "describing {table}: {}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                )
            })?;
        let stream_arn = described
            .table()
            .and_then(|t| t.latest_stream_arn())
            .ok_or_else(|| format!("table {table} has no stream"))?
            .to_owned();
        Ok(StreamPoller {
            streams,
            stream_arn,
            batch_size,
            positions: HashMap::new(),
            finished: HashSet::new(),
        })
    }

    /// Records per handler call from now on (the mapping's `BatchSize`).
    pub fn with_batch_size(self, batch_size: i32) -> StreamPoller {
        StreamPoller { batch_size, ..self }
    }

    pub fn stream_arn(&self) -> &str {
        &self.stream_arn
    }

    async fn shards(&self) -> Result<Vec<String>, String> {
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let out = self
                .streams
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(start.clone())
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "describing the stream: {}",
                        aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e)
                    )
                })?;
            let Some(description) = out.stream_description else {
                break;
            };
            for shard in description.shards() {
                let first = shard
                    .sequence_number_range()
                    .and_then(|r| r.starting_sequence_number())
                    .unwrap_or_default();
                shards.push((
                    first.to_owned(),
                    shard.shard_id().unwrap_or_default().to_owned(),
                ));
            }
            start = description.last_evaluated_shard_id;
            if start.is_none() {
                break;
            }
        }
        // Parents hold older records than their children.
        shards.sort_by(|a, b| (a.0.len(), &a.0).cmp(&(b.0.len(), &b.0)));
        Ok(shards.into_iter().map(|(_, id)| id).collect())
    }

    /// Reads every shard to its current end (or its first failed record),
    /// handing the outbox records to `relay` in batches.
    pub async fn poll(&mut self, relay: &Relay) -> Result<Poll, String> {
        let mut poll = Poll::default();
        for shard in self.shards().await? {
            if self.finished.contains(&shard) {
                continue;
            }
            self.poll_shard(&shard, relay, &mut poll).await?;
        }
        Ok(poll)
    }

    async fn iterator(&self, shard: &str) -> Result<Option<String>, String> {
        let request = self
            .streams
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard);
        let request = match self.positions.get(shard) {
            Some(after) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(after),
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let out = request.send().await.map_err(|e| {
            format!(
                "shard iterator: {}",
                aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e)
            )
        })?;
        Ok(out.shard_iterator)
    }

    async fn poll_shard(
        &mut self,
        shard: &str,
        relay: &Relay,
        poll: &mut Poll,
    ) -> Result<(), String> {
        let mut iterator = self.iterator(shard).await?;
        while let Some(current) = iterator {
            let out = self
                .streams
                .get_records()
                .shard_iterator(current)
                .limit(self.batch_size)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "reading the stream: {}",
                        aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e)
                    )
                })?;
            iterator = out.next_shard_iterator.clone();
            let records: Vec<StreamRecord> = out
                .records()
                .iter()
                .filter_map(|r| lambda_record(r, &self.stream_arn))
                .collect();
            let Some(last) = records.last() else {
                if iterator.is_none() {
                    self.finished.insert(shard.to_owned());
                }
                return Ok(());
            };
            let last = last.dynamodb.sequence_number.clone();
            // The template's filter: only the insertion of outbox items.
            let passed: Vec<StreamRecord> = records
                .iter()
                .filter(|r| r.inserted_outbox().is_some())
                .cloned()
                .collect();
            if passed.is_empty() {
                self.positions.insert(shard.to_owned(), last);
                continue;
            }
            let count = passed.len();
            let answer = relay
                .handle(StreamEvent {
                    records: passed.clone(),
                })
                .await;
            let Some(first_failed) = answer.batch_item_failures.first() else {
                poll.delivered += count;
                self.positions.insert(shard.to_owned(), last);
                continue;
            };
            // Done up to the record before the first failure; from there on
            // everything comes again next time.
            let failed_at = passed
                .iter()
                .position(|r| r.dynamodb.sequence_number == first_failed.item_identifier)
                .unwrap_or(0);
            poll.delivered += failed_at;
            poll.failed += count - failed_at;
            let before = records
                .iter()
                .take_while(|r| r.dynamodb.sequence_number != first_failed.item_identifier)
                .last();
            if let Some(before) = before {
                self.positions
                    .insert(shard.to_owned(), before.dynamodb.sequence_number.clone());
            }
            return Ok(());
        }
        self.finished.insert(shard.to_owned());
        Ok(())
    }
}
