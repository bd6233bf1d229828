//! The floor: a hello-world `lambda_http` function, built with the same profile
//! and runtime flavor as the functions. Its cold start is what the functions'
//! cold starts are compared with.

use lambda_http::{service_fn, Body, Request, Response};
use std::convert::Infallible;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::run(service_fn(|_: Request| async {
        Ok::<_, Infallible>(Response::new(Body::Text("hello".into())))
    }))
    .await
}
