use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;

use super::{DeliveryError, Message};

/// SMS through SNS `Publish` to a phone number, as transactional messages
/// (delivery priority over cost, as one-time codes need).
#[derive(Clone, Debug)]
pub struct Sns {
    client: Client,
    sender_id: Option<String>,
}

fn attribute(value: &str) -> Result<MessageAttributeValue, DeliveryError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| DeliveryError::Provider(e.to_string()))
}

impl Sns {
    pub fn new(client: Client, sender_id: Option<String>) -> Sns {
        Sns { client, sender_id }
    }

    pub async fn send(&self, to: &str, message: &Message<'_>) -> Result<(), DeliveryError> {
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
        Ok(())
    }
}
