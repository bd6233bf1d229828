//! The SDK clients' HTTPS client: hyper's HTTP/1.1 client over rustls with
//! aws-lc, the stack the facts client uses as well.
//!
//! The SDK's own client (`aws-smithy-http-client`) also speaks HTTP/2 and
//! goes through proxies, and its code, h2 and a proxy matcher among it, was
//! about a tenth of each function's binary. Every API the functions call
//! (DynamoDB, SES, SNS, SSM, KMS, EventBridge) answers HTTP/1.1, and Lambda
//! reaches them without a proxy. What the SDK's client does that this one
//! keeps: the connect and read timeouts of the SDK's settings, a pool of
//! connections shared by every client with the same settings, the same
//! cipher suites, and the classification of failures that tells the SDK's
//! retries a timeout or a broken connection from anything else.
//!
//! Nothing is set up until the first request: a client's construction only
//! notes its settings, and the TLS configuration (parsing the root
//! certificates) is made once per connector, when it first sends.

use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::error::Error as StdError;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::config::TlsRoots;

/// The Amazon Trust Services root certificates, which issue every AWS
/// service endpoint's certificate (`TLS_ROOTS=amazon`, the default).
pub(super) const AMAZON_ROOTS_PEM: &[u8] = include_bytes!("../../certs/amazon-trust-services.pem");

/// The SDK's suites, in its order: AEADs with forward secrecy only.
const CIPHER_SUITES: [CipherSuite; 7] = [
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// The HTTPS client every SDK client of a function shares.
pub fn https_client(roots: TlsRoots) -> SharedHttpClient {
    SharedHttpClient::new(Https {
        roots,
        connectors: Arc::default(),
    })
}

/// A connector's settings: the connect and the read timeout.
type Timeouts = (Option<Duration>, Option<Duration>);

#[derive(Debug, Clone)]
struct Https {
    roots: TlsRoots,
    /// One connector, and so one pool, per distinct settings; every client
    /// of a function has the same.
    connectors: Arc<Mutex<Vec<(Timeouts, SharedHttpConnector)>>>,
}

impl HttpClient for Https {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.connector((settings.connect_timeout(), settings.read_timeout()))
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("hyper", Some("1.x".into())))
    }
}

impl Https {
    fn connector(&self, timeouts: Timeouts) -> SharedHttpConnector {
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, connector)) = connectors.iter().find(|(t, _)| *t == timeouts) {
            return connector.clone();
        }
        let connector = SharedHttpConnector::new(Connector {
            roots: self.roots,
            timeouts,
            client: Arc::default(),
        });
        connectors.push((timeouts, connector.clone()));
        connector
    }
}

type Hyper = Client<HttpsConnector<TcpConnector>, SdkBody>;

#[derive(Debug, Clone)]
struct Connector {
    roots: TlsRoots,
    timeouts: Timeouts,
    client: Arc<OnceLock<Hyper>>,
}

impl Connector {
    fn client(&self) -> &Hyper {
        self.client.get_or_init(|| {
            let mut tcp = TcpConnector::new();
            tcp.enforce_http(false);
            tcp.set_nodelay(true);
            tcp.set_connect_timeout(self.timeouts.0);
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls_config(root_store(self.roots)))
                // `http://` for the local emulators' endpoints.
                .https_or_http()
                .enable_http1()
                .wrap_connector(tcp);
            Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .build(https)
        })
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let response = self.client().request(request);
        let read_timeout = self.timeouts.1;
        HttpConnectorFuture::new(async move {
            // The read timeout runs from the request's start to the
            // response's head, as the SDK's own client has it.
            let response = match read_timeout {
                Some(limit) => tokio::time::timeout(limit, response)
                    .await
                    .map_err(|elapsed| ConnectorError::timeout(elapsed.into()))?,
                None => response.await,
            }
            .map_err(connector_error)?;
            Response::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// What the SDK's retries need to know of a failed exchange: a timeout and
/// a broken or refused connection are transient; a request hyper would not
/// send is the caller's; anything else is not known to be either.
fn connector_error(error: hyper_util::client::legacy::Error) -> ConnectorError {
    let chain =
        || std::iter::successors(Some(&error as &(dyn StdError + 'static)), |&e| e.source());
    let io = chain().find_map(|e| e.downcast_ref::<std::io::Error>());
    let hyper = chain().find_map(|e| e.downcast_ref::<hyper::Error>());
    if io.is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
        || hyper.is_some_and(hyper::Error::is_timeout)
    {
        ConnectorError::timeout(error.into())
    } else if hyper.is_some_and(hyper::Error::is_user) {
        ConnectorError::user(error.into())
    } else if error.is_connect()
        || io.is_some()
        || hyper.is_some_and(|e| e.is_closed() || e.is_canceled())
    {
        ConnectorError::io(error.into())
    } else if hyper.is_some_and(hyper::Error::is_incomplete_message) {
        ConnectorError::other(error.into(), Some(ErrorKind::TransientError))
    } else {
        ConnectorError::other(error.into(), None)
    }
}

/// rustls with aws-lc (its default key exchange includes the post-quantum
/// hybrid), the SDK's cipher suites and TLS 1.2 or 1.3, trusting `roots`.
pub(crate) fn tls_config(roots: RootCertStore) -> ClientConfig {
    let aws_lc = rustls::crypto::aws_lc_rs::default_provider();
    let provider = CryptoProvider {
        cipher_suites: CIPHER_SUITES
            .iter()
            .filter_map(|suite| {
                aws_lc
                    .cipher_suites
                    .iter()
                    .find(|s| s.suite() == *suite)
                    .copied()
            })
            .collect(),
        ..aws_lc
    };
    ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("aws-lc supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// The CA certificates `roots` names.
pub(crate) fn root_store(roots: TlsRoots) -> RootCertStore {
    let mut store = RootCertStore::empty();
    let (_, invalid) = match roots {
        TlsRoots::Amazon => store
            .add_parsable_certificates(CertificateDer::pem_slice_iter(AMAZON_ROOTS_PEM).flatten()),
        TlsRoots::System => {
            let native = rustls_native_certs::load_native_certs();
            if !native.errors.is_empty() {
                tracing::warn!(errors = ?native.errors, "system CA certificates not all read");
            }
            store.add_parsable_certificates(native.certs)
        }
    };
    if store.is_empty() {
        // Fails closed: with no roots, no connection is trusted.
        tracing::error!(invalid, "no CA certificate to trust");
    } else if invalid > 0 {
        tracing::warn!(
            trusted = store.len(),
            invalid,
            "CA certificates passed over"
        );
    }
    store
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_roots_are_the_five_amazon_trust_services_anchors() {
        let roots = root_store(TlsRoots::Amazon);
        assert_eq!(roots.len(), 5);
        for name in [
            "Amazon Root CA 1",
            "Amazon Root CA 2",
            "Amazon Root CA 3",
            "Amazon Root CA 4",
            "Starfield Services Root Certificate Authority - G2",
        ] {
            assert!(
                roots
                    .roots
                    .iter()
                    .any(|anchor| contains(anchor.subject.as_ref(), name.as_bytes())),
                "{name} is one of the anchors"
            );
        }
    }

    fn connector(read_timeout: Option<Duration>) -> Connector {
        Connector {
            roots: TlsRoots::Amazon,
            timeouts: (Some(Duration::from_secs(1)), read_timeout),
            client: Arc::default(),
        }
    }

    async fn send(connector: &Connector, port: u16) -> Result<Response<SdkBody>, ConnectorError> {
        let request = HttpRequest::get(format!("http://127.0.0.1:{port}/")).expect("a URL");
        connector.call(request).await
    }

    #[tokio::test]
    async fn an_answer_comes_back_with_its_status_and_body() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            let answer = "HTTP/1.1 418 I'm a teapot\r\ncontent-length: 5\r\n\r\nshort";
            socket.write_all(answer.as_bytes()).await.unwrap();
        });
        let response = send(&connector(None), port).await.expect("an answer");
        assert_eq!(response.status().as_u16(), 418);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .expect("the body")
            .to_bytes();
        assert_eq!(&body[..], b"short");
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_io_error_the_sdk_retries() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let error = send(&connector(None), port)
            .await
            .expect_err("nothing listens");
        assert!(error.is_io(), "{error:?}");
    }

    #[tokio::test]
    async fn no_answer_within_the_read_timeout_is_a_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepts, then never answers.
        let held = tokio::spawn(async move { listener.accept().await });
        let connector = connector(Some(Duration::from_millis(200)));
        let error = send(&connector, port).await.expect_err("no answer");
        assert!(error.is_timeout(), "{error:?}");
        held.abort();
    }

    #[test]
    fn clients_with_the_same_settings_share_one_connector() {
        let client = Https {
            roots: TlsRoots::Amazon,
            connectors: Arc::default(),
        };
        let sdk = (Some(Duration::from_millis(3100)), None);
        for timeouts in [sdk, sdk, (None, None), sdk] {
            let _ = client.connector(timeouts);
        }
        let connectors = client.connectors.lock().unwrap();
        let settings: Vec<_> = connectors.iter().map(|(t, _)| *t).collect();
        assert_eq!(settings, [sdk, (None, None)]);
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn tls_offers_the_sdks_suites_and_prefers_the_post_quantum_hybrid() {
        let config = tls_config(root_store(TlsRoots::Amazon));
        let suites: Vec<_> = config
            .crypto_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        assert_eq!(suites, CIPHER_SUITES.to_vec());
        let groups = &config.crypto_provider().kx_groups;
        assert_eq!(
            groups.first().map(|g| g.name()),
            Some(rustls::NamedGroup::X25519MLKEM768)
        );
    }
}
