//! Fault injection at the DynamoDB SDK boundary, on the real client talking
//! to DynamoDB Local: an interceptor sends chosen requests to a local fault
//! responder instead (throttling, transaction conflict: nothing reaches the
//! table), or lets them reach the table and then replaces the response with
//! a 500 (the write committed, the caller never heard). Retries are the
//! SDK's standard policy.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `ThrottlingException` before the request reaches the table.
    Throttle,
    /// `TransactionCanceledException` with a `TransactionConflict` reason,
    /// before the request reaches the table.
    Conflict,
    /// The request reaches the table; its response is replaced by a 500.
    LostResponse,
}

#[derive(Debug, Clone)]
pub struct Fault {
    pub operation: &'static str,
    pub mode: Mode,
    /// How many attempts it hits; `usize::MAX` for a fault that never clears.
    pub times: usize,
}

#[derive(Debug, Clone, Default)]
pub struct FaultInjector {
    plan: Arc<Mutex<Vec<Fault>>>,
    responder: Arc<Mutex<Option<String>>>,
    injected: Arc<AtomicUsize>,
    calls: Arc<Mutex<Vec<String>>>,
}

impl FaultInjector {
    /// Starts the local fault responder.
    pub async fn start() -> FaultInjector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let request = read_request(&mut socket).await;
                    let body = if request.starts_with("POST /conflict") {
                        r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","message":"Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]","CancellationReasons":[{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"}]}"#
                    } else {
                        r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#
                    };
                    let response = format!(
                        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        let injector = FaultInjector::default();
        *injector.responder.lock().unwrap() = Some(format!("http://{address}"));
        injector
    }

    pub fn set(&self, faults: Vec<Fault>) {
        *self.plan.lock().unwrap() = faults;
    }

    pub fn clear(&self) {
        self.plan.lock().unwrap().clear();
    }

    /// Faults injected so far.
    pub fn injected(&self) -> usize {
        self.injected.load(Ordering::Relaxed)
    }

    /// Operation names of every attempt since the last call, in order.
    pub fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut self.calls.lock().unwrap())
    }

    /// Uses up one hit of a matching fault, if any.
    fn take(&self, operation: &str, modes: &[Mode]) -> Option<Mode> {
        let mut plan = self.plan.lock().unwrap();
        let fault = plan
            .iter_mut()
            .find(|f| f.operation == operation && f.times > 0 && modes.contains(&f.mode))?;
        fault.times = fault.times.saturating_sub(1);
        self.injected.fetch_add(1, Ordering::Relaxed);
        Some(fault.mode)
    }
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> String {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = socket.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buffer);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0usize);
            if buffer.len() >= end + 4 + length {
                break;
            }
        }
    }
    String::from_utf8_lossy(&buffer).into_owned()
}

fn operation(cfg: &ConfigBag) -> String {
    cfg.load::<Metadata>()
        .map(|m| m.name().to_owned())
        .unwrap_or_default()
}

impl Intercept for FaultInjector {
    fn name(&self) -> &'static str {
        "FaultInjector"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = operation(cfg);
        self.calls.lock().unwrap().push(operation.clone());
        let path = match self.take(&operation, &[Mode::Throttle, Mode::Conflict]) {
            Some(Mode::Conflict) => "conflict",
            Some(_) => "throttle",
            None => return Ok(()),
        };
        let responder = self
            .responder
            .lock()
            .unwrap()
            .clone()
            .expect("responder started");
        context
            .request_mut()
            .set_uri(format!("{responder}/{path}"))?;
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.take(&operation(cfg), &[Mode::LostResponse]).is_some() {
            *context.response_mut() = HttpResponse::new(
                StatusCode::try_from(500).expect("status"),
                SdkBody::from(
                    r#"{"__type":"com.amazon.coral.service#InternalFailure","message":"response lost"}"#,
                ),
            );
        }
        Ok(())
    }
}
