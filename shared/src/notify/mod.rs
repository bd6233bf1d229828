//! The delivery port: one-time codes and security notices to a contact. Email
//! goes through SES v2; each channel is one adapter behind [`Courier`].

mod message;
mod ses;

pub use message::{Message, Notice};

use crate::domain::{Channel, Contact};

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("no delivery route for the {0} channel")]
    Unsupported(Channel),
    /// The provider refused or failed; the detail is for logs only.
    #[error("provider: {0}")]
    Provider(String),
}

/// Sends messages to contacts, whatever their channel.
#[derive(Clone, Debug)]
pub struct Courier {
    email: ses::Ses,
}

impl Courier {
    pub fn new(ses: aws_sdk_sesv2::Client, sender: impl Into<String>) -> Courier {
        Courier {
            email: ses::Ses::new(ses, sender.into()),
        }
    }

    pub async fn deliver(&self, to: &Contact, message: &Message<'_>) -> Result<(), DeliveryError> {
        match to.channel() {
            Channel::Email => self.email.send(to.value(), message).await,
            Channel::Phone => Err(DeliveryError::Unsupported(Channel::Phone)),
        }
    }
}
