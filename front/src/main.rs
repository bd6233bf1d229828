//! `front --listen 127.0.0.1:9000 --api http://127.0.0.1:9001 [--web web]`:
//! `make dev`'s server on :9000, the page and the API on one origin.

use std::sync::Arc;

use front::{proxy::Proxy, workspace_web_root, Front};

fn usage() -> ! {
    eprintln!("usage: front --listen ADDR:PORT --api URL [--web DIR]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let (mut listen, mut api, mut web) = (None, None, workspace_web_root());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--listen" => listen = Some(value),
            "--api" => api = Some(value),
            "--web" => web = value.into(),
            _ => usage(),
        }
    }
    let (Some(listen), Some(api)) = (listen, api) else {
        usage()
    };
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .unwrap_or_else(|e| {
            eprintln!("front: cannot listen on {listen}: {e}");
            std::process::exit(1)
        });
    eprintln!(
        "front: http://{listen}/ serves {} and the API at {api}",
        web.display()
    );
    let front = Front {
        web_root: web,
        api: Arc::new(Proxy::new(api)),
        dev_auth: true,
    };
    front.serve(listener).await;
}
