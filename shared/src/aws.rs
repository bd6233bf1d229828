//! The functions' SDK configuration and HTTPS client.
//!
//! The configuration is read from the environment Lambda gives every
//! function (the region, the execution role's credentials) and from the
//! `AWS_ENDPOINT_URL` variables the local stack sets, and nothing else:
//! no profile files, no instance metadata, no provider chains. That keeps
//! `aws-config` and everything its chains reach (an STS client, the
//! metadata clients, the profile parser) out of the functions' binaries,
//! and makes init a few map look-ups. A missing variable fails init with
//! its name.
//!
//! Every SDK client shares one HTTPS client whose TLS set-up (loading and
//! parsing the root certificates) happens once, on the first request,
//! instead of once per client at construction and again on the first
//! request of each. That set-up trusts the Amazon Trust Services roots built
//! into the binary rather than parsing the system's CA bundle (`TLS_ROOTS`,
//! see [`TlsRoots`]).

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_smithy_async::rt::sleep::default_async_sleep;
use aws_smithy_async::time::SystemTimeSource;
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::region::Region;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};
pub use aws_types::SdkConfig;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{ConfigError, TlsRoots};

mod https;
pub use https::https_client;
pub(crate) use https::{root_store, tls_config};

/// The connect timeout `aws-config` gives every client.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// The functions' SDK configuration, from this process's environment.
pub fn sdk_config(roots: TlsRoots) -> Result<SdkConfig, ConfigError> {
    let vars = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)));
    from_vars(vars, https_client(roots))
}

/// The configuration the variables `vars` describe, with `http` as every
/// client's HTTP client. Empty variables count as unset, as the SDK's own
/// loader has it.
fn from_vars(
    vars: impl IntoIterator<Item = (String, String)>,
    http: SharedHttpClient,
) -> Result<SdkConfig, ConfigError> {
    let vars: BTreeMap<String, String> = vars
        .into_iter()
        .filter(|(name, value)| name.starts_with("AWS_") && !value.is_empty())
        .collect();
    let var = |name: &'static str| vars.get(name).cloned();
    let required = |name: &'static str| var(name).ok_or(ConfigError::Missing(name));
    let credentials = Credentials::new(
        required("AWS_ACCESS_KEY_ID")?,
        required("AWS_SECRET_ACCESS_KEY")?,
        var("AWS_SESSION_TOKEN"),
        None,
        "environment",
    );
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(required("AWS_REGION")?))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .retry_config(RetryConfig::standard())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .build(),
        )
        .time_source(SystemTimeSource::new())
        .http_client(http);
    builder.set_sleep_impl(default_async_sleep());
    builder.set_endpoint_url(var("AWS_ENDPOINT_URL"));
    Ok(builder.service_config(EndpointUrls(vars)).build())
}

/// `AWS_ENDPOINT_URL_<SERVICE>`: each service client asks for its own
/// endpoint by its service id (`DynamoDB Streams` reads
/// `AWS_ENDPOINT_URL_DYNAMODB_STREAMS`), and falls back on
/// `AWS_ENDPOINT_URL`, then on the region's endpoint.
#[derive(Debug)]
struct EndpointUrls(BTreeMap<String, String>);

impl LoadServiceConfig for EndpointUrls {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        let service = key.service_id().to_uppercase().replace(' ', "_");
        self.0.get(&format!("{}_{service}", key.env())).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::provider::ProvideCredentials;

    fn lambda_vars() -> Vec<(String, String)> {
        [
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
            ("AWS_LAMBDA_FUNCTION_NAME", "verify"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .to_vec()
    }

    fn config(vars: Vec<(String, String)>) -> Result<SdkConfig, ConfigError> {
        from_vars(vars, https_client(TlsRoots::Amazon))
    }

    fn endpoint(config: &SdkConfig, service_id: &str) -> Option<String> {
        let key = ServiceConfigKey::builder()
            .service_id(service_id)
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .expect("every field is set");
        config.service_config()?.load_config(key)
    }

    #[tokio::test]
    async fn the_region_and_the_execution_roles_credentials_come_from_lambdas_environment() {
        let config = config(lambda_vars()).expect("Lambda sets every variable needed");
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        let credentials = config
            .credentials_provider()
            .expect("a credentials provider")
            .provide_credentials()
            .await
            .expect("static credentials");
        assert_eq!(credentials.access_key_id(), "ASIAEXAMPLE");
        assert_eq!(credentials.secret_access_key(), "secret");
        assert_eq!(credentials.session_token(), Some("token"));
        assert_eq!(config.endpoint_url(), None);
        assert_eq!(endpoint(&config, "DynamoDB"), None);
        assert!(config.http_client().is_some() && config.sleep_impl().is_some());
    }

    #[test]
    fn a_missing_region_or_credential_fails_init_with_its_name() {
        for missing in ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            for value in [None, Some("")] {
                let mut vars = lambda_vars();
                vars.retain(|(name, _)| name != missing);
                vars.extend(value.map(|v| (missing.to_owned(), v.to_owned())));
                match config(vars) {
                    Err(ConfigError::Missing(name)) => assert_eq!(name, missing),
                    other => panic!("without {missing}: {other:?}"),
                }
            }
        }
        let mut vars = lambda_vars();
        vars.retain(|(name, _)| name != "AWS_SESSION_TOKEN");
        assert!(config(vars).is_ok(), "long-term keys need no session token");
    }

    #[test]
    fn each_service_reads_its_own_endpoint_variable_then_the_common_one() {
        let mut vars = lambda_vars();
        for (name, url) in [
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:2"),
            ("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "http://127.0.0.1:3"),
            ("AWS_ENDPOINT_URL_SESV2", "http://127.0.0.1:4"),
            ("AWS_ENDPOINT_URL_EVENTBRIDGE", "http://127.0.0.1:5"),
            ("AWS_ENDPOINT_URL_SNS", ""),
        ] {
            vars.push((name.to_owned(), url.to_owned()));
        }
        let config = config(vars).expect("a complete environment");
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:1"));
        for (service_id, url) in [
            ("DynamoDB", Some("http://127.0.0.1:2")),
            ("DynamoDB Streams", Some("http://127.0.0.1:3")),
            ("SESv2", Some("http://127.0.0.1:4")),
            ("EventBridge", Some("http://127.0.0.1:5")),
            ("SNS", None),
            ("KMS", None),
        ] {
            assert_eq!(
                endpoint(&config, service_id).as_deref(),
                url,
                "{service_id}"
            );
        }
    }
}
