//! Operator command line for the contact migration table. Uses `TABLE_NAME`,
//! `TOTP_KEY_ID` (create-account) and the standard AWS environment
//! (`AWS_ENDPOINT_URL_DYNAMODB` and `AWS_ENDPOINT_URL_KMS` for local).

use contact_migration::domain::{totp, Account, AccountStatus, Channel, Contact};
use contact_migration::store::Store;
use contact_migration::vault::Vault;
use serde_json::{json, Value};
use std::process::ExitCode;

mod relay;

const USAGE: &str = "\
usage: admin <command>

  create-table
      create the table if it does not exist
  create-account --email E [--phone P] [--kyc] [--with-assets] [--referral-code C] [--no-totp]
      prints {\"account_id\": \"...\", \"totp_secret\": \"<base32>\"}: the only time the
      secret is shown in the clear; the table holds it sealed under TOTP_KEY_ID
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

pub(crate) async fn aws() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
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
        "show-account" => {
            let id = single_argument(rest, "show-account ID")?;
            let account = store()
                .await?
                .account(id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no account {id}"))?;
            println!("{}", account_json(&account));
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
    let (mut kyc, mut assets, mut with_totp) = (false, false, true);
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
        kyc_verified: kyc,
        has_assets: assets,
        referral_code_active: true,
        totp_secret: sealed,
        totp_last_step: None,
        token_version: 0,
    };
    if !store()
        .await?
        .create_account(&account)
        .await
        .map_err(|e| e.to_string())?
    {
        return Err("the account or one of its contacts already exists".into());
    }
    println!(
        "{}",
        json!({"account_id": account.account_id, "totp_secret": totp_secret})
    );
    Ok(())
}

fn account_json(a: &Account) -> Value {
    json!({
        "account_id": a.account_id,
        "email": a.email.as_ref().map(Contact::value),
        "phone": a.phone.as_ref().map(Contact::value),
        "status": a.status.as_str(),
        "kyc_verified": a.kyc_verified,
        "referral_code": a.referral_code,
        "referral_code_active": a.referral_code_active,
        "has_assets": a.has_assets,
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
