//! The invocation the relay function receives from the table's stream (the
//! Lambda event source mapping's `DynamoDBEvent`) and the answer it gives
//! (`ReportBatchItemFailures`). Only the fields the relay reads are typed:
//! it takes the outbox item's key from a record and reads the item itself,
//! so it always sees the deliveries recorded so far.

use serde::{Deserialize, Serialize};

use crate::store::outbox::outbox_migration_id;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "Records", default)]
    pub records: Vec<StreamRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamRecord {
    #[serde(rename = "eventID")]
    pub event_id: String,
    /// `INSERT`, `MODIFY` or `REMOVE`.
    #[serde(rename = "eventName")]
    pub event_name: String,
    #[serde(rename = "eventSource", default)]
    pub event_source: String,
    #[serde(rename = "eventSourceARN", default)]
    pub event_source_arn: String,
    pub dynamodb: StreamChange,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamChange {
    /// The item's key in DynamoDB JSON (`{"pk": {"S": "..."}, ...}`).
    #[serde(rename = "Keys")]
    pub keys: serde_json::Value,
    #[serde(rename = "SequenceNumber")]
    pub sequence_number: String,
    /// Seconds since the epoch, when the change was written.
    #[serde(
        rename = "ApproximateCreationDateTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub approximate_creation_date_time: Option<f64>,
    #[serde(rename = "NewImage", default, skip_serializing_if = "Option::is_none")]
    pub new_image: Option<serde_json::Value>,
    #[serde(
        rename = "StreamViewType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stream_view_type: Option<String>,
}

impl StreamRecord {
    /// The migration whose outbox this record inserted; `None` for any other
    /// change (the event source mapping's filter passes only these, and the
    /// handler checks again).
    pub fn inserted_outbox(&self) -> Option<&str> {
        if self.event_name != "INSERT" {
            return None;
        }
        self.dynamodb.keys["pk"]["S"]
            .as_str()
            .and_then(outbox_migration_id)
    }
}

/// `ReportBatchItemFailures`: the records to retry, by sequence number.
/// Lambda retries from the first one; the ones after it come again too, and
/// find their deliveries recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<BatchItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(event_name: &str, pk: &str) -> StreamRecord {
        serde_json::from_value(serde_json::json!({
            "eventID": "1",
            "eventName": event_name,
            "eventSource": "aws:dynamodb",
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/t/stream/x",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "Keys": {"pk": {"S": pk}, "sk": {"S": "OUTBOX"}},
                "SequenceNumber": "100",
                "ApproximateCreationDateTime": 1.7e9,
                "StreamViewType": "NEW_AND_OLD_IMAGES"
            }
        }))
        .unwrap()
    }

    #[test]
    fn only_the_insertion_of_an_outbox_item_is_delivered() {
        assert_eq!(record("INSERT", "OUTBOX#m1").inserted_outbox(), Some("m1"));
        assert_eq!(record("MODIFY", "OUTBOX#m1").inserted_outbox(), None);
        assert_eq!(record("REMOVE", "OUTBOX#m1").inserted_outbox(), None);
        assert_eq!(record("INSERT", "ACCOUNT#a").inserted_outbox(), None);
    }

    #[test]
    fn the_answer_is_lambdas_batch_item_failures() {
        let answer = BatchResponse {
            batch_item_failures: vec![BatchItemFailure {
                item_identifier: "100".into(),
            }],
        };
        assert_eq!(
            serde_json::to_value(answer).unwrap(),
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "100"}]})
        );
    }
}
