//! `cargo lambda watch` serving the real function binaries for one test
//! file (served, hostile and crash), plus what the hostile-input and crash
//! tests need: the function processes it spawned, killing one with SIGKILL,
//! and starting a fresh one in its place.
//!
//! Each test file includes this module and uses part of it.
#![allow(dead_code)]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use contact_migration::facts::Facts;
use end_to_end::{facts_key_bytes, kms_endpoint, ses_endpoint, sns_endpoint, totp_key_id};

/// How long the first request to a function may take: `cargo lambda watch`
/// compiles the binary then, on a machine that may be busy building too.
pub const COLD_START: Duration = Duration::from_secs(900);

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// A function process that the test started in place of a killed one.
struct Respawned {
    name: String,
    child: Child,
}

/// What a function process ran with: enough to start an identical one.
pub struct FunctionImage {
    pub name: String,
    pub exe: PathBuf,
    pub cwd: PathBuf,
    pub env: Vec<(OsString, OsString)>,
}

/// `cargo lambda watch` in its own process group, stopped with it on drop.
pub struct Watch {
    child: Child,
    pub base: String,
    pub port: u16,
    pub log_path: PathBuf,
    respawned: Vec<Respawned>,
}

impl Watch {
    /// Serves the workspace's functions against `table`, with
    /// `AUTH_MODE=dev` and DynamoDB at `dynamodb`.
    ///
    /// `--ignore-changes`: other work in the tree must not rebuild and
    /// restart the functions in the middle of a test, since the tests watch
    /// which processes serve them.
    /// The functions read facts as `facts` does: from the table, or from
    /// the stand-in the stack runs over its table, signed with the tests' key.
    pub fn start(table: &str, dynamodb: &str, facts: &Facts) -> Watch {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log_path = std::env::temp_dir().join(format!("cargo-lambda-watch-{port}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut command = Command::new("cargo");
        match facts {
            Facts::Table(_) => command.env("FACTS_ADAPTER", "table"),
            Facts::Http(http) => command
                .env("FACTS_ADAPTER", "http")
                .env("FACTS_URL", http.base())
                .env(
                    "FACTS_HMAC_SECRET",
                    std::str::from_utf8(facts_key_bytes()).expect("an ASCII key"),
                ),
        };
        let child = command
            .args([
                "lambda",
                "watch",
                "--ignore-changes",
                "-A",
                "127.0.0.1",
                "-P",
                &port.to_string(),
            ])
            .current_dir(workspace_root())
            .env("TABLE_NAME", table)
            .env("AUTH_MODE", "dev")
            .env(
                "CODE_HMAC_SECRET",
                "served-test-secret-0123456789abcdef-0123",
            )
            .env("SENDER_EMAIL", "no-reply@example.com")
            .env("AWS_ENDPOINT_URL_DYNAMODB", dynamodb)
            .env("AWS_ENDPOINT_URL_SESV2", ses_endpoint())
            .env("AWS_ENDPOINT_URL_SNS", sns_endpoint())
            .env("AWS_ENDPOINT_URL_KMS", kms_endpoint())
            // The key the harness seals accounts' TOTP secrets under.
            .env("TOTP_KEY_ID", totp_key_id())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("CODE_HMAC_SECRET_PARAMETER")
            .env_remove("FACTS_HMAC_SECRET_PARAMETER")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("cargo lambda is installed (make test installs it into .venv)");
        let mut watch = Watch {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            log_path,
            respawned: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = watch.child.try_wait() {
                panic!(
                    "cargo lambda watch exited ({status}); is .venv/bin on PATH (make test)?\n{}",
                    watch.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "cargo lambda watch did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        watch
    }

    /// Why the functions cannot serve, if cargo-lambda's log says so (a
    /// build that failed, a function that exited).
    pub fn failure(&self) -> Option<String> {
        let log = self.log();
        let failed = log.contains("could not compile") || log.contains("ERROR command exited");
        failed.then(|| {
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        })
    }

    /// Awaits `work` (requests to the functions), failing at once if the
    /// functions cannot serve instead of waiting out a cold-start timeout.
    pub async fn serving<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    if let Some(log) = self.failure() {
                        panic!("the functions cannot serve; cargo lambda watch says:\n{log}");
                    }
                }
            }
        }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Where the processes started by [`Watch::respawn`] log.
    pub fn respawned_log_path(&self) -> PathBuf {
        self.log_path.with_extension("respawned.log")
    }

    /// The request lines the respawned processes logged for `endpoint`.
    pub fn respawned_requests(&self, endpoint: &str) -> usize {
        let needle = format!("\"endpoint\":\"{endpoint}\"");
        std::fs::read_to_string(self.respawned_log_path())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"message\":\"request\"") && l.contains(&needle))
            .count()
    }

    /// The live processes of function `name`: those `cargo lambda watch`
    /// spawned (it runs `cargo run --bin NAME`, which execs
    /// `target/debug/NAME`) and those this test started in their place.
    pub fn function_pids(&mut self, name: &str) -> Vec<u32> {
        let out = Command::new("pgrep")
            .args([
                "-P",
                &self.child.id().to_string(),
                "-f",
                &format!("/{name}$"),
            ])
            .output()
            .expect("pgrep (procps) is installed");
        let mut pids: Vec<u32> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        for r in &mut self.respawned {
            if r.name == name && matches!(r.child.try_wait(), Ok(None)) {
                pids.push(r.child.id());
            }
        }
        pids.sort_unstable();
        pids
    }

    /// The one live process of function `name`.
    pub fn function_pid(&mut self, name: &str) -> u32 {
        let pids = self.function_pids(name);
        assert_eq!(pids.len(), 1, "one {name} process: {pids:?}");
        pids[0]
    }

    /// SIGKILL to the one process of function `name`, as a crash would: no
    /// handler runs, no response is sent. Returns what it ran with.
    pub fn kill_function(&mut self, name: &str) -> FunctionImage {
        let pid = self.function_pid(name);
        let image = image_of(name, pid);
        let status = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -KILL {pid}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.function_pids(name).contains(&pid) {
            assert!(Instant::now() < deadline, "{name} ({pid}) survived SIGKILL");
            std::thread::sleep(Duration::from_millis(50));
        }
        image
    }

    /// Starts a fresh process from `image`, as Lambda starts a new execution
    /// environment after one crashed: same binary, same environment, same
    /// runtime API. (`cargo lambda watch` itself does not replace a function
    /// process that died; requests for it wait until one polls again.)
    pub fn respawn(&mut self, image: &FunctionImage) -> u32 {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.respawned_log_path())
            .expect("log file");
        let child = Command::new(&image.exe)
            .env_clear()
            .envs(image.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&image.cwd)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("the function binary starts");
        let pid = child.id();
        self.respawned.push(Respawned {
            name: image.name.clone(),
            child,
        });
        pid
    }
}

/// Binary, working directory and environment of process `pid`, from /proc.
fn image_of(name: &str, pid: u32) -> FunctionImage {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let exe = std::fs::read_link(proc.join("exe")).expect("/proc/PID/exe");
    // A rebuild replaces the file; the path still names the binary to run.
    let exe = PathBuf::from(
        exe.to_string_lossy()
            .trim_end_matches(" (deleted)")
            .to_owned(),
    );
    let cwd = std::fs::read_link(proc.join("cwd")).expect("/proc/PID/cwd");
    let environ = std::fs::read(proc.join("environ")).expect("/proc/PID/environ");
    let env = environ
        .split(|b| *b == 0)
        .filter(|kv| !kv.is_empty())
        .filter_map(|kv| {
            let at = kv.iter().position(|b| *b == b'=')?;
            Some((
                OsString::from_vec(kv[..at].to_vec()),
                OsString::from_vec(kv[at + 1..].to_vec()),
            ))
        })
        .collect();
    FunctionImage {
        name: name.to_owned(),
        exe,
        cwd,
        env,
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        for r in &mut self.respawned {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
        let spawned: Vec<u32> = ["send-codes", "verify", "migrate", "close"]
            .into_iter()
            .flat_map(|name| self.function_pids(name))
            .collect();
        // SIGTERM to the group lets cargo-lambda stop the function processes
        // (each runs in a session of its own, outside the group).
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let mut stopped = false;
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                stopped = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !stopped {
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = self.child.wait();
        }
        // Any still alive (cargo-lambda was killed before it stopped them).
        for pid in spawned {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmdline.windows(b"target/".len()).any(|w| w == b"target/") {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}
