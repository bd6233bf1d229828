//! `template.yaml` as API Gateway, Lambda and IAM will read it: each
//! function's routes, the streams it is invoked from and the statements of
//! its role, with the intrinsic functions (`!Ref`, `!GetAtt`, `!Sub`, `!If`,
//! `!Select`, `!Split`, `!Join` and the condition functions) evaluated for
//! one deployment; and IAM's evaluation of
//! those statements against the [`Access`]es a function was seen to need,
//! both ways: an access no statement allows is *missing*, an action,
//! resource or condition value no access needed is *unused*.
//!
//! The deployment is the local stack: the template's logical ids are bound
//! to the local resources through the functions' environment (`TABLE_NAME:
//! !Ref Table` binds `Table` to the table the functions were configured
//! with), so a resource the functions learn from their environment needs no
//! entry here.

use serde_json::{json, Value as Json};
use serde_yaml::{Mapping, Value as Yaml};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::wire::{Access, ACCOUNT_ID};

/// The stack name `AWS::StackName` stands for.
pub const STACK_NAME: &str = "contact-migration";

/// Actions the Lambda service uses on a function's behalf (its logs), never
/// sent by the function's own code: allowed only on the function's own log
/// group.
pub const RUNTIME_ACTIONS: &[&str] = &["logs:CreateLogStream", "logs:PutLogEvents"];

/// Actions the event source mapping of a DynamoDB stream performs with the
/// function's role to read the stream, never sent by the function's own
/// code: allowed only on the stream.
pub const STREAM_ACTIONS: &[&str] = &[
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
];

/// The action with which an event source mapping sends a batch it gave up
/// on to its on-failure destination, by destination type.
fn on_failure_action(kind: &str, logical_id: &str) -> &'static str {
    match kind {
        "SQS" => "sqs:SendMessage",
        "SNS" => "sns:Publish",
        other => panic!(
            "{logical_id}: on-failure destinations of type {other} are not known to tests/src/iam.rs"
        ),
    }
}

pub struct Template {
    parameters: Mapping,
    conditions: Mapping,
    resources: Mapping,
    globals: Mapping,
    /// Parameter values and resources' physical ids (`Table`) or attributes
    /// (`Key.Arn`) of this deployment.
    bound: BTreeMap<String, String>,
    region: String,
}

/// One statement of a role's policy, evaluated.
#[derive(Debug, Clone)]
pub struct Statement {
    pub sid: String,
    pub allow: bool,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    pub not_resources: Vec<String>,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone)]
pub struct Condition {
    pub operator: String,
    pub key: String,
    pub values: Vec<String>,
}

/// A stream a function is invoked from (a `DynamoDB` event: an event source
/// mapping reads the stream with the function's role).
#[derive(Debug, Clone)]
pub struct StreamSource {
    /// The event's name in the template.
    pub event: String,
    /// The stream's ARN.
    pub stream: String,
    /// Where the mapping sends the batches it gives up on: the
    /// destination's type (`SQS`, `SNS`) and ARN.
    pub on_failure: Option<(String, String)>,
}

/// A function of the template: what it is built from, what it serves, what
/// its role allows.
#[derive(Debug, Clone)]
pub struct Function {
    pub logical_id: String,
    /// The binary it runs (`functions/<binary>`).
    pub binary: String,
    /// (method, path) of each HTTP API event.
    pub routes: Vec<(String, String)>,
    /// The streams of its `DynamoDB` events.
    pub streams: Vec<StreamSource>,
    /// The ARN of its log group.
    pub log_group: Option<String>,
    pub role: String,
    pub statements: Vec<Statement>,
}

/// An access a function was seen to need, and what needed it.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The endpoint served, or `init`.
    pub by: String,
    /// `service:Operation` as sent.
    pub request: String,
    pub access: Access,
}

fn as_list(v: &Json) -> Vec<String> {
    match v {
        Json::Array(items) => items.iter().map(scalar).collect(),
        Json::Null => vec![],
        other => vec![scalar(other)],
    }
}

fn scalar(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn mapping(v: Option<&Yaml>) -> Mapping {
    v.and_then(Yaml::as_mapping).cloned().unwrap_or_default()
}

/// The intrinsic function `v` is, in short (`!Sub`) or long (`Fn::Sub`) form.
fn intrinsic(v: &Yaml) -> Option<(String, &Yaml)> {
    match v {
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let name = match name {
                "Ref" | "Condition" => name.to_owned(),
                other => format!("Fn::{other}"),
            };
            Some((name, &tagged.value))
        }
        Yaml::Mapping(m) if m.len() == 1 => {
            let (k, v) = m.iter().next()?;
            let k = k.as_str()?;
            (k == "Ref" || k == "Condition" || k.starts_with("Fn::")).then(|| (k.to_owned(), v))
        }
        _ => None,
    }
}

/// IAM's wildcard match: `*` any run of characters, `?` any one.
pub fn like(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, vi));
            pi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl Template {
    /// Reads `path` for a deployment in `region` whose functions' environment
    /// variables have the values `environment` gives.
    pub fn load(
        path: &Path,
        region: &str,
        environment: impl Fn(&str) -> Option<String>,
    ) -> Template {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let doc: Yaml = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
        let mut template = Template {
            parameters: mapping(doc.get("Parameters")),
            conditions: mapping(doc.get("Conditions")),
            resources: mapping(doc.get("Resources")),
            globals: mapping(doc.get("Globals").and_then(|g| g.get("Function"))),
            bound: BTreeMap::new(),
            region: region.to_owned(),
        };
        template.bind(environment);
        template
    }

    /// Binds what each function's environment refers to (`!Ref X`,
    /// `!GetAtt X.Attr`) to the value the variable has in this deployment.
    fn bind(&mut self, environment: impl Fn(&str) -> Option<String>) {
        let mut variables = Vec::new();
        let mut collect = |properties: Option<&Yaml>| {
            let found = properties
                .and_then(|p| p.get("Environment"))
                .and_then(|e| e.get("Variables"))
                .and_then(Yaml::as_mapping);
            for (name, value) in found.into_iter().flatten() {
                if let Some(name) = name.as_str() {
                    variables.push((name.to_owned(), value.clone()));
                }
            }
        };
        collect(Some(&Yaml::Mapping(self.globals.clone())));
        for (_, resource) in &self.resources {
            if resource.get("Type").and_then(Yaml::as_str) == Some("AWS::Serverless::Function") {
                collect(resource.get("Properties"));
            }
        }
        for (name, value) in variables {
            let Some(actual) = environment(&name).filter(|v| !v.is_empty()) else {
                continue;
            };
            match intrinsic(&value) {
                Some((function, Yaml::String(target)))
                    if function == "Ref" || function == "Fn::GetAtt" =>
                {
                    self.bound.insert(target.clone(), actual);
                }
                _ => {}
            }
        }
    }

    fn arn(&self, service: &str, resource: &str) -> String {
        format!("arn:aws:{service}:{}:{ACCOUNT_ID}:{resource}", self.region)
    }

    fn resource(&self, logical_id: &str) -> &Yaml {
        self.resources
            .get(logical_id)
            .unwrap_or_else(|| panic!("template.yaml has no resource {logical_id}"))
    }

    fn resource_type(&self, logical_id: &str) -> &str {
        self.resource(logical_id)
            .get("Type")
            .and_then(Yaml::as_str)
            .unwrap_or_default()
    }

    fn property(&self, logical_id: &str, name: &str) -> Option<String> {
        let value = self.resource(logical_id).get("Properties")?.get(name)?;
        self.eval(value).map(|v| scalar(&v))
    }

    /// `Ref` of a parameter, a pseudo parameter or a resource; `None` for
    /// `AWS::NoValue`.
    fn reference(&self, name: &str) -> Option<Json> {
        let pseudo = match name {
            "AWS::NoValue" => return None,
            "AWS::Partition" => Some("aws".to_owned()),
            "AWS::Region" => Some(self.region.clone()),
            "AWS::AccountId" => Some(ACCOUNT_ID.to_owned()),
            "AWS::StackName" => Some(STACK_NAME.to_owned()),
            "AWS::URLSuffix" => Some("amazonaws.com".to_owned()),
            _ => None,
        };
        if let Some(value) = pseudo {
            return Some(json!(value));
        }
        if let Some(parameter) = self.parameters.get(name) {
            let value = self
                .bound
                .get(name)
                .cloned()
                .or_else(|| {
                    parameter
                        .get("Default")
                        .and_then(|d| self.eval(d))
                        .map(|d| scalar(&d))
                })
                .unwrap_or_else(|| {
                    panic!("parameter {name} has no default and no value in this deployment")
                });
            return Some(
                if parameter.get("Type").and_then(Yaml::as_str) == Some("CommaDelimitedList") {
                    json!(value.split(',').collect::<Vec<_>>())
                } else {
                    json!(value)
                },
            );
        }
        if let Some(physical) = self.bound.get(name) {
            return Some(json!(physical));
        }
        let physical = match self.resource_type(name) {
            "AWS::Logs::LogGroup" => self.property(name, "LogGroupName"),
            "AWS::DynamoDB::Table" => self.property(name, "TableName"),
            "AWS::SNS::Topic" => Some(
                self.arn(
                    "sns",
                    &self
                        .property(name, "TopicName")
                        .unwrap_or_else(|| name.to_owned()),
                ),
            ),
            "AWS::Events::EventBus" => self.property(name, "Name"),
            // A queue's Ref is its URL.
            "AWS::SQS::Queue" => Some(format!(
                "https://sqs.{}.amazonaws.com/{ACCOUNT_ID}/{}",
                self.region,
                self.queue_name(name)
            )),
            "AWS::KMS::Alias" => self.property(name, "AliasName"),
            _ => None,
        };
        Some(json!(physical.unwrap_or_else(|| name.to_owned())))
    }

    /// `GetAtt` of the resource types roles name.
    fn attribute(&self, logical_id: &str, attribute: &str) -> String {
        if let Some(value) = self.bound.get(&format!("{logical_id}.{attribute}")) {
            return value.clone();
        }
        let physical = || {
            self.reference(logical_id)
                .map(|v| scalar(&v))
                .unwrap_or_default()
        };
        match (self.resource_type(logical_id), attribute) {
            ("AWS::DynamoDB::Table", "Arn") => {
                self.arn("dynamodb", &format!("table/{}", physical()))
            }
            ("AWS::DynamoDB::Table", "StreamArn") => {
                self.arn("dynamodb", &format!("table/{}/stream/*", physical()))
            }
            ("AWS::Logs::LogGroup", "Arn") => {
                self.arn("logs", &format!("log-group:{}:*", physical()))
            }
            ("AWS::KMS::Key", "Arn") => self.arn("kms", &format!("key/{}", physical())),
            ("AWS::KMS::Key", "KeyId") => physical(),
            ("AWS::SNS::Topic", "TopicArn") => physical(),
            ("AWS::Events::EventBus", "Arn") => {
                self.arn("events", &format!("event-bus/{}", physical()))
            }
            ("AWS::Events::EventBus", "Name") => physical(),
            ("AWS::SQS::Queue", "Arn") => self.arn("sqs", &self.queue_name(logical_id)),
            ("AWS::SQS::Queue", "QueueName") => self.queue_name(logical_id),
            ("AWS::SQS::Queue", "QueueUrl") => physical(),
            ("AWS::IAM::Role", "Arn") => format!("arn:aws:iam::{ACCOUNT_ID}:role/{logical_id}"),
            ("AWS::Serverless::Function" | "AWS::Lambda::Function", "Arn") => {
                self.arn("lambda", &format!("function:{logical_id}"))
            }
            (kind, _) => panic!(
                "!GetAtt {logical_id}.{attribute} ({kind}) is not known to tests/src/iam.rs; \
                 add its ARN format there"
            ),
        }
    }

    /// A queue's name: its `QueueName`, or (where CloudFormation would make
    /// one up) its logical id.
    fn queue_name(&self, logical_id: &str) -> String {
        self.property(logical_id, "QueueName")
            .unwrap_or_else(|| logical_id.to_owned())
    }

    fn sub(&self, text: &str, variables: &serde_json::Map<String, Json>) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .unwrap_or_else(|| panic!("unclosed ${{ in !Sub {text}"));
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str(&format!("${{{literal}}}"));
            } else if let Some(value) = variables.get(name) {
                out.push_str(&scalar(value));
            } else if let Some((resource, attribute)) = name.split_once('.') {
                out.push_str(&self.attribute(resource, attribute));
            } else {
                out.push_str(&self.reference(name).map(|v| scalar(&v)).unwrap_or_default());
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    fn condition(&self, name: &str) -> bool {
        let expression = self
            .conditions
            .get(name)
            .unwrap_or_else(|| panic!("template.yaml has no condition {name}"));
        self.truth(expression)
    }

    fn truth(&self, v: &Yaml) -> bool {
        match self.eval(v) {
            Some(Json::Bool(b)) => b,
            other => panic!("a condition evaluated to {other:?}"),
        }
    }

    fn args<'a>(&self, function: &str, arg: &'a Yaml, n: usize) -> &'a [Yaml] {
        match arg.as_sequence() {
            Some(items) if items.len() == n => items,
            _ => panic!("{function} takes a list of {n}, not {arg:?}"),
        }
    }

    fn call(&self, function: &str, arg: &Yaml) -> Option<Json> {
        match function {
            "Ref" => self.reference(arg.as_str().expect("!Ref takes a name")),
            "Condition" => Some(json!(
                self.condition(arg.as_str().expect("a condition name"))
            )),
            "Fn::GetAtt" => {
                let (resource, attribute) = match arg {
                    Yaml::String(s) => s.split_once('.').expect("!GetAtt Resource.Attribute"),
                    other => {
                        let [r, a] = self.args(function, other, 2) else {
                            unreachable!()
                        };
                        (
                            r.as_str().unwrap_or_default(),
                            a.as_str().unwrap_or_default(),
                        )
                    }
                };
                Some(json!(self.attribute(resource, attribute)))
            }
            "Fn::Sub" => Some(json!(match arg {
                Yaml::String(text) => self.sub(text, &Default::default()),
                other => {
                    let [text, variables] = self.args(function, other, 2) else {
                        unreachable!()
                    };
                    let variables = match self.eval(variables) {
                        Some(Json::Object(m)) => m,
                        _ => Default::default(),
                    };
                    self.sub(text.as_str().unwrap_or_default(), &variables)
                }
            })),
            "Fn::If" => {
                let [condition, then, otherwise] = self.args(function, arg, 3) else {
                    unreachable!()
                };
                let name = condition.as_str().expect("!If names a condition");
                self.eval(if self.condition(name) {
                    then
                } else {
                    otherwise
                })
            }
            "Fn::Select" => {
                let [index, list] = self.args(function, arg, 2) else {
                    unreachable!()
                };
                let index: usize = scalar(&self.eval(index)?).parse().expect("!Select index");
                match self.eval(list)? {
                    Json::Array(items) => items.get(index).cloned(),
                    other => panic!("!Select from {other:?}"),
                }
            }
            "Fn::Split" => {
                let [delimiter, text] = self.args(function, arg, 2) else {
                    unreachable!()
                };
                let delimiter = delimiter.as_str().expect("!Split delimiter");
                let text = scalar(&self.eval(text)?);
                Some(json!(text.split(delimiter).collect::<Vec<_>>()))
            }
            "Fn::Join" => {
                let [delimiter, list] = self.args(function, arg, 2) else {
                    unreachable!()
                };
                let delimiter = delimiter.as_str().expect("!Join delimiter");
                Some(json!(as_list(&self.eval(list)?).join(delimiter)))
            }
            "Fn::Equals" => {
                let [a, b] = self.args(function, arg, 2) else {
                    unreachable!()
                };
                Some(json!(
                    self.eval(a).map(|v| scalar(&v)) == self.eval(b).map(|v| scalar(&v))
                ))
            }
            "Fn::Not" => {
                let [a] = self.args(function, arg, 1) else {
                    unreachable!()
                };
                Some(json!(!self.truth(a)))
            }
            "Fn::And" | "Fn::Or" => {
                let items = arg.as_sequence().expect("a list of conditions");
                let values = items.iter().map(|c| self.truth(c));
                Some(json!(if function == "Fn::And" {
                    values.into_iter().all(|b| b)
                } else {
                    values.into_iter().any(|b| b)
                }))
            }
            other => panic!("template.yaml uses {other}, which tests/src/iam.rs does not evaluate"),
        }
    }

    /// The value of `v` in this deployment; `None` for `AWS::NoValue`.
    pub fn eval(&self, v: &Yaml) -> Option<Json> {
        if let Some((function, arg)) = intrinsic(v) {
            return self.call(&function, arg);
        }
        Some(match v {
            Yaml::Null => Json::Null,
            Yaml::Bool(b) => json!(b),
            Yaml::Number(n) => n
                .as_i64()
                .map(|i| json!(i))
                .unwrap_or_else(|| json!(n.as_f64())),
            Yaml::String(s) => json!(s),
            Yaml::Sequence(items) => {
                Json::Array(items.iter().filter_map(|i| self.eval(i)).collect())
            }
            Yaml::Mapping(m) => Json::Object(
                m.iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), self.eval(v)?)))
                    .collect(),
            ),
            Yaml::Tagged(t) => panic!("unknown tag {}", t.tag),
        })
    }

    /// Every `AWS::Serverless::Function`, by logical id.
    pub fn functions(&self) -> Vec<Function> {
        let mut functions: Vec<Function> = self
            .resources
            .iter()
            .filter(|(_, r)| {
                r.get("Type").and_then(Yaml::as_str) == Some("AWS::Serverless::Function")
            })
            .map(|(id, r)| self.function(id.as_str().unwrap_or_default(), r))
            .collect();
        functions.sort_by(|a, b| a.logical_id.cmp(&b.logical_id));
        functions
    }

    fn function(&self, logical_id: &str, resource: &Yaml) -> Function {
        let properties = resource.get("Properties").cloned().unwrap_or_default();
        let binary = resource
            .get("Metadata")
            .and_then(|m| m.get("BuildProperties"))
            .and_then(|b| b.get("Binary"))
            .and_then(Yaml::as_str)
            .unwrap_or_else(|| panic!("{logical_id} names no Metadata.BuildProperties.Binary"))
            .to_owned();
        assert!(
            properties.get("Policies").is_none(),
            "{logical_id}: give the function a role of its own, not SAM Policies"
        );
        let role = match properties.get("Role").and_then(intrinsic) {
            Some((f, Yaml::String(target))) if f == "Fn::GetAtt" && target.ends_with(".Arn") => {
                target.trim_end_matches(".Arn").to_owned()
            }
            _ => panic!("{logical_id}: Role must be !GetAtt <a role of this template>.Arn"),
        };
        let mut routes = Vec::new();
        let mut streams = Vec::new();
        for (name, event) in mapping(properties.get("Events")).iter() {
            let name = name.as_str().unwrap_or_default();
            let kind = event.get("Type").and_then(Yaml::as_str).unwrap_or_default();
            let event = self.eval(event.get("Properties").unwrap_or(&Yaml::Null));
            let event = event.unwrap_or_default();
            match kind {
                "HttpApi" | "Api" => {
                    routes.push((scalar(&event["Method"]), scalar(&event["Path"])))
                }
                "DynamoDB" => {
                    let stream = event["Stream"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{logical_id}: event {name} names no Stream"))
                        .to_owned();
                    let on_failure = event["DestinationConfig"]["OnFailure"]["Destination"]
                        .as_str()
                        .map(|arn| {
                            let kind = match event["DestinationConfig"]["OnFailure"]["Type"]
                                .as_str()
                            {
                                Some(kind) => kind.to_owned(),
                                None => arn.split(':').nth(2).unwrap_or_default().to_uppercase(),
                            };
                            (kind, arn.to_owned())
                        });
                    streams.push(StreamSource {
                        event: name.to_owned(),
                        stream,
                        on_failure,
                    });
                }
                other => {
                    panic!("{logical_id}: events of type {other} are not known to tests/src/iam.rs")
                }
            }
        }
        let log_group = properties
            .get("LoggingConfig")
            .and_then(|l| l.get("LogGroup"))
            .and_then(|g| self.eval(g))
            .map(|name| self.arn("logs", &format!("log-group:{}:*", scalar(&name))));
        Function {
            logical_id: logical_id.to_owned(),
            binary,
            routes,
            streams,
            log_group,
            statements: self.statements(&role),
            role,
        }
    }

    fn statements(&self, role: &str) -> Vec<Statement> {
        assert_eq!(
            self.resource_type(role),
            "AWS::IAM::Role",
            "{role} is a role"
        );
        let properties = self
            .resource(role)
            .get("Properties")
            .cloned()
            .unwrap_or_default();
        assert!(
            properties.get("ManagedPolicyArns").is_none(),
            "{role}: managed policies are not evaluated; write the statements in the role"
        );
        let mut statements = Vec::new();
        for policy in properties
            .get("Policies")
            .and_then(Yaml::as_sequence)
            .into_iter()
            .flatten()
        {
            let document = self
                .eval(policy.get("PolicyDocument").unwrap_or(&Yaml::Null))
                .unwrap_or_default();
            let listed = match &document["Statement"] {
                Json::Array(items) => items.clone(),
                single => vec![single.clone()],
            };
            for (i, s) in listed.iter().enumerate() {
                assert!(
                    s.get("NotAction").is_none(),
                    "{role}: NotAction grants what nobody listed; name the actions"
                );
                let mut conditions = Vec::new();
                for (operator, keys) in s["Condition"].as_object().into_iter().flatten() {
                    for (key, values) in keys.as_object().into_iter().flatten() {
                        conditions.push(Condition {
                            operator: operator.clone(),
                            key: key.clone(),
                            values: as_list(values),
                        });
                    }
                }
                statements.push(Statement {
                    sid: s["Sid"]
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("#{i}")),
                    allow: s["Effect"] == "Allow",
                    actions: as_list(&s["Action"]),
                    resources: as_list(&s["Resource"]),
                    not_resources: as_list(&s["NotResource"]),
                    conditions,
                });
            }
        }
        statements
    }
}

impl Condition {
    fn parts(&self) -> (Option<&str>, &str, bool) {
        let (set, rest) = match self.operator.split_once(':') {
            Some((set, rest)) => (Some(set), rest),
            None => (None, self.operator.as_str()),
        };
        match rest.strip_suffix("IfExists") {
            Some(base) => (set, base, true),
            None => (set, rest, false),
        }
    }

    /// Whether the operator matches values (as opposed to excluding them).
    fn positive(&self) -> bool {
        let (_, base, _) = self.parts();
        !base.contains("Not") && base != "Null" && base != "Bool"
    }

    fn matches(&self, base: &str, pattern: &str, value: &str) -> bool {
        match base {
            "StringEquals" | "StringNotEquals" => pattern == value,
            "StringEqualsIgnoreCase" | "StringNotEqualsIgnoreCase" | "Bool" => {
                pattern.eq_ignore_ascii_case(value)
            }
            "StringLike" | "StringNotLike" | "ArnEquals" | "ArnLike" | "ArnNotEquals"
            | "ArnNotLike" => like(pattern, value),
            other => panic!(
                "condition operator {other} is not evaluated by tests/src/iam.rs; add it there"
            ),
        }
    }

    /// IAM's evaluation of this condition for a request with `context`.
    pub fn holds(&self, context: &BTreeMap<String, Vec<String>>) -> bool {
        let (set, base, if_exists) = self.parts();
        let present = context
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&self.key))
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty());
        if base == "Null" {
            return present.is_none() == self.values.iter().any(|v| v == "true");
        }
        let negated = base.contains("Not");
        let hit = |value: &String| self.values.iter().any(|p| self.matches(base, p, value));
        match (set, present) {
            (Some("ForAllValues"), None) => true,
            (Some("ForAllValues"), Some(vs)) => vs.iter().all(|v| hit(v) != negated),
            (Some("ForAnyValue"), None) => false,
            (Some("ForAnyValue"), Some(vs)) => vs.iter().any(|v| hit(v) != negated),
            (Some(other), _) => panic!("unknown condition set operator {other}"),
            (None, None) => if_exists || negated,
            (None, Some(vs)) => {
                if negated {
                    !vs.iter().any(hit)
                } else {
                    vs.iter().any(hit)
                }
            }
        }
    }
}

impl Statement {
    fn names(&self, action: &str) -> bool {
        self.actions
            .iter()
            .any(|a| like(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()))
    }

    pub fn applies(&self, access: &Access) -> bool {
        self.names(&access.action)
            && (self.resources.is_empty()
                || self.resources.iter().any(|r| like(r, &access.resource)))
            && !self.not_resources.iter().any(|r| like(r, &access.resource))
            && self.conditions.iter().all(|c| c.holds(&access.context))
    }
}

/// `ACCOUNT#…` for a key value, so messages name the kind of item.
fn kind_of(value: &str) -> String {
    match value.split_once('#') {
        Some((prefix, _)) => format!("{prefix}#…"),
        None => value.to_owned(),
    }
}

fn describe(access: &Access) -> String {
    let mut text = format!("{} on {}", access.action, access.resource);
    for (key, values) in &access.context {
        let values: BTreeSet<String> = values.iter().map(|v| kind_of(v)).collect();
        text.push_str(&format!(
            " {key}={}",
            values.into_iter().collect::<Vec<_>>().join(",")
        ));
    }
    text
}

/// An action a service performs with a function's role on the function's
/// behalf (its logs, its event source mapping), and the only resources it
/// needs it on.
#[derive(Debug, Clone)]
pub struct OnBehalf {
    /// Who sends it (`the runtime`, `the event source mapping of Outbox`).
    pub by: String,
    pub action: String,
    pub resources: Vec<String>,
}

impl OnBehalf {
    fn names(&self, action: &str) -> bool {
        self.action.eq_ignore_ascii_case(action)
    }
}

impl Function {
    /// What the Lambda service does with this function's role, never the
    /// function's code: the runtime writes its logs to its log group; the
    /// event source mapping of each stream reads the stream and sends the
    /// batches it gives up on to the on-failure destination. Each must be
    /// allowed, on exactly those resources.
    pub fn on_behalf(&self) -> Vec<OnBehalf> {
        let mut grants: Vec<OnBehalf> = RUNTIME_ACTIONS
            .iter()
            .map(|action| OnBehalf {
                by: "the runtime".into(),
                action: (*action).to_owned(),
                resources: self.log_group.iter().cloned().collect(),
            })
            .collect();
        let mut add = |by: String, action: &str, resource: &str| match grants
            .iter_mut()
            .find(|g| g.names(action))
        {
            Some(grant) => {
                if !grant.resources.iter().any(|r| r == resource) {
                    grant.resources.push(resource.to_owned());
                }
            }
            None => grants.push(OnBehalf {
                by,
                action: action.to_owned(),
                resources: vec![resource.to_owned()],
            }),
        };
        for source in &self.streams {
            let by = format!("the event source mapping of {}", source.event);
            for action in STREAM_ACTIONS {
                add(by.clone(), action, &source.stream);
            }
            if let Some((kind, destination)) = &source.on_failure {
                let action = on_failure_action(kind, &self.logical_id);
                add(by.clone(), action, destination);
            }
        }
        grants
    }

    /// The indices of the Allow statements that let `access` through; none
    /// when a Deny applies.
    pub fn allowing(&self, access: &Access) -> Vec<usize> {
        if self
            .statements
            .iter()
            .any(|s| !s.allow && s.applies(access))
        {
            return vec![];
        }
        (0..self.statements.len())
            .filter(|&i| self.statements[i].allow && self.statements[i].applies(access))
            .collect()
    }

    /// Everything that keeps the role from allowing exactly `observed`: each
    /// access no statement allows (missing), and each action, resource or
    /// condition value of a statement that no access needed (unused).
    pub fn differences(&self, observed: &[Observed]) -> Vec<String> {
        let name = &self.binary;
        let mut found = BTreeSet::new();
        let on_behalf = self.on_behalf();
        for grant in &on_behalf {
            for resource in &grant.resources {
                let access = Access {
                    action: grant.action.clone(),
                    resource: resource.clone(),
                    context: BTreeMap::new(),
                };
                if self.allowing(&access).is_empty() {
                    found.insert(format!(
                        "{name}: missing {} (needed by {})",
                        describe(&access),
                        grant.by
                    ));
                }
            }
        }
        let mut used: Vec<Vec<&Access>> = vec![vec![]; self.statements.len()];
        for o in observed {
            let allowing = self.allowing(&o.access);
            if allowing.is_empty() {
                found.insert(format!(
                    "{name}: missing {} (needed by {} for {})",
                    describe(&o.access),
                    o.by,
                    o.request
                ));
            }
            for i in allowing {
                used[i].push(&o.access);
            }
        }
        for (s, used) in self.statements.iter().zip(&used) {
            if !s.allow {
                continue;
            }
            let sid = &s.sid;
            for action in &s.actions {
                if action.contains(['*', '?']) {
                    found.insert(format!(
                        "{name}: unused actions: statement {sid} grants {action}; name each action"
                    ));
                    continue;
                }
                if let Some(grant) = on_behalf.iter().find(|g| g.names(action)) {
                    // Only on the resources the service uses it on (or the
                    // code, if it sends the action too).
                    let by_code = |r: &str| {
                        used.iter()
                            .any(|a| a.action.eq_ignore_ascii_case(action) && like(r, &a.resource))
                    };
                    let beyond: Vec<&String> = s
                        .resources
                        .iter()
                        .filter(|r| !grant.resources.contains(r) && !by_code(r))
                        .collect();
                    let by_code_anywhere =
                        used.iter().any(|a| a.action.eq_ignore_ascii_case(action));
                    if !beyond.is_empty() || (!s.not_resources.is_empty() && !by_code_anywhere) {
                        found.insert(format!(
                            "{name}: statement {sid} lets {} {action} on {:?}{}, not only on {:?}",
                            grant.by,
                            beyond,
                            if s.not_resources.is_empty() {
                                String::new()
                            } else {
                                format!(" (NotResource {:?})", s.not_resources)
                            },
                            grant.resources
                        ));
                    }
                    continue;
                }
                let by_action: Vec<&&Access> = used
                    .iter()
                    .filter(|a| a.action.eq_ignore_ascii_case(action))
                    .collect();
                if by_action.is_empty() {
                    found.insert(format!(
                        "{name}: unused {action} (statement {sid}): no request of {name} needs it"
                    ));
                    continue;
                }
                for resource in &s.resources {
                    if !by_action.iter().any(|a| like(resource, &a.resource)) {
                        found.insert(format!(
                            "{name}: unused {action} on {resource} (statement {sid})"
                        ));
                    }
                }
                for c in s.conditions.iter().filter(|c| c.positive()) {
                    let (_, base, _) = c.parts();
                    for pattern in &c.values {
                        let needed = by_action.iter().any(|a| {
                            a.context
                                .iter()
                                .filter(|(k, _)| k.eq_ignore_ascii_case(&c.key))
                                .flat_map(|(_, vs)| vs)
                                .any(|v| c.matches(base, pattern, v))
                        });
                        if !needed {
                            found.insert(format!(
                                "{name}: unused {action} with {} {pattern} (statement {sid})",
                                c.key
                            ));
                        }
                    }
                }
            }
        }
        found.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_iam_matches_them() {
        assert!(like("ACCOUNT#*", "ACCOUNT#42"));
        assert!(like("arn:aws:sns:*:*:*", "arn:aws:sns:us-east-1:1:topic"));
        assert!(!like("arn:aws:sns:*:*:*", "*"));
        assert!(like("a?c", "abc"));
        assert!(!like("QUOTA#*", "ACCOUNT#QUOTA#"));
    }

    fn allow(sid: &str, actions: &[&str], resources: &[&str]) -> Statement {
        Statement {
            sid: sid.into(),
            allow: true,
            actions: actions.iter().map(|a| a.to_string()).collect(),
            resources: resources.iter().map(|r| r.to_string()).collect(),
            not_resources: vec![],
            conditions: vec![],
        }
    }

    #[test]
    fn what_the_event_source_mapping_does_is_required_and_only_on_its_resources() {
        let stream = "arn:aws:dynamodb:r:1:table/t/stream/*";
        let queue = "arn:aws:sqs:r:1:failures";
        let logs = "arn:aws:logs:r:1:log-group:/f:*";
        let mut function = Function {
            logical_id: "F".into(),
            binary: "f".into(),
            routes: vec![],
            streams: vec![StreamSource {
                event: "Outbox".into(),
                stream: stream.into(),
                on_failure: Some(("SQS".into(), queue.into())),
            }],
            log_group: Some(logs.into()),
            role: "R".into(),
            statements: vec![
                allow("Logs", RUNTIME_ACTIONS, &[logs]),
                allow("Stream", STREAM_ACTIONS, &[stream]),
                allow("Queue", &["sqs:SendMessage"], &[queue]),
            ],
        };
        assert_eq!(function.differences(&[]), Vec::<String>::new());

        function.statements[1].actions.pop();
        function.statements[2]
            .resources
            .push("arn:aws:sqs:r:1:other".into());
        let found = function.differences(&[]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0]
                .contains("missing dynamodb:ListStreams on arn:aws:dynamodb:r:1:table/t/stream/*"),
            "{found:?}"
        );
        assert!(found[1].contains("lets the event source mapping of Outbox sqs:SendMessage on [\"arn:aws:sqs:r:1:other\"]"), "{found:?}");
    }

    #[test]
    fn for_all_values_holds_for_every_key_and_vacuously() {
        let c = Condition {
            operator: "ForAllValues:StringLike".into(),
            key: "dynamodb:LeadingKeys".into(),
            values: vec!["ACCOUNT#*".into(), "QUOTA#*".into()],
        };
        let context = |values: &[&str]| {
            BTreeMap::from([(
                "dynamodb:LeadingKeys".to_owned(),
                values.iter().map(|v| v.to_string()).collect(),
            )])
        };
        assert!(c.holds(&context(&["ACCOUNT#1", "QUOTA#x"])));
        assert!(!c.holds(&context(&["ACCOUNT#1", "MIGRATION#2"])));
        assert!(c.holds(&BTreeMap::new()));
    }
}
