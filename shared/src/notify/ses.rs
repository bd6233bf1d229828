use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message as SesMessage};
use aws_sdk_sesv2::Client;

use super::{DeliveryError, Message};

#[derive(Clone, Debug)]
pub struct Ses {
    client: Client,
    sender: String,
}

fn content(data: String) -> Result<Content, DeliveryError> {
    Content::builder()
        .data(data)
        .charset("UTF-8")
        .build()
        .map_err(|e| DeliveryError::Provider(e.to_string()))
}

impl Ses {
    pub fn new(client: Client, sender: String) -> Ses {
        Ses { client, sender }
    }

    pub async fn send(&self, to: &str, message: &Message<'_>) -> Result<(), DeliveryError> {
        let rendered = message.render();
        let email = SesMessage::builder()
            .subject(content(rendered.subject)?)
            .body(
                Body::builder()
                    .text(content(rendered.text)?)
                    .html(content(rendered.html)?)
                    .build(),
            )
            .build();
        self.client
            .send_email()
            .from_email_address(&self.sender)
            .destination(Destination::builder().to_addresses(to).build())
            .content(EmailContent::builder().simple(email).build())
            .send()
            .await
            .map_err(|e| DeliveryError::from_sdk(&e))?;
        Ok(())
    }
}
