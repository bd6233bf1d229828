//! Model-based property test: random sequences of API operations from two
//! main accounts against two duplicates, with right, wrong, replayed and
//! stale codes, expiry through the injected clock, the duplicates' facts
//! (identity verification, assets, withdrawals in flight) changing at any
//! point through the facts port, concurrent closes, and closures that need (right,
//! wrong or missing) codes of the duplicate's own authenticator. A model of the rules predicts
//! every answer; the table's invariants are checked after every step; a
//! failing sequence shrinks to a minimal one.
//!
//! Budget: `MODEL_CASES` (or `SOAK_SEQUENCES`, set by `make soak`)
//! sequences, default 16, of up to `MODEL_STEPS` operations, default 24.

use contact_migration::domain::{totp, Channel, Contact, Policy};
use contact_migration::facts::{AccountFacts, Changed, FactsChange};
use contact_migration::store::{item, outbox};
use end_to_end::{
    invariants, unique_contact, unix_now, AccountSpec, Answer, Stack, TestAccount, ACKNOWLEDGE_ALL,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

#[derive(Debug, Clone, Copy)]
enum Target {
    Duplicate(usize),
    Fresh,
    Own,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codes {
    Right,
    WrongNew,
    WrongCurrent,
    WrongTotp,
    /// The TOTP code of the previous step: accepted once inside the ±1 window.
    PreviousTotp,
}

/// The duplicate's authenticator code sent with a close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DuplicateCode {
    Right,
    Wrong,
    Absent,
}

#[derive(Debug, Clone)]
enum Op {
    Start {
        main: usize,
        target: Target,
        phone: bool,
    },
    Resend {
        main: usize,
        migration: usize,
    },
    Verify {
        main: usize,
        migration: usize,
        codes: Codes,
    },
    Migrate {
        main: usize,
        migration: usize,
    },
    Close {
        main: usize,
        migration: usize,
        acknowledged: bool,
        duplicate_code: DuplicateCode,
    },
    RaceClose {
        migration: usize,
    },
    Cancel {
        main: usize,
        migration: usize,
    },
    Get {
        main: usize,
        migration: usize,
    },
    Advance {
        seconds: i64,
    },
    /// The exchange changes a duplicate's facts, whenever: refused once the
    /// duplicate is closed (its facts no longer change what happened to it).
    SetFacts {
        duplicate: usize,
        change: FactChange,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FactChange {
    GrantKyc,
    RevokeKyc,
    Assets(bool),
    Withdrawal(bool),
}

impl FactChange {
    fn change(self) -> FactsChange {
        let mut change = FactsChange::default();
        match self {
            FactChange::GrantKyc => change.kyc_verified = Some(true),
            FactChange::RevokeKyc => change.kyc_verified = Some(false),
            FactChange::Assets(has) => change.has_assets = Some(has),
            FactChange::Withdrawal(pending) => change.pending_withdrawals = Some(pending),
        }
        change
    }
}

fn op() -> impl Strategy<Value = Op> {
    let main = 0..2usize;
    let migration = 0..6usize;
    prop_oneof![
        3 => (main.clone(), prop_oneof![(0..2usize).prop_map(Target::Duplicate), Just(Target::Fresh), Just(Target::Own)], any::<bool>())
            .prop_map(|(main, target, phone)| Op::Start { main, target, phone }),
        1 => (main.clone(), migration.clone()).prop_map(|(main, migration)| Op::Resend { main, migration }),
        4 => (main.clone(), migration.clone(), prop_oneof![
                4 => Just(Codes::Right), 1 => Just(Codes::WrongNew), 1 => Just(Codes::WrongCurrent),
                1 => Just(Codes::WrongTotp), 1 => Just(Codes::PreviousTotp)])
            .prop_map(|(main, migration, codes)| Op::Verify { main, migration, codes }),
        3 => (main.clone(), migration.clone()).prop_map(|(main, migration)| Op::Migrate { main, migration }),
        3 => (main.clone(), migration.clone(), prop::bool::weighted(0.85), prop_oneof![
                6 => Just(DuplicateCode::Right), 1 => Just(DuplicateCode::Wrong), 1 => Just(DuplicateCode::Absent)])
            .prop_map(|(main, migration, acknowledged, duplicate_code)| Op::Close { main, migration, acknowledged, duplicate_code }),
        1 => migration.clone().prop_map(|migration| Op::RaceClose { migration }),
        1 => (main.clone(), migration.clone()).prop_map(|(main, migration)| Op::Cancel { main, migration }),
        1 => (main.clone(), migration.clone()).prop_map(|(main, migration)| Op::Get { main, migration }),
        2 => prop_oneof![Just(5i64), Just(31), Just(61), Just(601), Just(901)].prop_map(|seconds| Op::Advance { seconds }),
        2 => (0..2usize, prop_oneof![
                2 => Just(FactChange::GrantKyc), 1 => Just(FactChange::RevokeKyc),
                1 => any::<bool>().prop_map(FactChange::Assets),
                2 => any::<bool>().prop_map(FactChange::Withdrawal)])
            .prop_map(|(duplicate, change)| Op::SetFacts { duplicate, change }),
    ]
}

// ---- the model ------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    CodesSent,
    Verified,
    Awaiting,
    Completed,
    Cancelled,
    Locked,
    Expired,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::CodesSent => "codes_sent",
            State::Verified => "verified",
            State::Awaiting => "awaiting_confirmation",
            State::Completed => "completed",
            State::Cancelled => "cancelled",
            State::Locked => "locked",
            State::Expired => "expired",
        }
    }

    /// The answer to a step the state does not allow.
    fn refusal(self) -> Expect {
        match self {
            State::Locked => Expect::one(423, "migration_locked"),
            State::Expired => Expect::one(410, "migration_expired"),
            _ => Expect::one(409, "invalid_state"),
        }
    }
}

struct ModelAccount {
    real: TestAccount,
    email: Option<String>,
    phone: Option<String>,
    closed: bool,
    kyc: bool,
    assets: bool,
    pending_withdrawal: bool,
    last_step: Option<u64>,
}

impl ModelAccount {
    fn contact(&self, channel: Channel) -> Option<&String> {
        match channel {
            Channel::Email => self.email.as_ref(),
            Channel::Phone => self.phone.as_ref(),
        }
    }

    fn set_contact(&mut self, channel: Channel, value: Option<String>) {
        match channel {
            Channel::Email => self.email = value,
            Channel::Phone => self.phone = value,
        }
    }
}

struct ModelMigration {
    id: String,
    owner: usize,
    channel: Channel,
    new_contact: String,
    current_contact: String,
    current_channel: Channel,
    state: State,
    attempts: u32,
    sends: u32,
    last_sent: i64,
    expires: i64,
    confirm_by: Option<i64>,
    duplicate: Option<usize>,
    previous: Option<String>,
    duplicate_other: Option<String>,
    /// `migrate`'s snapshot: the duplicate has an authenticator enrolled.
    two_factor: bool,
    /// `migrate`'s snapshot: the duplicate held assets.
    assets: Option<bool>,
    codes: (String, String),
    closed_answer: Option<serde_json::Value>,
}

impl ModelMigration {
    fn state_at(&self, now: i64) -> State {
        match self.state {
            State::Verified | State::Awaiting if self.confirm_by.is_some_and(|by| now >= by) => {
                State::Expired
            }
            State::CodesSent if now >= self.expires && self.sends >= 5 => State::Expired,
            s => s,
        }
    }
}

/// The answers the model allows for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expect(BTreeSet<(u16, String)>);

impl Expect {
    fn one(status: u16, code: &str) -> Expect {
        Expect(BTreeSet::from([(status, code.to_owned())]))
    }
    fn ok(status: u16) -> Expect {
        Expect::one(status, "")
    }
    fn admits(&self, answer: &Answer) -> bool {
        self.0
            .contains(&(answer.status, answer.error_code().to_owned()))
    }
}

struct World {
    stack: Arc<Stack>,
    /// 0, 1: main accounts; 2, 3: duplicates (2 has an authenticator and
    /// assets, 3 identity verification).
    accounts: Vec<ModelAccount>,
    migrations: Vec<ModelMigration>,
    migrated: HashSet<String>,
    received: HashSet<(usize, Channel)>,
    now: i64,
}

fn channel_of(phone: bool) -> Channel {
    if phone {
        Channel::Phone
    } else {
        Channel::Email
    }
}

fn shifted(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap_or(0) + 1) % 1_000_000)
}

impl World {
    async fn new() -> World {
        let mut policy = Policy::default();
        // Quotas have their own boundary tests; here they would only cut sequences short.
        policy.starts_per_account.limit = 10_000;
        policy.sends_per_contact_per_requester.limit = 10_000;
        policy.sends_per_contact.limit = 10_000;
        policy.failures_per_account.limit = 10_000;
        let stack = Arc::new(Stack::with_policy(policy).await);
        let mut accounts = Vec::new();
        for spec in [
            AccountSpec {
                phone: true,
                ..AccountSpec::default()
            },
            AccountSpec {
                phone: true,
                ..AccountSpec::default()
            },
            AccountSpec {
                phone: true,
                assets: true,
                ..AccountSpec::default()
            },
            AccountSpec {
                phone: true,
                no_totp: true,
                kyc: true,
                ..AccountSpec::default()
            },
        ] {
            let real = stack.account(spec).await;
            accounts.push(ModelAccount {
                email: Some(real.email.clone()),
                phone: real.phone.clone(),
                closed: false,
                kyc: spec.kyc,
                assets: spec.assets,
                pending_withdrawal: false,
                last_step: None,
                real,
            });
        }
        World {
            stack,
            accounts,
            migrations: Vec::new(),
            migrated: HashSet::new(),
            received: HashSet::new(),
            now: unix_now(),
        }
    }

    fn owner_of(&self, channel: Channel, contact: &str) -> Option<usize> {
        self.accounts
            .iter()
            .position(|a| a.contact(channel).map(String::as_str) == Some(contact))
    }

    fn totp(&self, main: usize, at: i64) -> String {
        totp::code_at(self.accounts[main].real.totp_secret.as_deref().unwrap(), at).unwrap()
    }

    async fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let now = self.now;
        match *op {
            Op::Advance { seconds } => {
                self.now += seconds;
                Ok(())
            }
            Op::SetFacts { duplicate, change } => {
                let index = 2 + duplicate;
                let changed = self
                    .stack
                    .try_set_facts(&self.accounts[index].real.id, change.change())
                    .await;
                let account = &mut self.accounts[index];
                if account.closed {
                    prop_assert_eq!(changed, Changed::AccountClosed, "{:?}", op);
                    return Ok(());
                }
                prop_assert!(
                    matches!(changed, Changed::Done(_)),
                    "{:?}: {:?}",
                    op,
                    changed
                );
                match change {
                    FactChange::GrantKyc => account.kyc = true,
                    FactChange::RevokeKyc => account.kyc = false,
                    FactChange::Assets(has) => account.assets = has,
                    FactChange::Withdrawal(pending) => account.pending_withdrawal = pending,
                }
                Ok(())
            }
            Op::Start {
                main,
                target,
                phone,
            } => self.start(main, target, channel_of(phone)).await,
            _ => {
                if self.migrations.is_empty() {
                    return Ok(());
                }
                let (main, index) = match *op {
                    Op::Resend { main, migration }
                    | Op::Verify {
                        main, migration, ..
                    }
                    | Op::Migrate { main, migration }
                    | Op::Close {
                        main, migration, ..
                    }
                    | Op::Cancel { main, migration }
                    | Op::Get { main, migration } => (main, migration % self.migrations.len()),
                    Op::RaceClose { migration } => {
                        let index = migration % self.migrations.len();
                        (self.migrations[index].owner, index)
                    }
                    _ => unreachable!(),
                };
                let id = self.migrations[index].id.clone();
                if self.migrations[index].owner != main {
                    let answer = match op {
                        Op::Close { .. } => {
                            let body =
                                json!({"acknowledged_warnings": ACKNOWLEDGE_ALL, "confirm": true});
                            self.stack
                                .step(&self.accounts[main].real, &id, "close", body, now)
                                .await
                        }
                        Op::Get { .. } => {
                            self.stack
                                .call(
                                    "GET",
                                    &format!("/migrations/{id}"),
                                    Some(&self.accounts[main].real.id),
                                    None,
                                    now,
                                )
                                .await
                        }
                        _ => {
                            self.stack
                                .step(&self.accounts[main].real, &id, "migrate", json!({}), now)
                                .await
                        }
                    };
                    return check(op, &Expect::one(404, "migration_not_found"), &answer);
                }
                match *op {
                    Op::Resend { .. } => self.resend(index).await,
                    Op::Verify { codes, .. } => self.verify(index, codes).await,
                    Op::Migrate { .. } => self.migrate(index).await,
                    Op::Close {
                        acknowledged,
                        duplicate_code,
                        ..
                    } => self.close(main, index, acknowledged, duplicate_code).await,
                    Op::RaceClose { .. } => self.race_close(index).await,
                    Op::Cancel { .. } => self.cancel(index).await,
                    Op::Get { .. } => {
                        let answer = self
                            .stack
                            .call(
                                "GET",
                                &format!("/migrations/{id}"),
                                Some(&self.accounts[main].real.id),
                                None,
                                now,
                            )
                            .await;
                        check(op, &Expect::ok(200), &answer)?;
                        let expected = self.migrations[index].state_at(now).name();
                        prop_assert_eq!(
                            answer.body["state"].as_str(),
                            Some(expected),
                            "GET state after {:?}",
                            op
                        );
                        Ok(())
                    }
                    _ => unreachable!(),
                }
            }
        }
    }

    async fn start(
        &mut self,
        main: usize,
        target: Target,
        channel: Channel,
    ) -> Result<(), TestCaseError> {
        let now = self.now;
        let new_contact = match target {
            Target::Duplicate(d) => self.accounts[2 + d].contact(channel).cloned(),
            Target::Own => self.accounts[main].contact(channel).cloned(),
            Target::Fresh => None,
        }
        .unwrap_or_else(|| unique_contact(channel, "fresh"));
        let answer = self
            .stack
            .start(&self.accounts[main].real, &new_contact, now)
            .await;
        let op = Op::Start {
            main,
            target,
            phone: channel == Channel::Phone,
        };
        let account = &self.accounts[main];
        if account.contact(channel) == Some(&new_contact) {
            return check(&op, &Expect::one(409, "contact_already_yours"), &answer);
        }
        check(&op, &Expect::ok(201), &answer)?;
        let current_channel = if account.contact(channel).is_some() {
            channel
        } else {
            channel.other()
        };
        let current_contact = account.contact(current_channel).cloned().unwrap();
        let codes = self.stack.codes(&new_contact, &current_contact).await;
        self.migrations.push(ModelMigration {
            id: answer.body["migration_id"].as_str().unwrap().to_owned(),
            owner: main,
            channel,
            new_contact,
            current_contact,
            current_channel,
            state: State::CodesSent,
            attempts: 0,
            sends: 1,
            last_sent: now,
            expires: now + 600,
            confirm_by: None,
            duplicate: None,
            previous: None,
            duplicate_other: None,
            two_factor: false,
            assets: None,
            codes,
            closed_answer: None,
        });
        Ok(())
    }

    async fn resend(&mut self, index: usize) -> Result<(), TestCaseError> {
        let now = self.now;
        let m = &self.migrations[index];
        let owner = &self.accounts[m.owner].real;
        let answer = self
            .stack
            .step(owner, &m.id, "resend", json!({}), now)
            .await;
        let op = Op::Resend {
            main: m.owner,
            migration: index,
        };
        let state = m.state_at(now);
        if state != State::CodesSent {
            return check(&op, &state.refusal(), &answer);
        }
        if m.sends >= 5 || now < m.last_sent + 60 {
            return check(&op, &Expect::one(429, "rate_limited"), &answer);
        }
        check(&op, &Expect::ok(200), &answer)?;
        let codes = self.stack.codes(&m.new_contact, &m.current_contact).await;
        let m = &mut self.migrations[index];
        m.codes = codes;
        m.sends += 1;
        m.last_sent = now;
        m.expires = now + 600;
        Ok(())
    }

    async fn verify(&mut self, index: usize, kind: Codes) -> Result<(), TestCaseError> {
        let now = self.now;
        let (owner, channel, new_contact) = {
            let m = &self.migrations[index];
            (m.owner, m.channel, m.new_contact.clone())
        };
        let (mut new_code, mut current_code) = self.migrations[index].codes.clone();
        let step_now = (now / 30) as u64;
        let (totp_code, totp_step) = match kind {
            Codes::PreviousTotp => (self.totp(owner, now - 30), Some(step_now - 1)),
            Codes::WrongTotp => {
                // A code that is none of the window's three.
                let mut wrong = shifted(&self.totp(owner, now));
                while [-30, 0, 30]
                    .iter()
                    .any(|d| self.totp(owner, now + d) == wrong)
                {
                    wrong = shifted(&wrong);
                }
                (wrong, None)
            }
            _ => (self.totp(owner, now), Some(step_now)),
        };
        if kind == Codes::WrongNew {
            new_code = shifted(&new_code);
        }
        if kind == Codes::WrongCurrent {
            current_code = shifted(&current_code);
        }
        let id = self.migrations[index].id.clone();
        let answer = self
            .stack
            .verify(
                &self.accounts[owner].real,
                &id,
                (&new_code, &current_code, &totp_code),
                now,
            )
            .await;
        let op = Op::Verify {
            main: owner,
            migration: index,
            codes: kind,
        };

        let m = &self.migrations[index];
        let state = m.state_at(now);
        if state != State::CodesSent {
            return check(&op, &state.refusal(), &answer);
        }
        if m.attempts >= 5 {
            return check(&op, &Expect::one(423, "migration_locked"), &answer);
        }
        if now >= m.expires {
            return check(&op, &Expect::one(410, "codes_expired"), &answer);
        }
        if self.accounts[owner].contact(m.current_channel) != Some(&m.current_contact) {
            // The current-contact code went to a contact the account has since given up.
            return check(&op, &Expect::one(409, "state_changed"), &answer);
        }
        self.migrations[index].attempts += 1;
        let last = self.accounts[owner].last_step;
        let totp_ok = totp_step.filter(|s| last.is_none_or(|l| *s > l));
        let codes_ok = !matches!(kind, Codes::WrongNew | Codes::WrongCurrent);
        let (Some(step), true) = (totp_ok, codes_ok) else {
            if let Some(step) = totp_ok {
                self.accounts[owner].last_step = Some(step);
            }
            let m = &mut self.migrations[index];
            if m.attempts >= 5 {
                m.state = State::Locked;
            }
            check(&op, &Expect::one(422, "invalid_codes"), &answer)?;
            prop_assert_eq!(
                answer.body["error"]["attempts_remaining"].as_u64(),
                Some(u64::from(5 - m.attempts))
            );
            return Ok(());
        };
        match self.owner_of(channel, &new_contact) {
            Some(o) if o == owner => {
                // The right TOTP code was checked, so it is spent.
                self.accounts[owner].last_step = Some(step);
                check(&op, &Expect::one(409, "contact_already_yours"), &answer)
            }
            None => {
                check(&op, &Expect::ok(200), &answer)?;
                prop_assert_eq!(answer.body["state"].as_str(), Some("completed"));
                self.accounts[owner].last_step = Some(step);
                self.accounts[owner].set_contact(channel, Some(new_contact));
                self.migrations[index].state = State::Completed;
                Ok(())
            }
            Some(duplicate) => {
                check(&op, &Expect::ok(200), &answer)?;
                let blockers = self.blockers(owner, duplicate, channel, &new_contact);
                prop_assert_eq!(answer.body["state"].as_str(), Some("verified"));
                prop_assert_eq!(&answer.body["blockers"], &json!(blockers));
                self.accounts[owner].last_step = Some(step);
                let m = &mut self.migrations[index];
                m.state = State::Verified;
                m.duplicate = Some(duplicate);
                m.confirm_by = Some(now + 900);
                Ok(())
            }
        }
    }

    fn blockers(
        &self,
        main: usize,
        duplicate: usize,
        channel: Channel,
        contact: &str,
    ) -> Vec<&'static str> {
        let d = &self.accounts[duplicate];
        let mut blockers = Vec::new();
        if d.kyc {
            blockers.push("duplicate_identity_verified");
        }
        if d.closed {
            blockers.push("duplicate_closed");
        }
        if self.migrated.contains(&format!("{channel}#{contact}")) {
            blockers.push("contact_already_migrated");
        }
        if self.received.contains(&(main, channel)) {
            blockers.push("account_already_migrated");
        }
        if d.pending_withdrawal {
            blockers.push("duplicate_has_pending_withdrawals");
        }
        blockers
    }

    async fn migrate(&mut self, index: usize) -> Result<(), TestCaseError> {
        let now = self.now;
        let m = &self.migrations[index];
        let answer = self
            .stack
            .step(
                &self.accounts[m.owner].real,
                &m.id,
                "migrate",
                json!({}),
                now,
            )
            .await;
        let op = Op::Migrate {
            main: m.owner,
            migration: index,
        };
        let state = m.state_at(now);
        let Some(duplicate) = m
            .duplicate
            .filter(|_| matches!(state, State::Verified | State::Awaiting))
        else {
            return check(&op, &state.refusal(), &answer);
        };
        let blockers = self.blockers(m.owner, duplicate, m.channel, &m.new_contact);
        if !blockers.is_empty() {
            check(&op, &Expect::one(409, "not_eligible"), &answer)?;
            prop_assert_eq!(&answer.body["error"]["blockers"], &json!(blockers));
            return Ok(());
        }
        if self.owner_of(m.channel, &m.new_contact) != Some(duplicate) {
            return check(&op, &Expect::one(409, "state_changed"), &answer);
        }
        check(&op, &Expect::ok(200), &answer)?;
        let two_factor = self.accounts[duplicate].real.totp_secret.is_some();
        let assets = self.accounts[duplicate].assets;
        if state == State::Verified {
            let previous = self.accounts[m.owner].contact(m.channel).cloned();
            let other = self.accounts[duplicate].contact(m.channel.other()).cloned();
            let m = &mut self.migrations[index];
            m.state = State::Awaiting;
            m.previous = previous;
            m.duplicate_other = other;
            m.two_factor = two_factor;
            m.assets = Some(assets);
        }
        prop_assert_eq!(
            answer.body["duplicate_two_factor_required"].as_bool(),
            Some(two_factor)
        );
        Ok(())
    }

    /// The duplicate's authenticator code a close sends.
    fn duplicate_code(&self, index: usize, kind: DuplicateCode) -> Option<String> {
        let duplicate = self.migrations[index].duplicate?;
        let secret = self.accounts[duplicate].real.totp_secret.as_deref()?;
        let code = |at| totp::code_at(secret, at).unwrap();
        match kind {
            DuplicateCode::Absent => None,
            DuplicateCode::Right => Some(code(self.now)),
            DuplicateCode::Wrong => {
                let mut wrong = shifted(&code(self.now));
                while [-30, 0, 30].iter().any(|d| code(self.now + d) == wrong) {
                    wrong = shifted(&wrong);
                }
                Some(wrong)
            }
        }
    }

    /// What one close of migration `index` may answer and whether it
    /// commits, applying to the model what it does short of committing
    /// (an attempt counted, a lock, the duplicate's code spent).
    fn expect_close(
        &mut self,
        index: usize,
        acknowledged: bool,
        code: DuplicateCode,
    ) -> (Expect, bool) {
        let now = self.now;
        let m = &self.migrations[index];
        if m.closed_answer.is_some() {
            return (Expect::ok(200), false);
        }
        if !acknowledged || (m.two_factor && code == DuplicateCode::Absent) {
            return (Expect::one(422, "confirmation_required"), false);
        }
        let state = m.state_at(now);
        if state != State::Awaiting {
            return (state.refusal(), false);
        }
        let duplicate = m.duplicate.unwrap();
        let mut spent = None;
        if m.two_factor {
            if m.attempts >= 5 {
                return (Expect::one(423, "migration_locked"), false);
            }
            let step = (now / 30) as u64;
            let unspent = self.accounts[duplicate].last_step.is_none_or(|l| step > l);
            let m = &mut self.migrations[index];
            m.attempts += 1;
            if code != DuplicateCode::Right || !unspent {
                if m.attempts >= 5 {
                    m.state = State::Locked;
                }
                return (Expect::one(422, "invalid_codes"), false);
            }
            spent = Some(step);
        }
        let m = &self.migrations[index];
        let d = &self.accounts[duplicate];
        let main = &self.accounts[m.owner];
        let mut refusals = Vec::new();
        if self
            .migrated
            .contains(&format!("{}#{}", m.channel, m.new_contact))
        {
            refusals.push("contact_already_migrated");
        }
        if self.received.contains(&(m.owner, m.channel)) {
            refusals.push("account_already_migrated");
        }
        if d.closed {
            refusals.push("duplicate_closed");
        }
        // The facts, read under the closure hold right before the commit.
        if d.kyc {
            refusals.push("duplicate_identity_verified");
        }
        if d.pending_withdrawal {
            refusals.push("not_eligible");
        }
        let changed = m.assets != Some(d.assets)
            || d.contact(m.channel) != Some(&m.new_contact)
            || d.contact(m.channel.other()) != m.duplicate_other.as_ref()
            || main.contact(m.channel) != m.previous.as_ref();
        if changed {
            refusals.push("state_changed");
        }
        // A right code is spent whether the closure commits or is refused.
        if spent.is_some() {
            self.accounts[duplicate].last_step = spent;
        }
        if refusals.is_empty() {
            return (Expect::ok(200), true);
        }
        // Several conditions may fail at once; any of their codes is right.
        (
            Expect(refusals.into_iter().map(|c| (409, c.to_owned())).collect()),
            false,
        )
    }

    fn apply_close(&mut self, index: usize, answer: &Answer) {
        let m = &mut self.migrations[index];
        m.state = State::Completed;
        m.closed_answer = Some(answer.body.clone());
        let (owner, channel, contact, duplicate) = (
            m.owner,
            m.channel,
            m.new_contact.clone(),
            m.duplicate.unwrap(),
        );
        let d = &mut self.accounts[duplicate];
        d.closed = true;
        d.email = None;
        d.phone = None;
        self.accounts[owner].set_contact(channel, Some(contact.clone()));
        self.migrated.insert(format!("{channel}#{contact}"));
        self.received.insert((owner, channel));
    }

    async fn close(
        &mut self,
        main: usize,
        index: usize,
        acknowledged: bool,
        duplicate_code: DuplicateCode,
    ) -> Result<(), TestCaseError> {
        let id = self.migrations[index].id.clone();
        let acknowledged_warnings = if acknowledged {
            ACKNOWLEDGE_ALL
        } else {
            &ACKNOWLEDGE_ALL[..1]
        };
        let mut body = json!({"acknowledged_warnings": acknowledged_warnings, "confirm": true});
        if let Some(code) = self.duplicate_code(index, duplicate_code) {
            body["duplicate_totp_code"] = json!(code);
        }
        let answer = self
            .stack
            .step(&self.accounts[main].real, &id, "close", body, self.now)
            .await;
        let op = Op::Close {
            main,
            migration: index,
            acknowledged,
            duplicate_code,
        };
        let (expect, commits) = self.expect_close(index, acknowledged, duplicate_code);
        check(&op, &expect, &answer)?;
        if answer.error_code() == "invalid_codes" {
            let m = &self.migrations[index];
            prop_assert_eq!(
                answer.body["error"]["attempts_remaining"].as_u64(),
                Some(u64::from(5 - m.attempts))
            );
        }
        if let Some(first) = &self.migrations[index].closed_answer {
            prop_assert_eq!(&answer.body, first, "a repeated close answers the same");
        }
        if commits {
            self.apply_close(index, &answer);
        }
        Ok(())
    }

    /// Two identical closes at once. With the duplicate's code, both count an
    /// attempt and the order of their reads decides which of the allowed
    /// answers each gets, so the model takes the attempts and the state from
    /// the table afterwards.
    async fn race_close(&mut self, index: usize) -> Result<(), TestCaseError> {
        let two_factor = self.migrations[index].two_factor;
        let attempts_before = self.migrations[index].attempts;
        let (mut expect, commits) = self.expect_close(index, true, DuplicateCode::Right);
        let m = &self.migrations[index];
        if two_factor && m.closed_answer.is_none() && m.state_at(self.now) == State::Awaiting {
            // The other racer's code may be spent first (a replay), or its
            // attempt may be the one too many.
            expect.0.insert((422, "invalid_codes".to_owned()));
            expect.0.insert((423, "migration_locked".to_owned()));
        }
        let mut body = json!({"acknowledged_warnings": ACKNOWLEDGE_ALL, "confirm": true});
        if let Some(code) = self.duplicate_code(index, DuplicateCode::Right) {
            body["duplicate_totp_code"] = json!(code);
        }
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let (stack, owner, id, body, now) = (
                    self.stack.clone(),
                    self.accounts[m.owner].real.id.clone(),
                    m.id.clone(),
                    body.clone(),
                    self.now,
                );
                tokio::spawn(async move {
                    stack
                        .call(
                            "POST",
                            &format!("/migrations/{id}/close"),
                            Some(&owner),
                            Some(body),
                            now,
                        )
                        .await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.expect("close finished"));
        }
        let op = Op::RaceClose { migration: index };
        for answer in &answers {
            check(&op, &expect, answer)?;
        }
        if commits {
            let done: Vec<_> = answers.iter().filter(|a| a.status == 200).collect();
            prop_assert!(!done.is_empty(), "one racer commits: {:?}", answers);
            prop_assert!(
                done.iter().all(|a| a.body == done[0].body),
                "every racer that succeeds sees the one commit: {:?}",
                answers
            );
            self.apply_close(index, done[0]);
        } else if two_factor && self.migrations[index].attempts > attempts_before {
            let stored = self
                .stack
                .stored_item(contact_migration::store::item::migration_key(
                    &self.migrations[index].id,
                ))
                .await
                .expect("the migration is stored");
            let m = &mut self.migrations[index];
            m.attempts = contact_migration::store::item::get_n(&stored, "failed_attempts").unwrap();
            if contact_migration::store::item::get_s(&stored, "state") == Some("locked") {
                m.state = State::Locked;
            }
        }
        Ok(())
    }

    async fn cancel(&mut self, index: usize) -> Result<(), TestCaseError> {
        let now = self.now;
        let m = &self.migrations[index];
        let answer = self
            .stack
            .call(
                "DELETE",
                &format!("/migrations/{}", m.id),
                Some(&self.accounts[m.owner].real.id),
                None,
                now,
            )
            .await;
        let op = Op::Cancel {
            main: m.owner,
            migration: index,
        };
        match m.state_at(now) {
            State::Cancelled => check(&op, &Expect::ok(200), &answer),
            state @ (State::Completed | State::Expired | State::Locked) => {
                check(&op, &state.refusal(), &answer)
            }
            _ => {
                check(&op, &Expect::ok(200), &answer)?;
                self.migrations[index].state = State::Cancelled;
                Ok(())
            }
        }
    }

    /// The table's invariants, and the accounts as the model knows them.
    async fn consistent(&self, after: &Op) -> Result<(), TestCaseError> {
        let violations = self.stack.violations().await;
        prop_assert!(violations.is_empty(), "after {:?}: {:?}", after, violations);
        for account in &self.accounts {
            let stored = self.stack.stored_account(&account.real.id).await;
            prop_assert_eq!(
                stored.email.as_ref().map(Contact::value),
                account.email.as_deref(),
                "email after {:?}",
                after
            );
            prop_assert_eq!(
                stored.phone.as_ref().map(Contact::value),
                account.phone.as_deref(),
                "phone after {:?}",
                after
            );
            prop_assert_eq!(
                stored.status.as_str() == "closed",
                account.closed,
                "status after {:?}",
                after
            );
            let facts = self.stack.app.facts.facts(&account.real.id).await;
            prop_assert_eq!(
                facts.ok(),
                Some(AccountFacts {
                    kyc_verified: account.kyc,
                    has_assets: account.assets,
                    pending_withdrawals: account.pending_withdrawal,
                }),
                "facts after {:?}",
                after
            );
        }
        Ok(())
    }
}

impl World {
    /// The relay delivers every outbox: each published event is one a
    /// commit announced, once, and every announced event is published.
    async fn delivered(&self) -> Result<(), TestCaseError> {
        let poll = self.stack.deliver().await;
        prop_assert_eq!(poll.failed, 0, "relay failures: {:?}", poll);
        let announced: Vec<String> = invariants::scan(&self.stack)
            .await
            .iter()
            .filter(|it| item::get_s(it, item::PK).is_some_and(|pk| pk.starts_with("OUTBOX#")))
            .filter_map(|it| outbox::outbox_from_item(it).ok())
            .flat_map(|stored| stored.outbox.events.into_iter().map(|e| e.id))
            .collect();
        let mut published: Vec<String> = self
            .stack
            .events()
            .await
            .iter()
            .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        let mut expected = announced;
        published.sort();
        expected.sort();
        prop_assert_eq!(published, expected, "published events and commits disagree");
        Ok(())
    }
}

fn check(op: &Op, expect: &Expect, answer: &Answer) -> Result<(), TestCaseError> {
    prop_assert!(
        expect.admits(answer),
        "{:?}: expected one of {:?}, got {:?}",
        op,
        expect.0,
        answer
    );
    Ok(())
}

/// The first of `names` set in the environment, else `default`.
fn budget(names: &[&str], default: u32) -> u32 {
    names
        .iter()
        .find_map(|name| std::env::var(name).ok().and_then(|v| v.parse().ok()))
        .unwrap_or(default)
}

#[test]
fn random_sequences_follow_the_model_and_keep_every_invariant() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cases = budget(&["MODEL_CASES", "SOAK_SEQUENCES"], 16);
    let steps = budget(&["MODEL_STEPS"], 24) as usize;
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 200,
        failure_persistence: None,
        ..Config::default()
    });
    let sequences = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let operations = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let result = runner.run(&prop::collection::vec(op(), 1..=steps), |ops| {
        sequences.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        runtime.block_on(async {
            let mut world = World::new().await;
            for op in &ops {
                operations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                world.step(op).await?;
                world.consistent(op).await?;
            }
            world.delivered().await?;
            world.stack.drop_table().await;
            Ok(())
        })
    });
    println!(
        "model: {} sequences, {} operations checked",
        sequences.load(std::sync::atomic::Ordering::Relaxed),
        operations.load(std::sync::atomic::Ordering::Relaxed)
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
