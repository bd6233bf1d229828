//! DynamoDB requests per step, counted exactly: the store's client carries an
//! interceptor that counts every request it transmits (retries included),
//! keyed by operation, and a complete migration is driven through the
//! handler. The same interceptor asks each request for its consumed capacity
//! and adds it up, as on-demand billing would: read and write request units.

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
    BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::operation::{
    batch_get_item::{BatchGetItemInput, BatchGetItemOutput},
    delete_item::{DeleteItemInput, DeleteItemOutput},
    get_item::{GetItemInput, GetItemOutput},
    put_item::{PutItemInput, PutItemOutput},
    query::{QueryInput, QueryOutput},
    transact_write_items::{TransactWriteItemsInput, TransactWriteItemsOutput},
    update_item::{UpdateItemInput, UpdateItemOutput},
};
use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};
use aws_smithy_runtime_api::client::interceptors::context::{Input, Output};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use contact_migration::domain::Channel;
use contact_migration::store::Store;
use contact_migration::App;
use end_to_end::{dynamodb_endpoint, local_config, unique_email, unix_now, Stack};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::flow::{self, expect, Inbox, Req};

/// Requests per DynamoDB operation, and the request units they consumed,
/// since the last [`RequestCounter::take`].
#[derive(Clone, Debug, Default)]
pub struct RequestCounter(Arc<Mutex<Counts>>);

impl RequestCounter {
    pub fn take(&self) -> Counts {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Sets `ReturnConsumedCapacity: TOTAL` on the input of each operation the
/// store sends.
fn ask_capacity(input: &mut Input) {
    let total = Some(ReturnConsumedCapacity::Total);
    if let Some(i) = input.downcast_mut::<GetItemInput>() {
        i.return_consumed_capacity = total;
    } else if let Some(i) = input.downcast_mut::<BatchGetItemInput>() {
        i.return_consumed_capacity = total;
    } else if let Some(i) = input.downcast_mut::<QueryInput>() {
        i.return_consumed_capacity = total;
    } else if let Some(i) = input.downcast_mut::<PutItemInput>() {
        i.return_consumed_capacity = total;
    } else if let Some(i) = input.downcast_mut::<UpdateItemInput>() {
        i.return_consumed_capacity = total;
    } else if let Some(i) = input.downcast_mut::<DeleteItemInput>() {
        i.return_consumed_capacity = total;
    } else if let Some(i) = input.downcast_mut::<TransactWriteItemsInput>() {
        i.return_consumed_capacity = total;
    }
}

fn units<'a>(capacity: impl IntoIterator<Item = &'a ConsumedCapacity>) -> f64 {
    capacity.into_iter().filter_map(|c| c.capacity_units).sum()
}

/// The request units an answer reports: (read, write). A transactional
/// write costs twice a standard one; DynamoDB Local reports the standard
/// figure, so it is doubled here.
fn consumed(output: &Output) -> (f64, f64) {
    if let Some(o) = output.downcast_ref::<GetItemOutput>() {
        (units(&o.consumed_capacity), 0.0)
    } else if let Some(o) = output.downcast_ref::<BatchGetItemOutput>() {
        (units(o.consumed_capacity.iter().flatten()), 0.0)
    } else if let Some(o) = output.downcast_ref::<QueryOutput>() {
        (units(&o.consumed_capacity), 0.0)
    } else if let Some(o) = output.downcast_ref::<PutItemOutput>() {
        (0.0, units(&o.consumed_capacity))
    } else if let Some(o) = output.downcast_ref::<UpdateItemOutput>() {
        (0.0, units(&o.consumed_capacity))
    } else if let Some(o) = output.downcast_ref::<DeleteItemOutput>() {
        (0.0, units(&o.consumed_capacity))
    } else if let Some(o) = output.downcast_ref::<TransactWriteItemsOutput>() {
        (0.0, 2.0 * units(o.consumed_capacity.iter().flatten()))
    } else {
        (0.0, 0.0)
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        ask_capacity(context.input_mut());
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_owned())
            .unwrap_or_else(|| "unknown".into());
        *self
            .0
            .lock()
            .unwrap()
            .requests
            .entry(operation)
            .or_default() += 1;
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        if let Ok(output) = context.output_or_error() {
            let (read, write) = consumed(output);
            let mut counts = self.0.lock().unwrap();
            counts.read_units += read;
            counts.write_units += write;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    pub requests: BTreeMap<String, u32>,
    /// Read request units (strongly consistent: 1 per 4 KB item read).
    pub read_units: f64,
    /// Write request units, transactional ones doubled.
    pub write_units: f64,
}

impl Counts {
    pub fn total(&self) -> u32 {
        self.requests.values().sum()
    }

    /// `GetItem 2, PutItem 1, ...`, reads first.
    pub fn breakdown(&self) -> String {
        let order = |op: &str| match op {
            "GetItem" => 0,
            "BatchGetItem" => 1,
            "Query" => 2,
            "PutItem" => 3,
            "UpdateItem" => 4,
            "TransactWriteItems" => 5,
            _ => 6,
        };
        let mut ops: Vec<_> = self.requests.iter().collect();
        ops.sort_by_key(|(op, _)| (order(op), op.to_string()));
        ops.iter()
            .map(|(op, n)| format!("{op} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn add(&mut self, other: &Counts) {
        for (op, n) in &other.requests {
            *self.requests.entry(op.clone()).or_default() += n;
        }
        self.read_units += other.read_units;
        self.write_units += other.write_units;
    }
}

/// A row of the requests table.
pub struct Row {
    pub label: &'static str,
    pub counts: Counts,
    /// The fewest requests the data model allows for this step, and why.
    pub floor: (u32, &'static str),
}

/// The stack with its store's client counting requests.
pub async fn counting_stack(stack: &Stack) -> (Stack, RequestCounter) {
    let counter = RequestCounter::default();
    let aws = local_config().await;
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&aws)
            .endpoint_url(dynamodb_endpoint())
            .interceptor(counter.clone())
            .build(),
    );
    let app = App {
        store: Store::new(client, stack.app.store.table()),
        ..stack.app.clone()
    };
    (Stack::of(app), counter)
}

/// What a completed migration costs besides its steps' requests: the
/// relay's delivery of its outbox, and what that delivery sends.
pub struct Relayed {
    /// The relay's DynamoDB requests for the close's outbox.
    pub counts: Counts,
    /// Security notices by email and by SMS.
    pub emails: usize,
    pub sms: usize,
    /// Domain events published.
    pub events: usize,
    /// How long the relay's handler took to deliver it all.
    pub took: std::time::Duration,
}

/// Drives every step once (and the two other verify outcomes) and returns
/// the requests each made, and what the relay did with the completed
/// migration's outbox.
pub async fn measure(stack: &Stack) -> (Vec<Row>, Relayed) {
    let (stack, counter) = counting_stack(stack).await;
    let app = &stack.app;
    let inbox = Inbox::emulator();
    let now = unix_now();
    // Resend waits out the cooldown; the later steps follow it.
    let later = now + app.policy.resend_cooldown + 1;

    let pair = flow::pair(&stack).await;
    let main = &pair.main.id.clone();
    counter.take();
    let started = expect(app, main, &Req::start(&pair.duplicate.email), now, 201).await;
    let start = counter.take();
    let id = started.body["migration_id"].as_str().unwrap().to_owned();
    inbox
        .codes(&pair.duplicate.email, &pair.main, now - 2)
        .await;
    counter.take();
    expect(app, main, &Req::resend(&id), later, 200).await;
    let resend = counter.take();
    let codes = inbox
        .codes(&pair.duplicate.email, &pair.main, unix_now() - 2)
        .await;
    let prepared = flow::Prepared { pair, id, codes };
    counter.take();
    expect(app, main, &prepared.verify(later), later, 200).await;
    let verify = counter.take();
    expect(app, main, &Req::migrate(&prepared.id), later, 200).await;
    let migrate = counter.take();
    expect(app, main, &Req::close(&prepared.id), later, 200).await;
    let close = counter.take();
    let relay = stack.relay().await;
    counter.take();
    let began = std::time::Instant::now();
    let undelivered = relay
        .redeliver(std::slice::from_ref(&prepared.id))
        .await
        .expect("the outbox is read");
    let took = began.elapsed();
    assert!(undelivered.is_empty(), "the relay delivered everything");
    let relayed = counter.take();
    let outbox = app
        .store
        .outbox(&prepared.id)
        .await
        .expect("the outbox is read")
        .expect("the close wrote its outbox")
        .outbox;
    let by_email = outbox
        .notices
        .iter()
        .filter(|n| n.to.channel() == Channel::Email)
        .count();
    let relayed = Relayed {
        counts: relayed,
        emails: by_email,
        sms: outbox.notices.len() - by_email,
        events: outbox.events.len(),
        took,
    };
    expect(app, main, &Req::get(&prepared.id), later, 200).await;
    let get = counter.take();

    // Cancel, and the other outcomes of verify, on migrations of their own.
    let other = flow::prepare(&stack, &inbox, flow::Stage::CodesSent, now).await;
    counter.take();
    expect(app, other.caller(), &Req::cancel(&other.id), now, 200).await;
    let cancel = counter.take();

    let wrong = flow::prepare(&stack, &inbox, flow::Stage::CodesSent, now).await;
    let mut bad = wrong.codes.clone();
    bad.new_contact = if bad.new_contact == "000000" {
        "111111".into()
    } else {
        "000000".into()
    };
    counter.take();
    expect(
        app,
        wrong.caller(),
        &flow::Req::verify(&wrong.id, &bad, &wrong.pair.main.totp_at(now)),
        now,
        422,
    )
    .await;
    let verify_wrong = counter.take();

    let free = flow::pair(&stack).await;
    let free_contact = unique_email("free");
    let started = expect(app, &free.main.id, &Req::start(&free_contact), now, 201).await;
    let free_id = started.body["migration_id"].as_str().unwrap().to_owned();
    let free_codes = inbox.codes(&free_contact, &free.main, now - 2).await;
    counter.take();
    expect(
        app,
        &free.main.id,
        &Req::verify(&free_id, &free_codes, &free.main.totp_at(now)),
        now,
        200,
    )
    .await;
    let verify_free = counter.take();

    let mut completed = Counts::default();
    for step in [&start, &verify, &migrate, &close] {
        completed.add(step);
    }
    let mut rows = vec![
        Row {
            label: "start",
            counts: start,
            floor: (4, "read the main account; read the three quota logs in one batch (one is keyed by the account's current contact); take the three slots in one write before any code is sent, so parallel starts cannot send past a quota; insert the migration once the codes are delivered"),
        },
        Row {
            label: "resend",
            counts: resend,
            floor: (5, "read the migration and the caller's account (it must be active) in one batch; claim the send, so concurrent resends cannot send past the cap or the cooldown; read the send logs in one batch; take the slots in one write before sending; replace the codes once delivered"),
        },
        Row {
            label: "verify (bound contact)",
            counts: verify,
            floor: (4, "read the migration, the caller's account, its failure log and its event head in one batch (the factors are then checked in process); read the owner; read the duplicate and the markers in one batch (the `table` facts adapter's facts are on the duplicate's item; the `http` one asks the exchange, no DynamoDB request); commit, counting the attempt, conditional on the attempts left and the failure log as read"),
        },
        Row {
            label: "verify (free contact)",
            counts: verify_free,
            floor: (3, "read the migration, the caller's account, its failure log and its event head in one batch (the factors are then checked in process); read the owner; commit the change and what it announces at the event head read, counting the attempt, conditional on the attempts left and the failure log as read"),
        },
        Row {
            label: "verify (wrong code)",
            counts: verify_wrong,
            floor: (2, "read the migration, the caller's account, its failure log and its event head in one batch (the factors are then checked in process); one transaction: the attempt counted at the count read, the failure appended to the log at the version read, a right TOTP code's step spent, the audit record, and at the last allowed failure the lock with what it announces"),
        },
        Row {
            label: "migrate",
            counts: migrate,
            floor: (3, "read the migration and the caller's account; read main, duplicate, markers and owner in one batch; conditional update with audit"),
        },
        Row {
            label: "close",
            counts: close,
            floor: (2, "read the migration and the caller's account; one transaction (the notices need nothing read if migrate records the duplicate's other contact); with the duplicate's authenticator code, 2 more: count the attempt, read the duplicate's secret"),
        },
        Row {
            label: "get",
            counts: get,
            floor: (1, "read the migration and the caller's account (it must be active) in one batch"),
        },
        Row {
            label: "cancel",
            counts: cancel,
            floor: (2, "read the migration and the caller's account (its audit record names its contacts, and an expired one is no longer cancellable); one transaction of the conditional update and the audit record"),
        },
    ];
    // A completed migration takes the bound-contact verification.
    let floor = rows
        .iter()
        .filter(|r| ["start", "verify (bound contact)", "migrate", "close"].contains(&r.label))
        .map(|r| r.floor.0)
        .sum();
    rows.push(Row {
        label: "completed migration (start, verify, migrate, close)",
        counts: completed,
        floor: (floor, "sum of the floors of its steps"),
    });
    (rows, relayed)
}
