//! Model-based property test: random sequences of API operations from two
//! main accounts against two duplicates, with right, wrong, replayed and
//! stale codes, expiry through the injected clock, identity-verification
//! granted mid-flow and concurrent closes. A model of the rules predicts
//! every answer; the table's invariants are checked after every step; a
//! failing sequence shrinks to a minimal one.
//!
//! Budget: `MODEL_CASES` (or `SOAK_SEQUENCES`, set by `make soak`)
//! sequences, default 16, of up to `MODEL_STEPS` operations, default 24.

use contact_migration::domain::{totp, Channel, Contact, Policy};
use end_to_end::{
    unique_contact, unix_now, AccountSpec, Answer, Stack, TestAccount, ACKNOWLEDGE_ALL,
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
    GrantKyc {
        duplicate: usize,
    },
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
        3 => (main.clone(), migration.clone(), prop::bool::weighted(0.85))
            .prop_map(|(main, migration, acknowledged)| Op::Close { main, migration, acknowledged }),
        1 => migration.clone().prop_map(|migration| Op::RaceClose { migration }),
        1 => (main.clone(), migration.clone()).prop_map(|(main, migration)| Op::Cancel { main, migration }),
        1 => (main.clone(), migration.clone()).prop_map(|(main, migration)| Op::Get { main, migration }),
        2 => prop_oneof![Just(5i64), Just(31), Just(61), Just(601), Just(901)].prop_map(|seconds| Op::Advance { seconds }),
        1 => (0..2usize).prop_map(|duplicate| Op::GrantKyc { duplicate }),
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
    state: State,
    attempts: u32,
    sends: u32,
    last_sent: i64,
    expires: i64,
    confirm_by: Option<i64>,
    duplicate: Option<usize>,
    previous: Option<String>,
    duplicate_other: Option<String>,
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
    /// 0, 1: main accounts; 2, 3: duplicates (3 has identity verification).
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
                no_totp: true,
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
            Op::GrantKyc { duplicate } => {
                let index = 2 + duplicate;
                let mut stored = self
                    .stack
                    .stored_account(&self.accounts[index].real.id)
                    .await;
                stored.kyc_verified = true;
                end_to_end::overwrite_account(&self.stack, &stored).await;
                self.accounts[index].kyc = true;
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
                        Op::Close {
                            acknowledged: false,
                            ..
                        } => return self.close(main, index, false).await,
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
                    Op::Close { acknowledged, .. } => self.close(main, index, acknowledged).await,
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
        let current_contact = account
            .contact(channel)
            .or(account.contact(channel.other()))
            .cloned()
            .unwrap();
        let codes = self.stack.codes(&new_contact, &current_contact).await;
        self.migrations.push(ModelMigration {
            id: answer.body["migration_id"].as_str().unwrap().to_owned(),
            owner: main,
            channel,
            new_contact,
            current_contact,
            state: State::CodesSent,
            attempts: 0,
            sends: 1,
            last_sent: now,
            expires: now + 600,
            confirm_by: None,
            duplicate: None,
            previous: None,
            duplicate_other: None,
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
        if state == State::Verified {
            let previous = self.accounts[m.owner].contact(m.channel).cloned();
            let other = self.accounts[duplicate].contact(m.channel.other()).cloned();
            let m = &mut self.migrations[index];
            m.state = State::Awaiting;
            m.previous = previous;
            m.duplicate_other = other;
        }
        Ok(())
    }

    /// What a close of migration `index` is allowed to answer, before it runs.
    fn expect_close(&self, index: usize) -> (Expect, bool) {
        let now = self.now;
        let m = &self.migrations[index];
        if m.closed_answer.is_some() {
            return (Expect::ok(200), false);
        }
        let state = m.state_at(now);
        if state != State::Awaiting {
            return (state.refusal(), false);
        }
        let duplicate = m.duplicate.unwrap();
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
        if d.kyc {
            refusals.push("duplicate_identity_verified");
        }
        let changed = d.contact(m.channel) != Some(&m.new_contact)
            || d.contact(m.channel.other()) != m.duplicate_other.as_ref()
            || main.contact(m.channel) != m.previous.as_ref();
        if changed {
            refusals.push("state_changed");
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
    ) -> Result<(), TestCaseError> {
        let id = self.migrations[index].id.clone();
        let body = if acknowledged {
            json!({"acknowledged_warnings": ACKNOWLEDGE_ALL, "confirm": true})
        } else {
            json!({"acknowledged_warnings": ["account_closure_permanent"], "confirm": true})
        };
        let answer = self
            .stack
            .step(&self.accounts[main].real, &id, "close", body, self.now)
            .await;
        let op = Op::Close {
            main,
            migration: index,
            acknowledged,
        };
        if !acknowledged {
            return check(&op, &Expect::one(422, "confirmation_required"), &answer);
        }
        let (expect, commits) = self.expect_close(index);
        check(&op, &expect, &answer)?;
        if let Some(first) = &self.migrations[index].closed_answer {
            prop_assert_eq!(&answer.body, first, "a repeated close answers the same");
        }
        if commits {
            self.apply_close(index, &answer);
        }
        Ok(())
    }

    async fn race_close(&mut self, index: usize) -> Result<(), TestCaseError> {
        let (expect, commits) = self.expect_close(index);
        let m = &self.migrations[index];
        let body = json!({"acknowledged_warnings": ACKNOWLEDGE_ALL, "confirm": true});
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
            prop_assert_eq!(
                &answers[0].body,
                &answers[1].body,
                "both racers see the one commit"
            );
            self.apply_close(index, &answers[0]);
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
        }
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
