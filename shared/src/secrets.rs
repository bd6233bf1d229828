//! The secrets a function reads from SSM Parameter Store: the code key and
//! the facts endpoint's signing key. The code key is wanted by the first
//! request only once its first DynamoDB read is back, so a function reading
//! it from SSM starts the read at init, in the background, and a request
//! waits for it only where it makes or checks a code ([`Codes`]): the SSM
//! round trip overlaps the request's own instead of adding to it.

use crate::aws::SdkConfig;
use std::sync::Arc;
use tokio::sync::OnceCell;

use crate::config::{code_key, facts_key, CodeKeySource, FactsKeySource, FactsSource};
use crate::domain::{CodeKey, Error};
use crate::facts::FactsKey;

/// The code key of a function, as its requests see it.
#[derive(Clone, Debug)]
pub enum Codes {
    /// Given in the environment (local development and tests).
    Ready(CodeKey),
    /// Being read from SSM since init; a failed read is tried again by the
    /// next request that needs the key.
    Reading(Arc<Reading>),
    /// The function makes and checks no codes, and holds no key.
    Absent,
}

#[derive(Debug)]
pub struct Reading {
    aws: SdkConfig,
    parameter: String,
    key: OnceCell<CodeKey>,
}

impl From<CodeKey> for Codes {
    fn from(key: CodeKey) -> Codes {
        Codes::Ready(key)
    }
}

impl Codes {
    /// The key from `source`; from SSM, its read starts now, on the current
    /// runtime, and goes on while the function waits for its first event.
    pub fn read(aws: &SdkConfig, source: &CodeKeySource) -> Codes {
        match source {
            CodeKeySource::Env(key) => Codes::Ready(key.clone()),
            CodeKeySource::Ssm(parameter) => {
                let reading = Arc::new(Reading {
                    aws: aws.clone(),
                    parameter: parameter.clone(),
                    key: OnceCell::new(),
                });
                let early = reading.clone();
                tokio::spawn(async move {
                    if let Err(e) = early.key().await {
                        tracing::error!(error = %e, "code key not read at init");
                    }
                });
                Codes::Reading(reading)
            }
        }
    }

    /// The key, once read. An internal error when it cannot be read (the
    /// request changes nothing) or the function holds none.
    pub async fn key(&self) -> Result<&CodeKey, Error> {
        match self {
            Codes::Ready(key) => Ok(key),
            Codes::Reading(reading) => reading.key().await,
            Codes::Absent => Err(Error::Internal("this function holds no code key".into())),
        }
    }
}

impl Reading {
    async fn key(&self) -> Result<&CodeKey, Error> {
        self.key
            .get_or_try_init(|| async {
                ssm_code_key(&self.aws, &self.parameter)
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))
            })
            .await
    }
}

/// The code key from its source: as given, or read from SSM Parameter Store
/// with decryption. From SSM, one `GetParameterHistory` gives the latest
/// version (the key) and the one before it (the previous key, still accepted
/// for codes sent before a rotation); a rotation is a plain
/// `put-parameter --overwrite`, picked up by each function's next start.
pub async fn resolve_code_key(
    aws: &SdkConfig,
    source: &CodeKeySource,
) -> Result<CodeKey, lambda_http::Error> {
    match source {
        CodeKeySource::Env(key) => Ok(key.clone()),
        CodeKeySource::Ssm(name) => ssm_code_key(aws, name).await,
    }
}

async fn ssm_code_key(aws: &SdkConfig, name: &str) -> Result<CodeKey, lambda_http::Error> {
    let failed = |e: &dyn std::fmt::Display| format!("reading the code key parameter {name}: {e}");
    // Oldest first, a page at a time: the last two versions are wanted.
    let mut versions: Vec<(i64, String)> = Vec::new();
    let mut pages = aws_sdk_ssm::Client::new(aws)
        .get_parameter_history()
        .name(name)
        .with_decryption(true)
        .max_results(50)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| failed(&aws_sdk_ssm::error::DisplayErrorContext(&e)))?;
        versions.extend(
            page.parameters
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| Some((p.version, p.value?))),
        );
        versions.sort_by_key(|(version, _)| *version);
        let keep = versions.len().saturating_sub(2);
        versions.drain(..keep);
    }
    let mut versions = versions.into_iter().rev();
    let (_, latest) = versions
        .next()
        .ok_or_else(|| format!("the code key parameter {name} has no value"))?;
    let key = code_key(&latest, "CODE_HMAC_SECRET_PARAMETER")?;
    Ok(match versions.next() {
        // A previous version too short to be a key is one from before keys
        // had to be long; codes made with it cannot exist.
        Some((_, previous)) => match code_key(&previous, "CODE_HMAC_SECRET_PARAMETER") {
            Ok(previous) => key.replacing(previous),
            Err(_) => key,
        },
        None => key,
    })
}

/// The facts endpoint's signing key, when facts are read over HTTP: as
/// given, or read once from SSM Parameter Store with decryption (a rotation
/// is a `put-parameter --overwrite` on both sides, picked up at each
/// function's next start).
pub async fn resolve_facts_key(
    aws: &SdkConfig,
    source: &FactsSource,
) -> Result<Option<FactsKey>, lambda_http::Error> {
    let name = match source {
        FactsSource::Table => return Ok(None),
        FactsSource::Http {
            key: FactsKeySource::Env(key),
            ..
        } => return Ok(Some(key.clone())),
        FactsSource::Http {
            key: FactsKeySource::Ssm(name),
            ..
        } => name,
    };
    let value = aws_sdk_ssm::Client::new(aws)
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| {
            format!(
                "reading the facts key parameter {name}: {}",
                aws_sdk_ssm::error::DisplayErrorContext(&e)
            )
        })?
        .parameter
        .and_then(|p| p.value)
        .ok_or_else(|| format!("the facts key parameter {name} has no value"))?;
    Ok(Some(facts_key(&value, "FACTS_HMAC_SECRET_PARAMETER")?))
}
