use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{DeliveryError, Message};
use crate::domain::sms::{SmsRefusal, SmsRule};

/// The CloudWatch namespace of the service's own metrics.
pub const METRICS_NAMESPACE: &str = "ContactMigration";

/// SMS through SNS `Publish` to a phone number, as transactional messages
/// (delivery priority over cost, as one-time codes need).
#[derive(Clone, Debug)]
pub struct Sns {
    client: Client,
    sender_id: Option<String>,
    rule: SmsRule,
}

fn attribute(value: &str) -> Result<MessageAttributeValue, DeliveryError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| DeliveryError::Provider(e.to_string()))
}

impl Sns {
    pub fn new(client: Client, sender_id: Option<String>, rule: SmsRule) -> Sns {
        Sns {
            client,
            sender_id,
            rule,
        }
    }

    pub fn with_rule(self, rule: SmsRule) -> Sns {
        Sns { rule, ..self }
    }

    pub async fn send(&self, to: &str, message: &Message<'_>) -> Result<(), DeliveryError> {
        self.rule.check(to).map_err(|refusal| {
            DeliveryError::Refused(match refusal {
                SmsRefusal::NotAPhoneNumber => "not a phone number",
                SmsRefusal::NotMobile => "not a mobile number",
                SmsRefusal::CountryNotAllowed => "a country SMS may not go to",
            })
        })?;
        let mut publish = self
            .client
            .publish()
            .phone_number(to)
            .message(message.render().sms)
            .message_attributes("AWS.SNS.SMS.SMSType", attribute("Transactional")?);
        if let Some(sender_id) = &self.sender_id {
            publish = publish.message_attributes("AWS.SNS.SMS.SenderID", attribute(sender_id)?);
        }
        publish
            .send()
            .await
            .map_err(|e| DeliveryError::from_sdk(&e))?;
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        // A metric, not a log event: a failed write to stdout must not turn
        // a delivered code into an error.
        let _ = writeln!(std::io::stdout().lock(), "{}", sms_sent_metric(to, at));
        Ok(())
    }
}

/// One CloudWatch embedded-metric-format line: `SmsSent` = 1 in
/// [`METRICS_NAMESPACE`], with no dimension (the alarm on SMS per hour
/// watches the total), and the destination's country as a property for
/// whoever investigates a spike. Never the number `to` itself.
pub fn sms_sent_metric(to: &str, at_millis: u128) -> String {
    let country = phonenumber::parse(None, to)
        .ok()
        .and_then(|number| number.country().id())
        .map_or_else(|| "unknown".to_owned(), |id| id.as_ref().to_owned());
    serde_json::json!({
        "_aws": {
            "Timestamp": at_millis as u64,
            "CloudWatchMetrics": [{
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": [[]],
                "Metrics": [{"Name": "SmsSent", "Unit": "Count"}],
            }],
        },
        "SmsSent": 1,
        "country": country,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sms_metric_line_is_embedded_metric_format_without_the_number() {
        let to = "+447400123456";
        let line = sms_sent_metric(to, 1_700_000_000_123);
        assert!(!line.contains('\n'), "one line");
        for digits in [to, "7400123456", "400123456", "123456"] {
            assert!(!line.contains(digits), "{line} holds {digits}");
        }
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_123u64);
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "ContactMigration");
        assert_eq!(directive["Metrics"][0]["Name"], "SmsSent");
        assert_eq!(directive["Metrics"][0]["Unit"], "Count");
        assert_eq!(directive["Dimensions"], serde_json::json!([[]]));
        assert_eq!(v["SmsSent"], 1);
        assert_eq!(v["country"], "GB");
    }
}
