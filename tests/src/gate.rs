//! A gate at the DynamoDB SDK boundary: the next request of a chosen
//! operation waits at the gate until the test opens it, so a test can land
//! other requests between a step's reads and its write, in the order it
//! chooses, instead of hoping a race comes out that way.

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

use contact_migration::config::TlsRoots;

use crate::{dynamodb_endpoint, local_config, Stack};

#[derive(Debug)]
struct Inner {
    /// The operation whose next request is held.
    armed: Mutex<Option<String>>,
    held: Notify,
    open: Semaphore,
}

/// Holds the next request of an armed operation until opened.
#[derive(Clone, Debug)]
pub struct Gate(Arc<Inner>);

impl Default for Gate {
    fn default() -> Gate {
        Gate(Arc::new(Inner {
            armed: Mutex::new(None),
            held: Notify::new(),
            open: Semaphore::new(0),
        }))
    }
}

impl Gate {
    /// The next `operation` request (`TransactWriteItems`, ...) will wait.
    pub fn arm(&self, operation: &str) {
        *self.0.armed.lock().unwrap() = Some(operation.to_owned());
    }

    /// Waits until the armed request has reached the gate.
    pub async fn holding(&self) {
        tokio::time::timeout(Duration::from_secs(30), self.0.held.notified())
            .await
            .expect("the armed request reached the gate");
    }

    /// Lets the held request go on.
    pub fn open(&self) {
        self.0.open.add_permits(1);
    }

    /// `stack`'s table, app and policy, with a DynamoDB client whose
    /// requests pass this gate.
    pub async fn stack(&self, stack: &Stack) -> Stack {
        let aws = local_config().await;
        // The functions' own HTTP client, to wrap.
        let inner = contact_migration::aws::https_client(TlsRoots::System);
        let client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&aws)
                .endpoint_url(dynamodb_endpoint())
                .http_client(GatedClient {
                    inner,
                    gate: self.clone(),
                })
                .build(),
        );
        let mut app = stack.app.clone();
        app.store = contact_migration::store::Store::new(client, stack.app.store.table());
        Stack::of(app)
    }

    /// Whether `request` is the armed one (it disarms the gate).
    fn takes(&self, request: &HttpRequest) -> bool {
        let operation = request
            .headers()
            .get("x-amz-target")
            .and_then(|target| target.rsplit('.').next());
        let mut armed = self.0.armed.lock().unwrap();
        if operation.is_some() && armed.as_deref() == operation {
            *armed = None;
            return true;
        }
        false
    }
}

#[derive(Debug)]
struct GatedClient {
    inner: SharedHttpClient,
    gate: Gate,
}

impl HttpClient for GatedClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(GatedConnector {
            inner: self.inner.http_connector(settings, components),
            gate: self.gate.clone(),
        })
    }
}

#[derive(Debug)]
struct GatedConnector {
    inner: SharedHttpConnector,
    gate: Gate,
}

impl HttpConnector for GatedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        if !self.gate.takes(&request) {
            return self.inner.call(request);
        }
        let (inner, gate) = (self.inner.clone(), self.gate.clone());
        HttpConnectorFuture::new(async move {
            gate.0.held.notify_one();
            gate.0
                .open
                .acquire()
                .await
                .expect("the gate is never closed")
                .forget();
            inner.call(request).await
        })
    }
}
