//! What a process sends to AWS, as IAM authorises it.
//!
//! [`Recorder::wrap`] gives an SDK configuration whose HTTP client records
//! every request before it leaves: every SDK client built from that
//! configuration is recorded, whatever its service, including clients added
//! to the app later, without touching them. Each request is read as IAM reads
//! it ([`Sent::accesses`]): the service from the SigV4 credential scope (the
//! signing name is the IAM prefix), the operation from the wire protocol
//! (`X-Amz-Target` for JSON protocols, `Action` for query, the path for
//! REST), and the resource ARNs and condition keys from the body. Services
//! the reader knows nothing about are recorded as `service:Operation` on `*`,
//! so a new call still shows up as an action its role must grant.

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The account the local stack stands for: ARNs built from requests and
/// from the template both use it (it is also the emulators' own).
pub const ACCOUNT_ID: &str = "123456789012";

/// The partition key attribute: IAM's `dynamodb:LeadingKeys` are its values.
const PARTITION_KEY: &str = contact_migration::store::item::PK;

/// One authorisation IAM makes for a request: an action on a resource, with
/// the condition keys the request carries. A request can need several (a
/// transaction is authorised item by item; SSM decrypts through KMS).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    /// `service:Action`, as a policy names it.
    pub action: String,
    /// The resource's ARN, or `*` for an action on no resource (SMS).
    pub resource: String,
    /// Condition keys and their values (several for a multivalued key).
    pub context: BTreeMap<String, Vec<String>>,
}

impl Access {
    fn new(action: String, resource: String) -> Access {
        Access {
            action,
            resource,
            context: BTreeMap::new(),
        }
    }

    fn with(mut self, key: &str, values: Vec<String>) -> Access {
        self.context.insert(key.to_owned(), values);
        self
    }
}

/// One request as it went on the wire.
#[derive(Clone, Debug)]
pub struct Sent {
    /// The SigV4 signing name (`dynamodb`, `ses`, `sns`, `ssm`, `kms`, `events`).
    pub service: String,
    pub operation: String,
    pub accesses: Vec<Access>,
}

#[derive(Debug, Default)]
struct Log {
    sent: Vec<Sent>,
    /// (service, operation, error code) of requests to refuse, once each.
    refusals: Vec<(String, String, String)>,
}

/// Records every request of the SDK clients built from a configuration it wrapped.
#[derive(Clone, Debug, Default)]
pub struct Recorder(Arc<Mutex<Log>>);

impl Recorder {
    /// `aws` with its HTTP client wrapped by this recorder.
    pub fn wrap(&self, aws: &aws_config::SdkConfig) -> aws_config::SdkConfig {
        let inner = aws
            .http_client()
            .expect("the SDK configuration has an HTTP client");
        aws.to_builder()
            .http_client(RecordingClient {
                inner,
                recorder: self.clone(),
            })
            .build()
    }

    /// The requests sent since the last call.
    pub fn take(&self) -> Vec<Sent> {
        std::mem::take(&mut self.0.lock().unwrap().sent)
    }

    /// The next `service` `operation` request is recorded, then answered
    /// with the error `code` (a 400, which is not retried) instead of being
    /// sent: a delivery failure (`MessageRejected`), or a concurrent writer
    /// that came first (`ConditionalCheckFailedException`).
    pub fn refuse_next(&self, service: &str, operation: &str, code: &str) {
        self.0.lock().unwrap().refusals.push((
            service.to_owned(),
            operation.to_owned(),
            code.to_owned(),
        ));
    }

    /// Records `sent`; returns the error to answer it with instead, if any.
    fn record(&self, sent: Sent) -> Option<String> {
        let mut log = self.0.lock().unwrap();
        let refused = log
            .refusals
            .iter()
            .position(|(s, o, _)| *s == sent.service && *o == sent.operation)
            .map(|i| log.refusals.remove(i).2);
        log.sent.push(sent);
        refused
    }
}

#[derive(Debug)]
struct RecordingClient {
    inner: SharedHttpClient,
    recorder: Recorder,
}

impl HttpClient for RecordingClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(RecordingConnector {
            inner: self.inner.http_connector(settings, components),
            recorder: self.recorder.clone(),
        })
    }
}

#[derive(Debug)]
struct RecordingConnector {
    inner: SharedHttpConnector,
    recorder: Recorder,
}

impl HttpConnector for RecordingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        if let Some(code) = self.recorder.record(read(&request)) {
            // The JSON protocols read the code from `__type`, REST from the header.
            let body = json!({"__type": code, "message": "refused by the test"}).to_string();
            let mut refused =
                HttpResponse::new(StatusCode::try_from(400).expect("status"), body.into());
            refused.headers_mut().insert("x-amzn-ErrorType", code);
            refused
                .headers_mut()
                .insert("content-type", "application/json");
            return HttpConnectorFuture::ready(Ok(refused));
        }
        self.inner.call(request)
    }
}

/// The region and signing name of a SigV4 `Authorization` header
/// (`Credential=<key>/<date>/<region>/<service>/aws4_request`).
fn credential_scope(authorization: &str) -> Option<(String, String)> {
    let credential = authorization.split("Credential=").nth(1)?;
    let scope: Vec<&str> = credential.split([',', ' ']).next()?.split('/').collect();
    match scope.as_slice() {
        [_, _, region, service, "aws4_request"] => {
            Some(((*region).to_owned(), (*service).to_owned()))
        }
        _ => None,
    }
}

/// REST operations, by signing name, method and path (the JSON and query
/// protocols name their operation in the request).
const REST_OPERATIONS: &[(&str, &str, &str, &str)] = &[
    ("ses", "POST", "/v2/email/outbound-emails", "SendEmail"),
    (
        "ses",
        "POST",
        "/v2/email/outbound-bulk-emails",
        "SendBulkEmail",
    ),
];

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A form-encoded body (the query protocol) as a JSON object of strings.
fn form(body: &[u8]) -> Value {
    Value::Object(
        String::from_utf8_lossy(body)
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (percent_decode(k), Value::String(percent_decode(v))))
            .collect(),
    )
}

fn read(request: &HttpRequest) -> Sent {
    let headers = request.headers();
    let (region, service) = headers
        .get("authorization")
        .and_then(credential_scope)
        .unwrap_or_else(|| ("unknown".into(), "unsigned".into()));
    let body = request.body().bytes().unwrap_or_default();
    let (operation, input) = if let Some(target) = headers.get("x-amz-target") {
        let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
        (
            operation,
            serde_json::from_slice(body).unwrap_or(Value::Null),
        )
    } else if headers
        .get("content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"))
    {
        let input = form(body);
        let operation = input["Action"].as_str().unwrap_or("unknown").to_owned();
        (operation, input)
    } else {
        let path = request
            .uri()
            .split("://")
            .last()
            .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
            .unwrap_or("/");
        let path = path.split('?').next().unwrap_or(path);
        let operation = REST_OPERATIONS
            .iter()
            .find(|(s, m, p, _)| *s == service && *m == request.method() && *p == path)
            .map(|(_, _, _, operation)| (*operation).to_owned())
            .unwrap_or_else(|| format!("{} {path}", request.method()));
        (
            operation,
            serde_json::from_slice(body).unwrap_or(Value::Null),
        )
    };
    let arn = Arns {
        region: region.clone(),
    };
    let accesses = match service.as_str() {
        "dynamodb" => dynamodb(&arn, &operation, &input),
        "ssm" => ssm(&arn, &operation, &input),
        "ses" => ses(&arn, &operation, &input),
        "sns" => sns(&operation, &input),
        "kms" => kms(&arn, &operation, &input),
        "events" => events(&arn, &operation, &input),
        _ => vec![],
    };
    let accesses = if accesses.is_empty() {
        vec![Access::new(format!("{service}:{operation}"), "*".into())]
    } else {
        accesses
    };
    Sent {
        service,
        operation,
        accesses,
    }
}

struct Arns {
    region: String,
}

impl Arns {
    fn of(&self, service: &str, resource: &str) -> String {
        format!("arn:aws:{service}:{}:{ACCOUNT_ID}:{resource}", self.region)
    }
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(text)
        .collect()
}

/// The partition key value of a DynamoDB key or item in JSON.
fn partition_key(key: &Value) -> Option<String> {
    key[PARTITION_KEY]
        .as_object()
        .and_then(|v| v.values().next())
        .and_then(text)
}

fn leading_keys(keys: impl IntoIterator<Item = Option<String>>) -> Vec<String> {
    let mut keys: Vec<String> = keys.into_iter().flatten().collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The partition key value a `Query` asks for: the `pk = :value` clause of
/// its key condition.
fn queried_partition(input: &Value) -> Option<String> {
    let condition = input["KeyConditionExpression"].as_str()?;
    condition.split(" AND ").find_map(|clause| {
        let (name, placeholder) = clause.split_once('=')?;
        let name = name.trim().trim_start_matches('(');
        let name = input["ExpressionAttributeNames"][name]
            .as_str()
            .unwrap_or(name);
        (name == PARTITION_KEY)
            .then(|| input["ExpressionAttributeValues"][placeholder.trim()]["S"].as_str())
            .flatten()
            .map(str::to_owned)
    })
}

/// DynamoDB: each item of a transaction as the action of its kind; the
/// partition keys touched as `dynamodb:LeadingKeys`.
fn dynamodb(arn: &Arns, operation: &str, input: &Value) -> Vec<Access> {
    let table = |input: &Value| {
        arn.of(
            "dynamodb",
            &format!("table/{}", text(&input["TableName"]).unwrap_or_default()),
        )
    };
    let keyed = |action: &str, input: &Value, key: &Value| {
        Access::new(format!("dynamodb:{action}"), table(input))
            .with("dynamodb:LeadingKeys", leading_keys([partition_key(key)]))
    };
    match operation {
        "GetItem" | "UpdateItem" | "DeleteItem" => vec![keyed(operation, input, &input["Key"])],
        "PutItem" => vec![keyed(operation, input, &input["Item"])],
        "Query" => vec![Access::new("dynamodb:Query".into(), table(input)).with(
            "dynamodb:LeadingKeys",
            leading_keys([queried_partition(input)]),
        )],
        "TransactWriteItems" | "TransactGetItems" => input["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let (kind, request) = item.as_object()?.iter().next()?;
                let (action, key) = match kind.as_str() {
                    "Put" => ("PutItem", &request["Item"]),
                    "Update" => ("UpdateItem", &request["Key"]),
                    "Delete" => ("DeleteItem", &request["Key"]),
                    "ConditionCheck" => ("ConditionCheckItem", &request["Key"]),
                    "Get" => ("GetItem", &request["Key"]),
                    _ => return None,
                };
                Some(keyed(action, request, key))
            })
            .collect(),
        "BatchGetItem" | "BatchWriteItem" => input["RequestItems"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, requests)| {
                let keys: Vec<Option<String>> = match operation {
                    "BatchGetItem" => requests["Keys"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(partition_key)
                        .collect(),
                    _ => requests
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|r| {
                            partition_key(&r["PutRequest"]["Item"])
                                .or_else(|| partition_key(&r["DeleteRequest"]["Key"]))
                        })
                        .collect(),
                };
                Access::new(
                    format!("dynamodb:{operation}"),
                    arn.of("dynamodb", &format!("table/{name}")),
                )
                .with("dynamodb:LeadingKeys", leading_keys(keys))
            })
            .collect(),
        _ => vec![Access::new(format!("dynamodb:{operation}"), table(input))],
    }
}

/// The AWS managed key `aws/ssm` SecureStrings are encrypted with by
/// default, as the KMS key a decrypting read goes through.
pub const SSM_MANAGED_KEY: &str = "aws-managed-key-aws-ssm";

/// SSM: the parameter read; with decryption (a SecureString), the KMS
/// Decrypt SSM makes on the caller's behalf.
fn ssm(arn: &Arns, operation: &str, input: &Value) -> Vec<Access> {
    let names = match operation {
        "GetParameters" => strings(&input["Names"]),
        _ => text(&input["Name"]).into_iter().collect(),
    };
    let mut accesses = Vec::new();
    for name in names {
        let parameter = arn.of(
            "ssm",
            &format!("parameter/{}", name.trim_start_matches('/')),
        );
        accesses.push(Access::new(format!("ssm:{operation}"), parameter.clone()));
        if input["WithDecryption"].as_bool() == Some(true) {
            accesses.push(
                Access::new(
                    "kms:Decrypt".into(),
                    arn.of("kms", &format!("key/{SSM_MANAGED_KEY}")),
                )
                .with(
                    "kms:ViaService",
                    vec![format!("ssm.{}.amazonaws.com", arn.region)],
                )
                .with("kms:ResourceAliases", vec!["alias/aws/ssm".into()])
                .with("kms:CallerAccount", vec![ACCOUNT_ID.into()])
                .with("kms:EncryptionContext:PARAMETER_ARN", vec![parameter]),
            );
        }
    }
    accesses
}

/// The address of `Name <address>` or of a bare address.
fn address(from: &str) -> String {
    match (from.rfind('<'), from.rfind('>')) {
        (Some(start), Some(end)) if start < end => from[start + 1..end].to_owned(),
        _ => from.trim().to_owned(),
    }
}

/// SES v2: the sending identity (the sender's domain) and the configuration
/// set, if one is named, with the sender as `ses:FromAddress`.
fn ses(arn: &Arns, operation: &str, input: &Value) -> Vec<Access> {
    let from = address(input["FromEmailAddress"].as_str().unwrap_or_default());
    let domain = from.rsplit('@').next().unwrap_or_default().to_owned();
    let action = format!("ses:{operation}");
    let mut resources = vec![arn.of("ses", &format!("identity/{domain}"))];
    if let Some(set) = input["ConfigurationSetName"].as_str() {
        resources.push(arn.of("ses", &format!("configuration-set/{set}")));
    }
    resources
        .into_iter()
        .map(|resource| {
            Access::new(action.clone(), resource)
                .with("ses:FromAddress", vec![from.clone()])
                .with("ses:ApiVersion", vec!["2".into()])
        })
        .collect()
}

/// SNS: a topic or target ARN; an SMS to a phone number has no resource.
fn sns(operation: &str, input: &Value) -> Vec<Access> {
    let resource = text(&input["TopicArn"])
        .or_else(|| text(&input["TargetArn"]))
        .unwrap_or_else(|| "*".into());
    vec![Access::new(format!("sns:{operation}"), resource)]
}

/// KMS: the key named by `KeyId` (a Decrypt must name it: the ciphertext's
/// key cannot be read from the request otherwise), with the encryption
/// context as `kms:EncryptionContext:<key>`.
fn kms(arn: &Arns, operation: &str, input: &Value) -> Vec<Access> {
    let resource = match input["KeyId"].as_str() {
        Some(id) if id.starts_with("arn:") => id.to_owned(),
        Some(alias) if alias.starts_with("alias/") => arn.of("kms", alias),
        Some(id) => arn.of("kms", &format!("key/{id}")),
        None => arn.of("kms", "key/<no KeyId in the request>"),
    };
    let mut access = Access::new(format!("kms:{operation}"), resource)
        .with("kms:CallerAccount", vec![ACCOUNT_ID.into()]);
    if let Some(context) = input["EncryptionContext"].as_object() {
        for (key, value) in context {
            access = access.with(
                &format!("kms:EncryptionContext:{key}"),
                text(value).into_iter().collect(),
            );
        }
        access = access.with(
            "kms:EncryptionContextKeys",
            context.keys().cloned().collect(),
        );
    }
    if let Some(algorithm) = text(&input["EncryptionAlgorithm"]) {
        access = access.with("kms:EncryptionAlgorithm", vec![algorithm]);
    }
    vec![access]
}

/// EventBridge: each entry on its event bus, with its source and detail type.
fn events(arn: &Arns, operation: &str, input: &Value) -> Vec<Access> {
    input["Entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| {
            let bus = entry["EventBusName"].as_str().unwrap_or("default");
            let resource = if bus.starts_with("arn:") {
                bus.to_owned()
            } else {
                arn.of("events", &format!("event-bus/{bus}"))
            };
            Access::new(format!("events:{operation}"), resource)
                .with(
                    "events:source",
                    text(&entry["Source"]).into_iter().collect(),
                )
                .with(
                    "events:detail-type",
                    text(&entry["DetailType"]).into_iter().collect(),
                )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_scope_names_the_region_and_the_signing_service() {
        assert_eq!(
            credential_scope("AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/ses/aws4_request, SignedHeaders=host, Signature=00"),
            Some(("us-east-1".into(), "ses".into()))
        );
    }

    #[test]
    fn form_bodies_are_decoded() {
        let input = form(b"Action=Publish&PhoneNumber=%2B447400123456&Message=a+b%21");
        assert_eq!(input["PhoneNumber"], "+447400123456");
        assert_eq!(input["Message"], "a b!");
    }
}
