//! The front server of local development and of the browser tests: the
//! static files of `web/` and the API's paths on one origin, the shape
//! CloudFront gives production (an S3 origin and the API Gateway origin on
//! one distribution, `template.yaml`).
//!
//! Where the API's answers come from is the caller's choice ([`Api`]): a
//! forward to `cargo lambda watch` (`make dev`, [`proxy::Proxy`]) or the
//! shared crate's handler in the same process (the browser tests).

pub mod proxy;
mod statics;

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The response headers of every static file, the same as the CloudFront
/// response headers policy in `template.yaml` (a test keeps them equal):
/// scripts and styles from this origin only, none inline, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

pub type ApiFuture = Pin<Box<dyn Future<Output = Response<Bytes>> + Send>>;

/// Whatever answers the API's paths.
pub trait Api: Send + Sync + 'static {
    fn call(&self, request: Request<Bytes>) -> ApiFuture;
}

/// The API's paths, as the router in Cargo.toml and the CloudFront cache
/// behaviour in `template.yaml` name them; everything else is a static file.
pub fn is_api_path(path: &str) -> bool {
    path == "/migrations" || path.starts_with("/migrations/")
}

pub struct Front {
    /// The `web/` directory.
    pub web_root: PathBuf,
    pub api: Arc<dyn Api>,
    /// Answer `/config.json` with `{"auth": "dev"}`: the API takes the
    /// caller from `X-Dev-Account-Id`, so the page shows the dev sign-in.
    pub dev_auth: bool,
}

/// `web/` of this workspace.
pub fn workspace_web_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("front/ sits in the workspace")
        .join("web")
}

impl Front {
    /// Serves connections from `listener` until the task is dropped.
    pub async fn serve(self, listener: TcpListener) {
        let front = Arc::new(self);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let front = front.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let front = front.clone();
                    async move { Ok::<_, Infallible>(front.answer(request).await) }
                });
                // A client that hangs up mid-request is not the server's error.
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_owned();
        let response = if is_api_path(&path) {
            let (parts, body) = request.into_parts();
            match body.collect().await {
                Ok(body) => {
                    self.api
                        .call(Request::from_parts(parts, body.to_bytes()))
                        .await
                }
                Err(_) => statics::plain(hyper::StatusCode::BAD_REQUEST, "unreadable body"),
            }
        } else if self.dev_auth && path == "/config.json" {
            statics::config_dev()
        } else {
            statics::file(&self.web_root, request.method(), &path).await
        };
        response.map(Full::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_sends_the_same_content_security_policy() {
        let template = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"),
        )
        .expect("template.yaml");
        let quoted = format!("ContentSecurityPolicy: \"{CONTENT_SECURITY_POLICY}\"");
        assert!(template.contains(&quoted), "template.yaml has {quoted}");
    }

    #[test]
    fn only_the_migration_paths_go_to_the_api() {
        assert!(is_api_path("/migrations"));
        assert!(is_api_path("/migrations/abc/verify"));
        assert!(!is_api_path("/migrationsx"));
        assert!(!is_api_path("/js/main.js"));
    }
}
