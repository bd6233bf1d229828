//! What is sent, independent of how. Email texts put the code as the first
//! standalone 6-digit number of the text part, so people and tools find it.

use crate::domain::{CodeSide, Contact, OneTimeCode};

pub enum Message<'a> {
    Code {
        code: &'a OneTimeCode,
        side: CodeSide,
    },
    Notice(Notice),
}

/// Security notices, sent after a commit. They never carry a code.
#[derive(Debug, Clone)]
pub enum Notice {
    /// To the main account's previous contact and to the new one.
    ContactChanged {
        new_contact: Contact,
        migration_id: String,
    },
    /// As above, plus the closed duplicate.
    ContactMigrated {
        new_contact: Contact,
        migration_id: String,
    },
}

/// The "this wasn't you" reference support looks a migration up by: the
/// start of its id in groups of four, so it never reads as a 6-digit code.
pub fn support_reference(migration_id: &str) -> String {
    let hex: String = migration_id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(8)
        .collect::<String>()
        .to_ascii_uppercase();
    format!(
        "MIG-{}-{}",
        &hex[..hex.len().min(4)],
        &hex[hex.len().min(4)..]
    )
}

pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The short form for SMS: one segment where it can be.
    pub sms: String,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn html_of(text: &str) -> String {
    let paragraphs: String = text
        .split("\n\n")
        .map(|p| format!("<p>{}</p>", escape(p).replace('\n', "<br>")))
        .collect();
    format!("<!doctype html><html><body>{paragraphs}</body></html>")
}

impl Message<'_> {
    pub fn render(&self) -> Rendered {
        let sms = match self {
            Message::Code { code, .. } => format!(
                "{} is your verification code. It expires in 10 minutes. Never share it.",
                code.as_str()
            ),
            Message::Notice(Notice::ContactChanged {
                new_contact,
                migration_id,
            })
            | Message::Notice(Notice::ContactMigrated {
                new_contact,
                migration_id,
            }) => format!(
                "Security notice: your account's {} is now {}. Not you? Contact support, ref {}.",
                new_contact.channel(),
                new_contact.masked(),
                support_reference(migration_id)
            ),
        };
        let (subject, text) = match self {
            Message::Code { code, side } => {
                let (purpose, consequence) = match side {
                    CodeSide::NewContact => (
                        "to confirm you control this address and want it on your main account",
                        // The same words for every address: whether it is bound is
                        // never revealed before verification.
                        "\n\nIf another account uses this address, that account will be \
                         permanently closed when the move completes: it can never be reopened, \
                         and any assets left on it stay there.",
                    ),
                    CodeSide::CurrentContact => {
                        ("to confirm a change of contact on your account", "")
                    }
                };
                (
                    "Your verification code".to_owned(),
                    format!(
                        "{}\n\nUse this code {purpose}. It expires in 10 minutes and works once.{consequence}\n\n\
                         If you did not ask for it, ignore this message and consider changing your password. \
                         We will never ask you for this code.",
                        code.as_str()
                    ),
                )
            }
            Message::Notice(Notice::ContactChanged { new_contact, migration_id }) => (
                "Security notice: your contact was changed".to_owned(),
                format!(
                    "The {} on your account was changed to {}.\n\n\
                     If this wasn't you, contact support at once and quote reference {}.",
                    new_contact.channel(),
                    new_contact.masked(),
                    support_reference(migration_id)
                ),
            ),
            Message::Notice(Notice::ContactMigrated { new_contact, migration_id }) => (
                "Security notice: a contact was moved and an account closed".to_owned(),
                format!(
                    "The {} {} was moved to your main account, and the account that held it was closed permanently.\n\n\
                     If this wasn't you, contact support at once and quote reference {}.",
                    new_contact.channel(),
                    new_contact.masked(),
                    support_reference(migration_id)
                ),
            ),
        };
        Rendered {
            html: html_of(&text),
            subject,
            text,
            sms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Channel;

    fn first_six_digit_number(text: &str) -> Option<&str> {
        text.split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
    }

    #[test]
    fn code_email_text_starts_with_the_code() {
        let code = OneTimeCode::generate(&mut rand::rng());
        let rendered = Message::Code {
            code: &code,
            side: CodeSide::NewContact,
        }
        .render();
        assert_eq!(first_six_digit_number(&rendered.text), Some(code.as_str()));
        assert!(rendered.html.contains(code.as_str()));
    }

    #[test]
    fn code_sms_starts_with_the_code_and_fits_one_segment() {
        let code = OneTimeCode::generate(&mut rand::rng());
        let rendered = Message::Code {
            code: &code,
            side: CodeSide::CurrentContact,
        }
        .render();
        assert_eq!(first_six_digit_number(&rendered.sms), Some(code.as_str()));
        assert!(rendered.sms.len() <= 160);
    }

    #[test]
    fn notices_carry_no_code_and_a_support_reference() {
        let rendered = Message::Notice(Notice::ContactChanged {
            new_contact: Contact::from_canonical(Channel::Email, "new@example.com"),
            migration_id: "12345678-9012-4456-8890-123456789012".into(),
        })
        .render();
        assert!(rendered.text.contains("n***@example.com"));
        assert!(!rendered.text.contains("new@example.com"));
        assert!(rendered.text.contains("MIG-1234-5678"));
        assert!(first_six_digit_number(&rendered.text).is_none());
    }
}
