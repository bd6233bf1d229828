//! The invariants of the whole table, checked by reading every item: what
//! must hold after any sequence of requests, whatever their interleaving,
//! including that every announcing commit has exactly its outbox.

use contact_migration::domain::quota::{Hit, Quota};
use contact_migration::domain::{AccountStatus, Policy};
use contact_migration::store::item::{self, Item};
use contact_migration::store::{outbox, StoredOutbox};
use std::collections::{HashMap, HashSet};

use crate::Stack;

/// Every item of the stack's table.
pub async fn scan(stack: &Stack) -> Vec<Item> {
    let client = stack.app.store.client();
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(stack.app.store.table())
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        items.extend(out.items.unwrap_or_default());
        start = out.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

fn pk(it: &Item) -> &str {
    item::get_s(it, item::PK).unwrap_or_default()
}

fn sk(it: &Item) -> &str {
    item::get_s(it, item::SK).unwrap_or_default()
}

/// Checks every invariant; returns the violations found (empty when sound).
pub fn violations(items: &[Item], policy: &Policy) -> Vec<String> {
    let mut found = Vec::new();
    let accounts: HashMap<String, &Item> = items
        .iter()
        .filter(|it| pk(it).starts_with("ACCOUNT#") && sk(it) == "ACCOUNT")
        .map(|it| {
            (
                item::get_s(it, "account_id").unwrap_or_default().to_owned(),
                it,
            )
        })
        .collect();
    let owners: HashMap<String, String> = items
        .iter()
        .filter(|it| pk(it).starts_with("CONTACT#"))
        .map(|it| {
            (
                pk(it)["CONTACT#".len()..].to_owned(),
                item::get_s(it, "owner").unwrap_or_default().to_owned(),
            )
        })
        .collect();

    // Each contact has one owner, and that owner's record agrees; and every
    // contact on a record is owned by it.
    for (contact, owner) in &owners {
        let (channel, value) = contact.split_once('#').unwrap_or_default();
        match accounts.get(owner) {
            None => found.push(format!(
                "contact {contact} owned by missing account {owner}"
            )),
            Some(account) => {
                if item::get_s(account, channel) != Some(value) {
                    found.push(format!(
                        "contact {contact} owned by {owner}, whose record disagrees"
                    ));
                }
            }
        }
    }
    for (id, account) in &accounts {
        for channel in ["email", "phone"] {
            if let Some(value) = item::get_s(account, channel) {
                if owners.get(&format!("{channel}#{value}")) != Some(id) {
                    found.push(format!(
                        "account {id} lists {channel} {value} without owning it"
                    ));
                }
            }
        }
        let closed = item::get_s(account, "status") == Some(AccountStatus::Closed.as_str());
        if closed {
            if item::get_s(account, "email").is_some() || item::get_s(account, "phone").is_some() {
                found.push(format!("closed account {id} still has a contact"));
            }
            // A closed account's facts no longer change (the facts port
            // refuses them), so these are the facts it was closed with.
            if item::get_bool(account, "kyc_verified") {
                found.push(format!("identity-verified account {id} was closed"));
            }
            if item::get_bool(account, "pending_withdrawals") {
                found.push(format!(
                    "account {id} was closed with a withdrawal in flight"
                ));
            }
            if item::get_bool(account, "referral_code_active") {
                found.push(format!("closed account {id} has an active referral code"));
            }
        }
    }

    // Once-only: one completed migration per contact and per (main, channel),
    // each with its markers and exactly one close audit record.
    let migrations: Vec<&Item> = items
        .iter()
        .filter(|it| pk(it).starts_with("MIGRATION#"))
        .collect();
    let mut per_contact: HashMap<String, usize> = HashMap::new();
    let mut per_receiver: HashMap<(String, String), usize> = HashMap::new();
    for m in &migrations {
        let id = item::get_s(m, "migration_id").unwrap_or_default();
        let failed: u32 = item::get_n(m, "failed_attempts").unwrap_or(0);
        if failed > policy.max_failed_attempts {
            found.push(format!("migration {id} checked {failed} failed attempts"));
        }
        let closed_account = item::get_s(m, "closed_account_id");
        if item::get_s(m, "state") != Some("completed") || closed_account.is_none() {
            continue;
        }
        let channel = item::get_s(m, "channel").unwrap_or_default();
        let contact = item::get_s(m, "new_contact").unwrap_or_default();
        let main = item::get_s(m, "account_id").unwrap_or_default();
        *per_contact
            .entry(format!("{channel}#{contact}"))
            .or_default() += 1;
        *per_receiver
            .entry((main.to_owned(), channel.to_owned()))
            .or_default() += 1;
        let marker = items
            .iter()
            .find(|it| pk(it) == format!("MIGRATED#{channel}#{contact}"));
        if marker.and_then(|it| item::get_s(it, "migration_id")) != Some(id) {
            found.push(format!(
                "completed migration {id} has no contact marker of its own"
            ));
        }
        if !items.iter().any(|it| {
            pk(it) == format!("ACCOUNT#{main}") && sk(it) == format!("RECEIVED#{channel}")
        }) {
            found.push(format!("completed migration {id} has no received marker"));
        }
        let closes = items
            .iter()
            .filter(|it| {
                pk(it) == format!("ACCOUNT#{main}")
                    && sk(it).starts_with("AUDIT#")
                    && item::get_s(it, "migration_id") == Some(id)
                    && item::get_s(it, "step") == Some("close")
            })
            .count();
        if closes != 1 {
            found.push(format!(
                "completed migration {id} has {closes} close audit records"
            ));
        }
        match closed_account.and_then(|d| accounts.get(d)) {
            Some(dup) if item::get_s(dup, "status") == Some("closed") => {}
            _ => found.push(format!(
                "completed migration {id} did not leave its duplicate closed"
            )),
        }
    }
    for (contact, n) in per_contact {
        if n > 1 {
            found.push(format!("contact {contact} migrated {n} times"));
        }
    }
    for ((main, channel), n) in per_receiver {
        if n > 1 {
            found.push(format!("account {main} received {n} {channel} migrations"));
        }
    }

    // No quota log holds more events in a window than its limit.
    for q in items.iter().filter(|it| pk(it).starts_with("QUOTA#")) {
        let kind = pk(q).split('#').nth(1).unwrap_or_default();
        let quota: Quota = match kind {
            "starts" => policy.starts_per_account,
            "sends" => policy.sends_per_contact,
            "requester_sends" => policy.sends_per_contact_per_requester,
            "failures" => policy.failures_per_account,
            _ => continue,
        };
        let hits: Vec<Hit> = q
            .get("hits")
            .and_then(|v| v.as_l().ok())
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_s().ok())
                    .filter_map(|v| Hit::decode(v))
                    .collect()
            })
            .unwrap_or_default();
        for h in &hits {
            let in_window = hits
                .iter()
                .filter(|o| o.at <= h.at && o.at > h.at - quota.window)
                .count();
            if in_window > quota.limit as usize {
                found.push(format!(
                    "quota {} holds {in_window} events in a window",
                    pk(q)
                ));
            }
        }
    }
    found.extend(outbox_violations(items, &migrations));

    let distinct: HashSet<&str> = items.iter().map(pk).collect();
    if distinct.is_empty() {
        found.push("the table is empty".into());
    }
    found
}

/// The event types a migration's stored state must have announced: a close,
/// a plain change and a lock each announce; nothing else does.
fn announced(m: &Item) -> &'static [&'static str] {
    match (item::get_s(m, "state"), item::get_s(m, "closed_account_id")) {
        (Some("completed"), Some(_)) => &["contact.migrated.v1", "account.closed.v1"],
        (Some("completed"), None) => &["contact.changed.v1"],
        (Some("locked"), _) => &["migration.locked.v1"],
        _ => &[],
    }
}

/// The outbox: every announcing commit has exactly its outbox, no outbox
/// exists without its commit, and each account's events are numbered
/// 1..=committed with no gap and no repeat.
fn outbox_violations(items: &[Item], migrations: &[&Item]) -> Vec<String> {
    let mut found = Vec::new();
    let outboxes: HashMap<&str, StoredOutbox> = items
        .iter()
        .filter(|it| pk(it).starts_with(outbox::OUTBOX_PREFIX))
        .filter_map(|it| {
            let id = outbox::outbox_migration_id(pk(it))?;
            match outbox::outbox_from_item(it) {
                Ok(stored) => Some((id, stored)),
                Err(e) => {
                    found.push(format!("outbox of {id} unreadable: {e}"));
                    None
                }
            }
        })
        .collect();
    let mut migration_ids = HashSet::new();
    for m in migrations {
        let id = item::get_s(m, "migration_id").unwrap_or_default();
        migration_ids.insert(id);
        let want = announced(m);
        let got: Vec<&str> = outboxes
            .get(id)
            .map(|o| {
                o.outbox
                    .events
                    .iter()
                    .map(|e| e.event_type.as_str())
                    .collect()
            })
            .unwrap_or_default();
        if got != want {
            found.push(format!(
                "migration {id} announced {got:?}, its commit {want:?}"
            ));
        }
    }
    for id in outboxes.keys() {
        if !migration_ids.contains(id) {
            found.push(format!("outbox {id} without a migration"));
        }
    }
    let mut sequences: HashMap<&str, Vec<u64>> = HashMap::new();
    for stored in outboxes.values() {
        for event in &stored.outbox.events {
            sequences
                .entry(event.subject.as_str())
                .or_default()
                .push(event.sequence_number());
        }
    }
    for head in items.iter().filter(|it| sk(it) == "EVENTS") {
        let account = pk(head).trim_start_matches("ACCOUNT#");
        let committed: u64 = item::get_n(head, "committed").unwrap_or(0);
        let published: u64 = item::get_n(head, "published").unwrap_or(0);
        let mut numbers = sequences.remove(account).unwrap_or_default();
        numbers.sort_unstable();
        if numbers != (1..=committed).collect::<Vec<_>>() {
            found.push(format!(
                "account {account} committed {committed} events, numbered {numbers:?}"
            ));
        }
        if published > committed {
            found.push(format!(
                "account {account} published {published} of {committed} events"
            ));
        }
    }
    for (account, numbers) in sequences {
        found.push(format!(
            "account {account} has events {numbers:?} but no event head"
        ));
    }
    found
}

/// A closed account stays closed: `before` and `after` are two scans.
pub fn closures_are_permanent(before: &[Item], after: &[Item]) -> Vec<String> {
    let closed = |items: &[Item]| -> HashSet<String> {
        items
            .iter()
            .filter(|it| sk(it) == "ACCOUNT" && item::get_s(it, "status") == Some("closed"))
            .map(|it| pk(it).to_owned())
            .collect()
    };
    closed(before)
        .difference(&closed(after))
        .map(|pk| format!("{pk} was reopened"))
        .collect()
}
