//! A stub of the Lambda Runtime API on 127.0.0.1: enough of
//! <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html> for a
//! function to start, take the events it is given and answer them.
//!
//! It records when the first `GET .../invocation/next` arrives (the end of
//! init), when each event was handed out and when its response came back.
//! Once the events run out, the next `GET` is left pending: the function is
//! idle, as between invocations in Lambda, and [`RuntimeApi::idle`] returns.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::Notify;

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const INVOCATION: &str = "/2018-06-01/runtime/invocation/";
const INIT_ERROR: &str = "/2018-06-01/runtime/init/error";

/// One invocation as the stub saw it.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub handed_out: Instant,
    pub answered: Option<Instant>,
    /// The function's response document (for `lambda_http`, the API Gateway
    /// response with `statusCode`), or its error document.
    pub response: Option<String>,
    pub error: bool,
}

impl Invocation {
    pub fn latency(&self) -> Option<Duration> {
        self.answered.map(|a| a - self.handed_out)
    }

    /// The `statusCode` of an API Gateway response.
    pub fn status(&self) -> Option<u16> {
        let doc: serde_json::Value = serde_json::from_str(self.response.as_deref()?).ok()?;
        doc["statusCode"].as_u64().map(|s| s as u16)
    }
}

#[derive(Default)]
struct State {
    first_next: Option<Instant>,
    events: VecDeque<String>,
    invocations: Vec<Invocation>,
    init_error: Option<String>,
}

#[derive(Clone)]
pub struct RuntimeApi {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    idle: Arc<Notify>,
}

impl RuntimeApi {
    /// Listens on a free port and hands out `events`, in order.
    pub async fn start(events: Vec<String>) -> std::io::Result<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let api = RuntimeApi {
            addr: listener.local_addr()?,
            state: Arc::new(Mutex::new(State {
                events: events.into(),
                ..State::default()
            })),
            idle: Arc::new(Notify::new()),
        };
        let server = api.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let api = server.clone();
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let api = api.clone();
                        async move { Ok::<_, Infallible>(api.answer(request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(api)
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Waits until the function asks for an event after the last one.
    pub async fn idle(&self) {
        self.idle.notified().await
    }

    pub fn first_next(&self) -> Option<Instant> {
        self.state.lock().unwrap().first_next
    }

    pub fn invocations(&self) -> Vec<Invocation> {
        self.state.lock().unwrap().invocations.clone()
    }

    pub fn init_error(&self) -> Option<String> {
        self.state.lock().unwrap().init_error.clone()
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let arrived = Instant::now();
        let (method, path) = (request.method().clone(), request.uri().path().to_owned());
        if method == Method::GET && path == NEXT {
            return self.next(arrived).await;
        }
        let body = request
            .into_body()
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        let answered = Instant::now();
        let mut state = self.state.lock().unwrap();
        if method == Method::POST && path == INIT_ERROR {
            state.init_error = Some(body);
            self.idle.notify_one();
        } else if let Some(rest) = path.strip_prefix(INVOCATION) {
            let index = rest
                .split('/')
                .next()
                .and_then(|id| id.parse::<usize>().ok());
            if let Some(invocation) = index.and_then(|i| state.invocations.get_mut(i)) {
                invocation.answered = Some(answered);
                invocation.error = rest.ends_with("/error");
                invocation.response = Some(body);
            }
        } else {
            return reply(StatusCode::NOT_FOUND, String::new(), &[]);
        }
        reply(StatusCode::ACCEPTED, "{}".into(), &[])
    }

    async fn next(&self, arrived: Instant) -> Response<Full<Bytes>> {
        let event = {
            let mut state = self.state.lock().unwrap();
            state.first_next.get_or_insert(arrived);
            match state.events.pop_front() {
                Some(event) => {
                    state.invocations.push(Invocation {
                        handed_out: Instant::now(),
                        answered: None,
                        response: None,
                        error: false,
                    });
                    Some((state.invocations.len() - 1, event))
                }
                None => None,
            }
        };
        let Some((index, event)) = event else {
            // Idle: the next event never comes; the function is stopped here.
            self.idle.notify_one();
            return std::future::pending().await;
        };
        let deadline = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            + 30_000;
        reply(
            StatusCode::OK,
            event,
            &[
                ("lambda-runtime-aws-request-id", index.to_string()),
                ("lambda-runtime-deadline-ms", deadline.to_string()),
                (
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:bench".into(),
                ),
                (
                    "lambda-runtime-trace-id",
                    "Root=1-00000000-000000000000000000000000;Sampled=0".into(),
                ),
                ("content-type", "application/json".into()),
            ],
        )
    }
}

fn reply(
    status: StatusCode,
    body: String,
    headers: &[(&'static str, String)],
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    for (name, value) in headers {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(*name, value);
        }
    }
    response
}
