//! The delivery port: one-time codes and security notices to a contact. Email
//! goes through SES v2, SMS through SNS; each channel is one adapter behind
//! [`Courier`].

mod message;
mod ses;
mod sns;

pub use message::{support_reference, Message, Notice};

use crate::domain::{Channel, Contact, SmsRule};

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The provider refused or failed. Holds the failure's kind and error
    /// code only: provider messages can quote the recipient, and this ends
    /// up in logs.
    #[error("provider: {0}")]
    Provider(String),
    /// Not sent: the destination is outside what the service sends to.
    #[error("refused: {0}")]
    Refused(&'static str),
}

impl DeliveryError {
    fn from_sdk<E, R>(e: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> DeliveryError
    where
        E: aws_sdk_sesv2::error::ProvideErrorMetadata,
    {
        use aws_smithy_runtime_api::client::result::SdkError;
        DeliveryError::Provider(match e {
            SdkError::ServiceError(se) => {
                format!("service error {}", se.err().code().unwrap_or("unknown"))
            }
            SdkError::TimeoutError(_) => "timeout".into(),
            SdkError::DispatchFailure(_) => "dispatch failure".into(),
            SdkError::ResponseError(_) => "unreadable response".into(),
            SdkError::ConstructionFailure(_) => "request construction failure".into(),
            _ => "unknown failure".into(),
        })
    }
}

/// Sends messages to contacts, whatever their channel.
#[derive(Clone, Debug)]
pub struct Courier {
    email: ses::Ses,
    sms: sns::Sns,
}

impl Courier {
    /// `sender`: the SES identity mail comes from; `sms_sender_id`: the
    /// alphanumeric sender id where the destination country supports one.
    pub fn new(
        ses: aws_sdk_sesv2::Client,
        sender: impl Into<String>,
        sns: aws_sdk_sns::Client,
        sms_sender_id: Option<String>,
    ) -> Courier {
        Courier {
            email: ses::Ses::new(ses, sender.into()),
            sms: sns::Sns::new(sns, sms_sender_id, SmsRule::default()),
        }
    }

    /// The numbers SMS may go to (the configured [`SmsRule`]); by default
    /// [`SmsRule::default`]. The steps refuse other numbers with a clear
    /// answer before anything is taken or sent; the courier refuses them too,
    /// so no path to SNS, present or future, can send a code or a notice to
    /// a premium-rate number or an unchosen country.
    pub fn with_sms_rule(self, rule: SmsRule) -> Courier {
        Courier {
            sms: self.sms.with_rule(rule),
            ..self
        }
    }

    pub async fn deliver(&self, to: &Contact, message: &Message<'_>) -> Result<(), DeliveryError> {
        match to.channel() {
            Channel::Email => self.email.send(to.value(), message).await,
            Channel::Phone => self.sms.send(to.value(), message).await,
        }
    }
}
