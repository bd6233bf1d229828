//! Cold starts: each release binary started as Lambda starts it, against
//! the Runtime API stub, from exec to its first `GET .../invocation/next`
//! (init), then one real invocation against the local stack (first
//! invocation), then a few more, then stopped while idle. The hello-world
//! binary runs in the same rounds, so the ratio compares like with like on a
//! noisy machine.

use contact_migration::domain::Timestamp;
use end_to_end::{unix_now, Stack, TEST_SECRET};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::flow::{self, Inbox, Req, Stage};
use crate::runtime_api::RuntimeApi;

/// What a function binary is asked to do on its first invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// `GET /hello` for the hello-world binary.
    Hello,
    /// `POST /migrations` (send-codes).
    Start,
    /// `POST /migrations/{id}/verify` with the right codes (verify).
    Verify,
    /// `POST /migrations/{id}/migrate` (migrate).
    Migrate,
    /// `POST /migrations/{id}/close` (close).
    Close,
    /// An empty batch of the table's stream (relay): its init is what is
    /// measured; the first invocation answers without a request.
    Relay,
}

/// One binary under test.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub path: PathBuf,
    pub job: Job,
    /// Read the code key from SSM (`CODE_HMAC_SECRET_PARAMETER`) at init,
    /// as in production, instead of from `CODE_HMAC_SECRET`.
    pub key_from_ssm: bool,
}

#[derive(Debug, Default, Clone)]
pub struct Samples {
    /// Exec to the first `GET .../invocation/next`.
    pub init: Vec<Duration>,
    /// CPU time (user + system, every thread) the process used to get there,
    /// work it does on other threads meanwhile included.
    pub init_cpu: Vec<Duration>,
    /// Minor page faults up to the same point.
    pub init_faults: Vec<u64>,
    pub first_invocation: Vec<Duration>,
    /// Peak resident set (VmHWM) after the invocations, in KiB.
    pub peak_rss_kib: Vec<u64>,
}

/// Invocations after the first, for the memory figure.
const LATER_INVOCATIONS: usize = 4;

/// The relay's event: a batch of the table's stream with no record, and its answer.
const EMPTY_BATCH: &str = r#"{"Records":[]}"#;
const EMPTY_BATCH_ANSWER: &str = r#"{"batchItemFailures":[]}"#;

/// The environment Lambda gives a function (execution role credentials as
/// environment variables, region, runtime variables) plus the function's
/// own configuration and the local endpoints. Nothing else leaks in from the
/// caller's environment.
pub fn lambda_env(name: &str, table: &str, ssm_parameter: Option<&str>) -> Vec<(String, String)> {
    let inherit = |n: &str| std::env::var(n).ok().map(|v| (n.to_owned(), v));
    let mut env: Vec<(String, String)> = [
        ("AWS_LAMBDA_FUNCTION_NAME", name),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_rapid"),
        ("LAMBDA_TASK_ROOT", "/var/task"),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime"),
        ("_HANDLER", "bootstrap"),
        ("TZ", ":UTC"),
        ("LANG", "en_US.UTF-8"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("AWS_SESSION_TOKEN", "local"),
        ("TABLE_NAME", table),
        ("SENDER_EMAIL", end_to_end::SENDER),
        // The relay's; the other functions do not read it.
        ("EVENT_BUS_NAME", "bench"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    match ssm_parameter {
        Some(parameter) => env.push(("CODE_HMAC_SECRET_PARAMETER".into(), parameter.into())),
        None => env.push((
            "CODE_HMAC_SECRET".into(),
            String::from_utf8_lossy(TEST_SECRET).into_owned(),
        )),
    }
    env.extend(
        [
            "AWS_ENDPOINT_URL_DYNAMODB",
            "AWS_ENDPOINT_URL_SESV2",
            "AWS_ENDPOINT_URL_SNS",
            "AWS_ENDPOINT_URL_SSM",
            "AWS_ENDPOINT_URL_KMS",
            "TOTP_KEY_ID",
        ]
        .into_iter()
        .filter_map(inherit),
    );
    env
}

/// The events of one cold start of `target`: the first is the measured one.
async fn events(stack: &Stack, inbox: &Inbox, job: Job) -> Vec<String> {
    let now: Timestamp = unix_now();
    let (req, caller) = match job {
        Job::Relay => return vec![EMPTY_BATCH.to_owned(); 1 + LATER_INVOCATIONS],
        Job::Hello => (
            Req {
                method: "GET",
                path: "/hello".into(),
                body: None,
            },
            "nobody".to_owned(),
        ),
        Job::Start => {
            let pair = flow::pair(stack).await;
            (Req::start(&pair.duplicate.email), pair.main.id)
        }
        Job::Verify => {
            let p = flow::prepare(stack, inbox, Stage::CodesSent, now).await;
            (p.verify(now), p.pair.main.id)
        }
        Job::Migrate => {
            let p = flow::prepare(stack, inbox, Stage::Verified, now).await;
            (Req::migrate(&p.id), p.pair.main.id)
        }
        Job::Close => {
            let p = flow::prepare(stack, inbox, Stage::AwaitingConfirmation, now).await;
            (Req::close(&p.id), p.pair.main.id)
        }
    };
    vec![req.event(&caller); 1 + LATER_INVOCATIONS]
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// One cold start of `target`.
async fn cold_start(
    stack: &Stack,
    inbox: &Inbox,
    target: &Target,
    ssm_parameter: &str,
    log_dir: &Path,
) -> Result<(Duration, Duration, u64), String> {
    let events = events(stack, inbox, target.job).await;
    let api = RuntimeApi::start(events)
        .await
        .map_err(|e| format!("runtime API stub: {e}"))?;
    let mut command = function_command(
        target,
        stack.app.store.table(),
        ssm_parameter,
        log_dir,
        &api,
    )?;
    let started = Instant::now();
    let child = command
        .spawn()
        .map_err(|e| format!("{}: {e}", target.path.display()))?;
    let idle = tokio::time::timeout(Duration::from_secs(30), api.idle()).await;
    let rss = peak_rss_kib(child.id()).unwrap_or(0);
    stop(child);

    if let Some(error) = api.init_error() {
        return Err(format!("{}: init error {error}", target.name));
    }
    if idle.is_err() {
        return Err(format!(
            "{}: no idle GET within 30 s (see {})",
            target.name,
            log_dir.display()
        ));
    }
    let init = api
        .first_next()
        .ok_or_else(|| format!("{}: never asked for an event", target.name))?
        - started;
    let invocations = api.invocations();
    let first = invocations
        .first()
        .ok_or_else(|| format!("{}: no invocation", target.name))?;
    // An HTTP function answers with a 2xx `statusCode`; the relay with a
    // batch response that reports no record as failed.
    let answered = match target.job {
        Job::Relay => !first.error && first.response.as_deref() == Some(EMPTY_BATCH_ANSWER),
        _ => !first.error && first.status().is_some_and(|s| (200..300).contains(&s)),
    };
    if !answered {
        return Err(format!(
            "{}: first invocation failed: {}",
            target.name,
            first.response.as_deref().unwrap_or("no response")
        ));
    }
    let latency = first
        .latency()
        .ok_or_else(|| format!("{}: first invocation unanswered", target.name))?;
    Ok((init, latency, rss))
}

/// What a process used until it was stopped: CPU time and minor page faults.
struct Usage {
    cpu: Duration,
    minor_faults: u64,
}

/// Stops `child` and reaps it with `wait4`, which reports the resources the
/// whole process used (threads that already ended included).
fn stop(child: std::process::Child) -> Option<Usage> {
    let pid = child.id() as libc::pid_t;
    // SAFETY: plain system calls on a child of this process that has not been
    // reaped yet (`child` is consumed, so std will not wait for it again).
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        let mut status = 0;
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::wait4(pid, &mut status, 0, &mut usage) != pid {
            return None;
        }
        let time = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        Some(Usage {
            cpu: time(usage.ru_utime) + time(usage.ru_stime),
            minor_faults: usage.ru_minflt as u64,
        })
    }
}

/// How long a function that is idle at its first `GET` gets to finish what
/// it started on other threads before its CPU time is read.
const SETTLE: Duration = Duration::from_millis(50);

/// A start that is given no event: init alone, its time, CPU and page faults.
async fn init_only(
    target: &Target,
    table: &str,
    ssm_parameter: &str,
    log_dir: &Path,
) -> Result<(Duration, Usage), String> {
    let api = RuntimeApi::start(Vec::new())
        .await
        .map_err(|e| format!("runtime API stub: {e}"))?;
    let mut command = function_command(target, table, ssm_parameter, log_dir, &api)?;
    let started = Instant::now();
    let child = command
        .spawn()
        .map_err(|e| format!("{}: {e}", target.path.display()))?;
    let idle = tokio::time::timeout(Duration::from_secs(30), api.idle()).await;
    tokio::time::sleep(SETTLE).await;
    let usage = stop(child);
    if let Some(error) = api.init_error() {
        return Err(format!("{}: init error {error}", target.name));
    }
    let (Ok(()), Some(first), Some(usage)) = (idle, api.first_next(), usage) else {
        return Err(format!(
            "{}: did not reach its first GET (see {})",
            target.name,
            log_dir.display()
        ));
    };
    Ok((first - started, usage))
}

fn function_command(
    target: &Target,
    table: &str,
    ssm_parameter: &str,
    log_dir: &Path,
    api: &RuntimeApi,
) -> Result<Command, String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_dir.join(format!("{}.log", target.name.replace([' ', ','], "-"))))
        .map_err(|e| format!("log file: {e}"))?;
    let mut command = Command::new(&target.path);
    command
        .env_clear()
        .envs(lambda_env(
            &target.name,
            table,
            target.key_from_ssm.then_some(ssm_parameter),
        ))
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log);
    Ok(command)
}

/// `rounds` rounds in which every target starts twice, once with no event
/// (init alone) and once with its events; the targets take turns (rotated
/// each round) so drift in machine load spreads evenly over all of them.
pub async fn run(
    stack: &Stack,
    targets: &[Target],
    rounds: usize,
    ssm_parameter: &str,
    log_dir: &Path,
) -> Result<Vec<Samples>, String> {
    let inbox = Inbox::emulator();
    let mut samples = vec![Samples::default(); targets.len()];
    for round in 0..rounds {
        for k in 0..targets.len() {
            let i = (k + round) % targets.len();
            let table = stack.app.store.table();
            let (init, usage) = init_only(&targets[i], table, ssm_parameter, log_dir).await?;
            samples[i].init.push(init);
            samples[i].init_cpu.push(usage.cpu);
            samples[i].init_faults.push(usage.minor_faults);
            let (init, first, rss) =
                cold_start(stack, &inbox, &targets[i], ssm_parameter, log_dir).await?;
            samples[i].init.push(init);
            samples[i].first_invocation.push(first);
            samples[i].peak_rss_kib.push(rss);
        }
        eprint!(".");
    }
    eprintln!();
    Ok(samples)
}
