//! The page's origin for one test: the front server (front/) serving web/
//! and the test's own stack answering the API paths in this process, with
//! `AUTH_MODE=dev` identity, exactly as `make dev` serves them through
//! `cargo lambda watch`.

use std::sync::Arc;

use contact_migration::http::{self, AuthMode};
use contact_migration::App;
use end_to_end::{unix_now, ALL_ENDPOINTS};
use front::{Api, ApiFuture, Front};
use hyper::body::Bytes;

struct InProcess {
    app: App,
}

impl Api for InProcess {
    fn call(&self, request: hyper::Request<Bytes>) -> ApiFuture {
        let app = self.app.clone();
        Box::pin(async move {
            let request = request.map(|body| lambda_http::Body::from(body.to_vec()));
            let response =
                http::serve::<ALL_ENDPOINTS>(&app, AuthMode::Dev, request, unix_now()).await;
            response.map(|body| match body {
                lambda_http::Body::Empty => Bytes::new(),
                lambda_http::Body::Text(text) => Bytes::from(text),
                lambda_http::Body::Binary(bytes) => Bytes::from(bytes),
                _ => Bytes::new(),
            })
        })
    }
}

/// Serves web/ and `app` on a free loopback port until the test ends;
/// returns the origin, e.g. `http://127.0.0.1:41234`.
pub async fn serve(app: App) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let origin = format!("http://{}", listener.local_addr().expect("bound"));
    let front = Front {
        web_root: front::workspace_web_root(),
        api: Arc::new(InProcess { app }),
        dev_auth: true,
    };
    tokio::spawn(front.serve(listener));
    origin
}
