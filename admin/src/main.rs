//! Operator command line for the contact migration table. Uses `TABLE_NAME`,
//! `TOTP_KEY_ID` (create-account), the facts port's configuration
//! (`FACTS_ADAPTER` and the rest, see `config::facts_source`; create-account
//! and set-facts change facts through whichever adapter it names) and the
//! standard AWS environment (`AWS_ENDPOINT_URL_DYNAMODB` and
//! `AWS_ENDPOINT_URL_KMS` for local).

use contact_migration::config::{facts_source, FactsKeySource, FactsSource, TlsRoots};
use contact_migration::domain::{totp, Account, AccountStatus, Channel, Contact};
use contact_migration::facts::{Changed, Facts, FactsChange, FactsKey};
use contact_migration::store::Store;
use contact_migration::vault::Vault;
use serde_json::{json, Value};
use std::process::ExitCode;

mod relay;

const USAGE: &str = "\
usage: admin <command>

  create-table
      create the table if it does not exist
  create-account --email E [--phone P] [--kyc] [--with-assets] [--pending-withdrawal]
                 [--referral-code C] [--no-totp]
      prints {\"account_id\": \"...\", \"totp_secret\": \"<base32>\"}: the only time the
      secret is shown in the clear; the table holds it sealed under TOTP_KEY_ID
  set-facts ID [--kyc|--no-kyc] [--assets|--no-assets]
               [--pending-withdrawal|--no-pending-withdrawal]
      changes the account's facts through the configured facts adapter and prints
      them; refused for a closed account and during a closure hold
  serve-facts [--listen ADDR]
      the local stand-in of the exchange's facts endpoint (default 127.0.0.1:8007),
      signed with FACTS_HMAC_SECRET, keeping the facts in TABLE_NAME
  show-account ID
      prints the account as JSON
  audit ID
      prints the account's audit trail, one JSON object a line
  totp-code SECRET
      prints the code an authenticator app shows now for a base32 secret
  relay
      delivers the outbox (notices, events) from the table's stream, with the relay
      function's handler, until interrupted; needs SENDER_EMAIL and EVENT_BUS_NAME
  redeliver MIGRATION_ID...
      delivers those migrations' outboxes again, skipping what was delivered";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("admin: {message}");
    ExitCode::FAILURE
}

fn required(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{name} is not set"))
}

/// The SDK's default provider chains (profiles, SSO, instance roles), with
/// the functions' HTTP client and the system's CA certificates.
pub(crate) async fn aws() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(contact_migration::aws::https_client(TlsRoots::System))
        .load()
        .await
}

async fn store() -> Result<Store, String> {
    let table = required("TABLE_NAME")?;
    Ok(Store::new(
        aws_sdk_dynamodb::Client::new(&aws().await),
        table,
    ))
}

/// The vault TOTP secrets are sealed with at enrolment.
async fn vault() -> Result<Vault, String> {
    let key = required("TOTP_KEY_ID")?;
    Ok(Vault::new(aws_sdk_kms::Client::new(&aws().await), key))
}

async fn run(args: &[String]) -> Result<(), String> {
    let (command, rest) = args.split_first().ok_or_else(|| USAGE.to_owned())?;
    match command.as_str() {
        "create-table" => {
            let store = store().await?;
            let created = store.create_table().await.map_err(|e| e.to_string())?;
            println!("{}", json!({"table": store.table(), "created": created}));
            Ok(())
        }
        "create-account" => create_account(rest).await,
        "set-facts" => {
            let (id, flags) = rest
                .split_first()
                .ok_or("usage: admin set-facts ID [--kyc|--no-kyc] ...")?;
            let mut change = FactsChange::default();
            for flag in flags {
                match flag.as_str() {
                    "--kyc" => change.kyc_verified = Some(true),
                    "--no-kyc" => change.kyc_verified = Some(false),
                    "--assets" => change.has_assets = Some(true),
                    "--no-assets" => change.has_assets = Some(false),
                    "--pending-withdrawal" => change.pending_withdrawals = Some(true),
                    "--no-pending-withdrawal" => change.pending_withdrawals = Some(false),
                    other => return Err(format!("unknown option {other}\n{USAGE}")),
                }
            }
            set_facts(&facts().await?, id, change).await
        }
        "serve-facts" => {
            let listen = match rest {
                [] => "127.0.0.1:8007".to_owned(),
                [flag, address] if flag == "--listen" => address.clone(),
                _ => return Err("usage: admin serve-facts [--listen ADDR]".into()),
            };
            let key = match facts_key_source()? {
                FactsKeySource::Env(key) => key,
                FactsKeySource::Ssm(_) => {
                    return Err("serve-facts needs FACTS_HMAC_SECRET itself".into())
                }
            };
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            eprintln!("serve-facts: the exchange's facts endpoint stand-in on http://{listen}");
            admin::stand_in::serve(listener, store().await?, key).await;
            Ok(())
        }
        "show-account" => {
            let id = single_argument(rest, "show-account ID")?;
            let account = store()
                .await?
                .account(id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no account {id}"))?;
            // Facts as the configured adapter tells them, when it answers.
            let pending = match facts().await {
                Ok(facts) => facts.facts(id).await.ok(),
                Err(_) => None,
            };
            let mut shown = account_json(&account, pending.map(|f| f.pending_withdrawals));
            if let Some(facts) = pending {
                shown["kyc_verified"] = json!(facts.kyc_verified);
                shown["has_assets"] = json!(facts.has_assets);
            }
            println!("{shown}");
            Ok(())
        }
        "audit" => {
            let id = single_argument(rest, "audit ID")?;
            for record in store()
                .await?
                .audit_trail(id)
                .await
                .map_err(|e| e.to_string())?
            {
                let fields: serde_json::Map<String, Value> = record
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "pk" | "sk"))
                    .map(|(k, v)| (k.clone(), attribute_json(v)))
                    .collect();
                println!("{}", Value::Object(fields));
            }
            Ok(())
        }
        "totp-code" => {
            let secret = single_argument(rest, "totp-code SECRET")?;
            let now = contact_migration::lambda::now();
            println!(
                "{}",
                totp::code_at(secret, now).ok_or("not a valid base32 secret")?
            );
            Ok(())
        }
        "relay" => relay::run().await,
        "redeliver" => relay::redeliver(rest).await,
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other}\n{USAGE}")),
    }
}

fn single_argument<'a>(rest: &'a [String], usage: &str) -> Result<&'a str, String> {
    match rest {
        [one] => Ok(one),
        _ => Err(format!("usage: admin {usage}")),
    }
}

async fn create_account(args: &[String]) -> Result<(), String> {
    let mut email = None;
    let mut phone = None;
    let mut referral_code = None;
    let (mut kyc, mut assets, mut pending, mut with_totp) = (false, false, false, true);
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--email" => email = Some(value()?),
            "--phone" => phone = Some(value()?),
            "--referral-code" => referral_code = Some(value()?),
            "--kyc" => kyc = true,
            "--with-assets" => assets = true,
            "--pending-withdrawal" => pending = true,
            "--no-totp" => with_totp = false,
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    let email = email.ok_or("create-account needs --email")?;
    let email = Contact::parse(Channel::Email, &email).map_err(|e| e.to_string())?;
    let phone = phone
        .map(|p| Contact::parse(Channel::Phone, &p).map_err(|e| e.to_string()))
        .transpose()?;
    let account_id = uuid::Uuid::new_v4().to_string();
    let totp_secret = with_totp.then(|| totp::generate_secret(&mut rand::rng()));
    let sealed = match &totp_secret {
        Some(secret) => Some(
            vault()
                .await?
                .seal(&account_id, secret)
                .await
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let account = Account {
        referral_code: Some(referral_code.unwrap_or_else(|| account_id[..8].to_ascii_uppercase())),
        account_id,
        email: Some(email),
        phone,
        status: AccountStatus::Active,
        // The facts are set below, through the configured adapter.
        kyc_verified: false,
        has_assets: false,
        referral_code_active: true,
        totp_secret: sealed,
        totp_last_step: None,
        token_version: 0,
    };
    let facts = facts().await?;
    if !store()
        .await?
        .create_account(&account)
        .await
        .map_err(|e| e.to_string())?
    {
        return Err("the account or one of its contacts already exists".into());
    }
    let change = FactsChange {
        kyc_verified: Some(kyc),
        has_assets: Some(assets),
        pending_withdrawals: Some(pending),
    };
    match facts
        .set(
            &account.account_id,
            change,
            contact_migration::lambda::now(),
        )
        .await
        .map_err(|e| format!("{e}: {e:?}"))?
    {
        Changed::Done(_) => {}
        other => return Err(format!("the new account's facts were not set: {other:?}")),
    }
    println!(
        "{}",
        json!({"account_id": account.account_id, "totp_secret": totp_secret})
    );
    Ok(())
}

fn facts_key_source() -> Result<FactsKeySource, String> {
    match facts_source().map_err(|e| e.to_string())? {
        FactsSource::Http { key, .. } => Ok(key),
        FactsSource::Table => std::env::var("FACTS_HMAC_SECRET")
            .ok()
            .and_then(|secret| FactsKey::new(secret.into_bytes()))
            .map(FactsKeySource::Env)
            .ok_or_else(|| "FACTS_HMAC_SECRET (32 bytes or more) is not set".to_owned()),
    }
}

/// The facts port `FACTS_ADAPTER` names.
async fn facts() -> Result<Facts, String> {
    let source = facts_source().map_err(|e| e.to_string())?;
    let key = contact_migration::lambda::resolve_facts_key(&aws().await, &source)
        .await
        .map_err(|e| e.to_string())?;
    Ok(contact_migration::lambda::facts(
        &store().await?,
        &source,
        key,
    ))
}

async fn set_facts(facts: &Facts, id: &str, change: FactsChange) -> Result<(), String> {
    let now = contact_migration::lambda::now();
    match facts
        .set(id, change, now)
        .await
        .map_err(|e| format!("{e}: {e:?}"))?
    {
        Changed::Done(facts) => {
            println!("{}", json!({"account_id": id, "facts": facts}));
            Ok(())
        }
        Changed::UnknownAccount => Err(format!("no account {id}")),
        Changed::AccountClosed => Err(format!(
            "account {id} is closed: its facts can no longer change what happened to it"
        )),
        Changed::Held => Err(format!(
            "account {id} is held for a closure in progress; try again when it ends"
        )),
    }
}

fn account_json(a: &Account, pending_withdrawals: Option<bool>) -> Value {
    json!({
        "account_id": a.account_id,
        "email": a.email.as_ref().map(Contact::value),
        "phone": a.phone.as_ref().map(Contact::value),
        "status": a.status.as_str(),
        "kyc_verified": a.kyc_verified,
        "referral_code": a.referral_code,
        "referral_code_active": a.referral_code_active,
        "has_assets": a.has_assets,
        "pending_withdrawals": pending_withdrawals,
        "token_version": a.token_version,
        "totp_enrolled": a.has_totp(),
    })
}

fn attribute_json(v: &aws_sdk_dynamodb::types::AttributeValue) -> Value {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match v {
        A::S(s) => json!(s),
        A::N(n) => n
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| json!(n)),
        A::Bool(b) => json!(b),
        _ => Value::Null,
    }
}
