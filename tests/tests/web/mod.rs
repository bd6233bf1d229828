//! The browser tests' tools: Debian's Chromium driven headless through its
//! chromedriver (one driver per test binary, one browser session per test),
//! the page found by the accessible names PRODUCT.md §8 lists, an axe-core
//! scan, and the screenshots of docs/screens/.
#![allow(dead_code)]

pub mod server;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fantoccini::{elements::Element, Client, ClientBuilder, Locator};
use serde_json::{json, Value};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long the page may take to show what a test waits for.
const PATIENCE: Duration = Duration::from_secs(20);

/// The chromedriver of this test binary, started on first use. It is
/// started from a thread that lives as long as the process and asks the
/// kernel to end it when that thread ends, so no driver outlives the tests.
fn chromedriver() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let (started, spawned) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut command = Command::new(CHROMEDRIVER);
            command
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: prctl is async-signal-safe; it only sets this child's
            // parent-death signal.
            unsafe {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
            let child = command.spawn();
            let ok = child.is_ok();
            started.send(child.map(|_| ())).ok();
            if ok {
                loop {
                    std::thread::park();
                }
            }
        });
        spawned
            .recv()
            .expect("the driver thread answers")
            .unwrap_or_else(|e| {
                panic!("{CHROMEDRIVER} starts (infra/local/setup.sh installs chromium-driver): {e}")
            });
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        format!("http://127.0.0.1:{port}")
    })
}

/// A fresh headless Chromium. The background-networking flags keep it from
/// reaching out to Google's services, which a closed network refuses.
async fn browser(user_data: &std::path::Path) -> Client {
    let args = json!([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--lang=en-GB",
        format!("--user-data-dir={}", user_data.display()),
    ]);
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({"binary": CHROMIUM, "args": args, "prefs": {"intl.accept_languages": "en-GB,en"}}),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(chromedriver())
        .await
        .expect("chromedriver starts a Chromium session")
}

/// One browser session on one test's origin.
pub struct Page {
    pub client: Client,
    pub origin: String,
    user_data: PathBuf,
}

/// Runs `test` with a page on `origin`, and ends the browser session
/// whatever the test does (a panic included) before reporting its outcome.
pub async fn with_page<F, Fut>(origin: String, test: F)
where
    F: FnOnce(Page) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let user_data = std::env::temp_dir().join(format!("chromium-{}", uuid::Uuid::new_v4()));
    let client = browser(&user_data).await;
    let page = Page {
        client: client.clone(),
        origin,
        user_data: user_data.clone(),
    };
    let outcome = tokio::spawn(async move {
        page.client
            .goto(&page.origin)
            .await
            .expect("the page loads");
        test(page).await
    })
    .await;
    client.close().await.ok();
    std::fs::remove_dir_all(&user_data).ok();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn xpath_literal(text: &str) -> String {
    if !text.contains('\'') {
        format!("'{text}'")
    } else {
        format!("\"{text}\"")
    }
}

impl Page {
    /// Waits until `find` finds something; panics with what the page says.
    async fn wait_for(&self, what: &str, xpath: &str) -> Element {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(found) = self.client.find(Locator::XPath(xpath)).await {
                if found.is_displayed().await.unwrap_or(false) {
                    return found;
                }
            }
            if Instant::now() > deadline {
                panic!("no {what} on the page; it says:\n{}", self.text().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The visible text of the page (the main region and an open dialog).
    pub async fn text(&self) -> String {
        let text = self
            .client
            .execute("return document.body.innerText;", vec![])
            .await
            .unwrap_or(Value::Null);
        text.as_str().unwrap_or_default().to_owned()
    }

    /// The button (or link) whose accessible name is `name`.
    pub async fn button(&self, name: &str) -> Element {
        let literal = xpath_literal(name);
        let xpath = format!("//*[self::button or self::a][normalize-space(.)={literal}]");
        self.wait_for(&format!("button {name:?}"), &xpath).await
    }

    pub async fn click(&self, name: &str) {
        self.button(name).await.click().await.expect("click");
    }

    /// The input whose label begins with `label`.
    pub async fn field(&self, label: &str) -> Element {
        let literal = xpath_literal(label);
        let xpath = format!("//*[@id=//label[starts-with(normalize-space(.), {literal})]/@for]");
        self.wait_for(&format!("field {label:?}"), &xpath).await
    }

    /// Types `value` into the field labelled `label` (after clearing it).
    pub async fn fill(&self, label: &str, value: &str) {
        let field = self.field(label).await;
        field.clear().await.expect("clear");
        field.send_keys(value).await.expect("type");
    }

    /// Waits for the screen whose `h1` contains `text`.
    pub async fn heading(&self, text: &str) -> String {
        let literal = xpath_literal(text);
        let xpath = format!("//h1[contains(normalize-space(.), {literal})]");
        self.wait_for(&format!("heading containing {text:?}"), &xpath)
            .await
            .text()
            .await
            .expect("heading text")
    }

    /// Waits until the page's text contains `text`.
    pub async fn shows(&self, text: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let now = self.text().await;
            if now.contains(text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the page never said {text:?}; it says:\n{now}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What has focus: its id, or its text when it has none.
    pub async fn focused(&self) -> String {
        let script = "const e = document.activeElement; \
                      return e.id || (e.textContent || '').trim();";
        let value = self.client.execute(script, vec![]).await.expect("script");
        value.as_str().unwrap_or_default().to_owned()
    }

    /// The error shown at the field `id`, if any.
    pub async fn field_error(&self, id: &str) -> Option<String> {
        let found = self
            .client
            .find(Locator::Id(&format!("{id}-error")))
            .await
            .ok()?;
        found.text().await.ok()
    }

    /// Signs in with the dev sign-in as `account_id`.
    pub async fn sign_in(&self, account_id: &str) {
        self.heading("Sign in").await;
        self.fill("Account ID", account_id).await;
        self.click("Sign in").await;
        self.heading("Security Center").await;
    }

    /// Whether the confirmation dialog is open.
    pub async fn dialog_open(&self) -> bool {
        let value = self
            .client
            .execute(
                "return document.getElementById('confirm-dialog').open;",
                vec![],
            )
            .await
            .expect("script");
        value.as_bool().unwrap_or(false)
    }
}

pub mod axe;
pub mod keyboard;
pub mod screens;

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}
