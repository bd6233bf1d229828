//! `POST /migrations` and `POST /migrations/{id}/resend`: codes to both sides.
//!
//! Start never looks at who owns the new contact: the work, the answer and
//! its timing are the same for a bound and a free contact (no enumeration).
//! Quotas are taken before anything is sent and given back if delivery
//! fails; codes are delivered before the migration is written, so a delivery
//! failure leaves nothing usable behind. The quotas bound what one account
//! can have sent to a contact and what all accounts together can send to a
//! new contact, never what an account receives at its own contact because
//! of others' requests.

use serde::Deserialize;

use super::MigrationView;
use crate::app::{App, Reservation};
use crate::domain::quota::{Quota, QuotaKind};
use crate::domain::{
    AuditEvent, Caller, Channel, CodeSide, Contact, Error, Migration, MigrationState, OneTimeCode,
    Step, Timestamp,
};
use crate::notify::Message;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    pub channel: Channel,
    pub new_contact: String,
}

/// A fresh pair of codes.
struct CodePair {
    new_contact: OneTimeCode,
    current_contact: OneTimeCode,
}

impl CodePair {
    fn generate() -> CodePair {
        let mut rng = rand::rng();
        CodePair {
            new_contact: OneTimeCode::generate(&mut rng),
            current_contact: OneTimeCode::generate(&mut rng),
        }
    }

    /// Sets the digests of these codes on `m`; the codes themselves are never stored.
    async fn store_digests(&self, app: &App, m: &mut Migration) -> Result<(), Error> {
        let key = app.code_key().await?;
        m.new_code_digest =
            Some(key.digest(&m.migration_id, CodeSide::NewContact, &self.new_contact));
        m.current_code_digest = Some(key.digest(
            &m.migration_id,
            CodeSide::CurrentContact,
            &self.current_contact,
        ));
        Ok(())
    }

    /// Delivers both codes, or gives the reservation back and answers
    /// `delivery_failed`.
    async fn deliver(
        &self,
        app: &App,
        m: &Migration,
        reservation: Reservation,
    ) -> Result<(), Error> {
        let sends = [
            (&m.new_contact, &self.new_contact, CodeSide::NewContact),
            (
                &m.current_contact,
                &self.current_contact,
                CodeSide::CurrentContact,
            ),
        ];
        let courier = match app.courier() {
            Ok(courier) => courier,
            Err(e) => {
                app.refund(reservation).await;
                return Err(e);
            }
        };
        for (to, code, side) in sends {
            if let Err(e) = courier.deliver(to, &Message::Code { code, side }).await {
                tracing::warn!(migration_id = %m.migration_id, ?side, channel = %to.channel(), error = %e, "code delivery failed");
                app.refund(reservation).await;
                return Err(Error::DeliveryFailed);
            }
        }
        Ok(())
    }
}

/// The send quotas of both recipients (see [`crate::domain::Policy::code_send_quotas`]).
fn send_quotas(app: &App, m: &Migration) -> Vec<(QuotaKind, String, Quota)> {
    app.policy
        .code_send_quotas(&m.account_id, &m.new_contact, &m.current_contact)
}

pub async fn start(
    app: &App,
    caller: &Caller,
    request: StartRequest,
    now: Timestamp,
) -> Result<MigrationView, Error> {
    let new_contact = Contact::parse(request.channel, &request.new_contact)?;
    // Before anything is read, taken or sent, and the same for a bound or
    // a free number: where SMS may go depends on the number alone.
    app.policy.sms.admits(&new_contact)?;
    let main = app
        .store
        .account(&caller.account_id)
        .await?
        .filter(|a| a.is_active())
        .ok_or(Error::AccountNotActive)?;
    if !main.has_totp() {
        return Err(Error::TwoFactorRequired);
    }
    if main.contact(request.channel) == Some(&new_contact) {
        return Err(Error::ContactAlreadyYours);
    }
    let current_contact = main
        .current_contact_for(request.channel)
        .cloned()
        .ok_or_else(|| {
            Error::InvalidRequest("the main account has no contact to send a code to".into())
        })?;

    let codes = CodePair::generate();
    let mut migration = Migration {
        migration_id: uuid::Uuid::new_v4().to_string(),
        account_id: main.account_id.clone(),
        channel: request.channel,
        new_contact,
        current_contact,
        state: MigrationState::CodesSent,
        created_at: now,
        codes_expire_at: now + app.policy.code_ttl,
        new_code_digest: None,
        current_code_digest: None,
        sends: 1,
        last_sent_at: now,
        failed_attempts: 0,
        duplicate_account_id: None,
        verified_at: None,
        confirm_by: None,
        duplicate_has_assets: None,
        duplicate_two_factor_required: None,
        previous_contact: None,
        duplicate_other_contact: None,
        completed_at: None,
        closed_account_id: None,
    };
    codes.store_digests(app, &mut migration).await?;

    let mut quotas = vec![(
        QuotaKind::Starts,
        main.account_id.clone(),
        app.policy.starts_per_account,
    )];
    quotas.extend(send_quotas(app, &migration));
    let reservation = app.reserve(quotas, now).await?;
    codes.deliver(app, &migration, reservation).await?;
    let event = AuditEvent::new(Step::Start, "ok", &migration, caller, now);
    app.store.insert_migration(&migration, &event).await?;
    Ok(MigrationView::of(&migration, now, &app.policy))
}

pub async fn resend(
    app: &App,
    caller: &Caller,
    migration_id: &str,
    now: Timestamp,
) -> Result<MigrationView, Error> {
    let (current, _) = app
        .active_caller_migration(&caller.account_id, migration_id)
        .await?;
    current.check_resend(now, &app.policy)?;

    let codes = CodePair::generate();
    let mut updated = Migration {
        sends: current.sends + 1,
        last_sent_at: now,
        codes_expire_at: now + app.policy.code_ttl,
        ..current.clone()
    };
    codes.store_digests(app, &mut updated).await?;
    // The send is claimed before anything is delivered: of concurrent
    // resends one delivers, the others answer from what it left.
    let claim = uuid::Uuid::new_v4().simple().to_string();
    if !app.store.claim_send(&current, &updated, &claim).await? {
        let now_stored = app
            .owned_migration(&caller.account_id, migration_id)
            .await?;
        now_stored.check_resend(now, &app.policy)?;
        return Err(Error::StateChanged);
    }
    let delivered = match app.reserve(send_quotas(app, &updated), now).await {
        Ok(reservation) => codes.deliver(app, &updated, reservation).await,
        Err(refusal) => Err(refusal),
    };
    if let Err(e) = delivered {
        if let Err(release) = app.store.release_send(&current, &claim).await {
            tracing::warn!(migration_id, error = %release, "claimed send not given back");
        }
        return Err(e);
    }
    let event = AuditEvent::new(Step::Resend, "ok", &updated, caller, now);
    if !app.store.reissue_codes(&updated, &claim, &event).await? {
        // Verified, cancelled or expired since the claim: the new codes
        // were sent but replace nothing.
        return Err(Error::StateChanged);
    }
    Ok(MigrationView::of(&updated, now, &app.policy))
}
