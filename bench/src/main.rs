//! `make bench`: what a Lambda user pays for, measured on the local stack.
//!
//! 1. cold start of each function's release binary against a stub of the
//!    Lambda Runtime API, next to a hello-world `lambda_http` binary, and
//!    what init costs piece by piece;
//! 2. DynamoDB requests per step, counted by an interceptor, next to the
//!    fewest the data model allows;
//! 3. the arm64 deployment packages (`make package`);
//! 4. warm latency per step and throughput of complete migrations;
//! 5. peak memory of each function process;
//! 6. the relay: events per second by batch size, and commit to queue;
//! 7. what a million completed migrations cost on AWS, from the above.
//!
//! Each figure with a target is printed next to it.
//!
//! Prints Markdown tables and writes them to `target/bench/results.md`;
//! `--update FILE` also replaces the block between the result markers in
//! FILE (BENCHMARKS.md). Needs the local stack (`make bench` starts it) and
//! the release binaries next to this one. `bench requests` and `bench relay`
//! measure section 2 or 6 alone, with no release binary.

mod cost;
mod flow;
mod init;
mod phases;
mod relay;
mod requests;
mod runtime_api;
mod sizes;
mod warm;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use contact_migration::http;
use flow::{median, percentile};
use init::{Job, Target};

const FUNCTIONS: [(&str, Job); 5] = [
    ("send-codes", Job::Start),
    ("verify", Job::Verify),
    ("migrate", Job::Migrate),
    ("close", Job::Close),
    ("relay", Job::Relay),
];

/// The deployment packages' target size.
const ZIP_TARGET_BYTES: u64 = 2_500_000;

const BEGIN_MARKER: &str = "<!-- bench:results:begin -->";
const END_MARKER: &str = "<!-- bench:results:end -->";

struct Options {
    /// Cold starts per binary.
    rounds: usize,
    /// Processes per mode for the init breakdown.
    phase_runs: usize,
    /// Sequential migrations for the warm latency.
    migrations: usize,
    /// Concurrency levels of the throughput runs.
    concurrency: Vec<usize>,
    /// Migrations per concurrency level (at least this, or 8 per client).
    per_level: usize,
    /// Where the release binaries are.
    bin_dir: PathBuf,
    /// Where `make package` leaves the zips.
    lambda_dir: PathBuf,
    /// Extra binaries to start in the same rounds, `NAME=PATH` (a function
    /// built from another revision, for before/after figures).
    compare: Vec<(String, PathBuf, Job)>,
    update: Option<PathBuf>,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench [--rounds N] [--phase-runs N] [--migrations N] [--concurrency 1,4,16] \
         [--per-level N] [--bin-dir DIR] [--lambda-dir DIR] [--compare NAME=PATH]... [--update FILE]\n\
         \x20      bench phases default-chain|lambda\n\
         \x20      bench requests\n\
         \x20      bench relay"
    );
    std::process::exit(2)
}

fn options() -> Options {
    let exe = std::env::current_exe().expect("own path");
    let bin_dir = exe.parent().expect("a directory").to_owned();
    let mut o = Options {
        rounds: 15,
        phase_runs: 15,
        migrations: 60,
        concurrency: vec![1, 4, 16],
        per_level: 48,
        lambda_dir: bin_dir.join("../lambda"),
        bin_dir,
        compare: Vec::new(),
        update: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        let number = |v: String| v.parse().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--rounds" => o.rounds = number(value()),
            "--phase-runs" => o.phase_runs = number(value()),
            "--migrations" => o.migrations = number(value()),
            "--per-level" => o.per_level = number(value()),
            "--concurrency" => {
                o.concurrency = value()
                    .split(',')
                    .map(|c| c.trim().parse().unwrap_or_else(|_| usage()))
                    .collect()
            }
            "--bin-dir" => o.bin_dir = value().into(),
            "--lambda-dir" => o.lambda_dir = value().into(),
            "--update" => o.update = Some(value().into()),
            "--compare" => {
                let v = value();
                let (name, path) = v.split_once('=').unwrap_or_else(|| usage());
                // The job is the one of the function the name starts with.
                let job = FUNCTIONS
                    .iter()
                    .find(|(f, _)| name.contains(f))
                    .map(|(_, job)| *job)
                    .unwrap_or(Job::Hello);
                o.compare.push((name.into(), path.into(), job));
            }
            _ => usage(),
        }
    }
    o
}

fn main() {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("phases") => {
            phases::main(&args.next().unwrap_or_else(|| usage()));
            return;
        }
        // The request counts alone (section 2), printed.
        Some("requests") => {
            let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
            runtime.block_on(requests_only());
            return;
        }
        // The relay's figures alone (section 6), printed.
        Some("relay") => {
            let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
            runtime.block_on(relay_only());
            return;
        }
        _ => {}
    }
    let options = options();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let report = runtime.block_on(run(&options));
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench/results.md");
    if let Some(dir) = out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&out, &report).expect("results written");
    eprintln!("[bench] written to {}", out.display());
    if let Some(doc) = &options.update {
        update_doc(doc, &report);
        eprintln!("[bench] results block of {} replaced", doc.display());
    }
}

fn update_doc(doc: &Path, report: &str) {
    let text = std::fs::read_to_string(doc).unwrap_or_default();
    let updated = match (text.find(BEGIN_MARKER), text.find(END_MARKER)) {
        (Some(begin), Some(end)) if begin < end => format!(
            "{}{BEGIN_MARKER}\n{report}\n{}",
            &text[..begin],
            &text[end..]
        ),
        _ => format!("{text}\n{BEGIN_MARKER}\n{report}\n{END_MARKER}\n"),
    };
    std::fs::write(doc, updated).expect("document updated");
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / (1024.0 * 1024.0))
}

/// Prints what was added to `out` since the last call, so every section
/// shows as soon as it is measured.
fn show(out: &str, shown: &mut usize) {
    print!("{}", &out[*shown..]);
    *shown = out.len();
}

async fn run(o: &Options) -> String {
    let began = Instant::now();
    let mut out = String::new();
    let mut shown = 0;
    machine(&mut out);
    show(&out, &mut shown);

    let stack = end_to_end::Stack::new().await;
    let log_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench/logs");
    std::fs::create_dir_all(&log_dir).expect("log directory");
    let ssm_parameter = put_code_key_parameter().await;

    // 1 and 5: cold starts and memory.
    let mut targets = vec![Target {
        name: "hello (floor)".into(),
        path: o.bin_dir.join("hello"),
        job: Job::Hello,
        key_from_ssm: false,
    }];
    for (name, job) in FUNCTIONS {
        targets.push(Target {
            name: name.into(),
            path: o.bin_dir.join(name),
            job,
            key_from_ssm: false,
        });
    }
    targets.push(Target {
        name: "send-codes, key from SSM".into(),
        path: o.bin_dir.join("send-codes"),
        job: Job::Start,
        key_from_ssm: true,
    });
    for (name, path, job) in &o.compare {
        targets.push(Target {
            name: name.clone(),
            path: path.clone(),
            job: *job,
            key_from_ssm: false,
        });
    }
    eprintln!(
        "[bench] cold starts: {} rounds of {} binaries",
        o.rounds,
        targets.len()
    );
    let cold = init::run(&stack, &targets, o.rounds, &ssm_parameter, &log_dir)
        .await
        .unwrap_or_else(|e| panic!("cold start: {e}"));
    let floor = median(&cold[0].init);
    let floor_cpu = median(&cold[0].init_cpu);
    writeln!(
        out,
        "\n### 1. Cold start (release binaries, x86_64, Runtime API stub)\n"
    )
    .unwrap();
    writeln!(
        out,
        "{} rounds; in each, every binary starts twice (once given no event, once given its \
         events), binaries taking turns. *Init*: exec to the first \
         `GET /runtime/invocation/next`, median of both starts. *Init CPU* and *page faults*: \
         user + system time and minor faults of the whole process up to that point, work left \
         running on other threads included (no-event starts, read with wait4). *First \
         invocation*: event handed out to response received, against DynamoDB Local and the \
         emulators. *Peak RSS*: VmHWM after the first invocation and 4 more.\n",
        o.rounds
    )
    .unwrap();
    writeln!(
        out,
        "| binary | size MiB | relocations | init ms | × hello (target ≤ 1.5) | init min ms | init CPU ms | × hello | page faults | first invocation ms | peak RSS MiB |"
    )
    .unwrap();
    writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    .unwrap();
    for (target, s) in targets.iter().zip(&cold) {
        let init = median(&s.init);
        let cpu = median(&s.init_cpu);
        let mut faults = s.init_faults.clone();
        faults.sort();
        let size = std::fs::metadata(&target.path)
            .map(|m| m.len())
            .unwrap_or(0);
        let ratio = init.as_secs_f64() / floor.as_secs_f64();
        let relocations = sizes::relocations(&target.path)
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "–".into());
        writeln!(
            out,
            "| {} | {} | {} | {} | {:.2}{} | {} | {} | {:.2} | {} | {} | {:.1} |",
            target.name,
            mib(size),
            relocations,
            ms(init),
            ratio,
            if target.job == Job::Hello || ratio <= 1.5 {
                ""
            } else {
                " **(over)**"
            },
            ms(*s.init.iter().min().unwrap()),
            ms(cpu),
            cpu.as_secs_f64() / floor_cpu.as_secs_f64(),
            faults[faults.len() / 2],
            ms(median(&s.first_invocation)),
            *s.peak_rss_kib.iter().max().unwrap() as f64 / 1024.0,
        )
        .unwrap();
    }

    let first = |name: &str| {
        targets
            .iter()
            .zip(&cold)
            .find(|(t, _)| t.name == name)
            .map(|(_, s)| median(&s.first_invocation))
    };
    if let (Some(env), Some(ssm)) = (first("send-codes"), first("send-codes, key from SSM")) {
        writeln!(
            out,
            "\nThe code key from SSM (the production configuration), target: no serial round trip \
             on the first request. First invocation {} ms against {} ms with the key in the \
             environment ({:+.2} ms); the key's read starts at init and overlaps the request's \
             first DynamoDB read.",
            ms(ssm),
            ms(env),
            (ssm.as_secs_f64() - env.as_secs_f64()) * 1000.0
        )
        .unwrap();
    }

    eprintln!(
        "[bench] init breakdown: {} processes per mode",
        o.phase_runs
    );
    let breakdown = phase_breakdown(o.phase_runs, stack.app.store.table());
    writeln!(
        out,
        "\n#### Where init goes (medians of {} processes per way, µs)\n",
        o.phase_runs
    )
    .unwrap();
    writeln!(out, "| phase | {} |", phases::MODES.join(" | ")).unwrap();
    writeln!(out, "|---|{}", "---:|".repeat(phases::MODES.len())).unwrap();
    for (key, label) in phases::PHASES {
        let cells: Vec<String> = breakdown
            .iter()
            .map(|runs| median_of(runs, key).to_string())
            .collect();
        writeln!(out, "| {label} | {} |", cells.join(" | ")).unwrap();
    }
    let init_keys = &phases::PHASES[..7]; // the last three are not part of init
    let totals: Vec<String> = breakdown
        .iter()
        .map(|runs| {
            let mut sums: Vec<u64> = runs
                .iter()
                .map(|r| {
                    init_keys
                        .iter()
                        .map(|(k, _)| r[*k].as_u64().unwrap_or(0))
                        .sum()
                })
                .collect();
            sums.sort();
            sums.get(sums.len() / 2).copied().unwrap_or(0).to_string()
        })
        .collect();
    writeln!(out, "| **init in main, total** | {} |", totals.join(" | ")).unwrap();

    show(&out, &mut shown);
    // 2. DynamoDB requests.
    let (rows, relayed) = request_figures(&mut out, &stack).await;

    show(&out, &mut shown);
    // 3. Artifacts.
    writeln!(
        out,
        "\n### 3. Deployment packages (arm64, `make package`)\n"
    )
    .unwrap();
    writeln!(
        out,
        "| function | bootstrap MiB | zip MiB | zip bytes | target ≤ 2,500,000 bytes (2.5 MB) |"
    )
    .unwrap();
    writeln!(out, "|---|---:|---:|---:|---|").unwrap();
    for (name, _) in FUNCTIONS {
        let zip = o.lambda_dir.join(name).join("bootstrap.zip");
        match sizes::zip_sizes(&zip) {
            Ok((zipped, unzipped)) => writeln!(
                out,
                "| {name} | {} | {} | {zipped} | {} |",
                mib(unzipped),
                mib(zipped),
                if zipped <= ZIP_TARGET_BYTES {
                    "met"
                } else {
                    "**over**"
                }
            )
            .unwrap(),
            Err(e) => writeln!(out, "| {name} | – | – | – | not built ({e}) |").unwrap(),
        }
    }

    show(&out, &mut shown);
    // 4. Warm latency and throughput.
    eprintln!("[bench] warm latency: {} migrations", o.migrations);
    let latency = warm::latency(&stack, o.migrations).await;
    writeln!(
        out,
        "\n### 4. Warm latency (in-process handler, local stack)\n"
    )
    .unwrap();
    writeln!(
        out,
        "{} complete migrations one after another; the handler alone is timed (request \
         parsing to response), codes read from the SES emulator between steps.\n",
        o.migrations
    )
    .unwrap();
    writeln!(out, "| step | p50 ms | p99 ms | max ms |").unwrap();
    writeln!(out, "|---|---:|---:|---:|").unwrap();
    for step in flow::STEPS {
        let s = &latency[&step];
        writeln!(
            out,
            "| {} | {} | {} | {} |",
            step.name(),
            ms(percentile(s, 50.0)),
            ms(percentile(s, 99.0)),
            ms(*s.last().unwrap())
        )
        .unwrap();
    }

    show(&out, &mut shown);
    let (trapping, inbox) = warm::trapping_stack(&stack).await;
    writeln!(
        out,
        "\n#### Throughput of complete migrations (start, verify, migrate, close)\n"
    )
    .unwrap();
    writeln!(
        out,
        "Clients running migrations back to back; accounts made beforehand; codes read off the \
         `SendEmail` requests (which still reach the emulator).\n"
    )
    .unwrap();
    writeln!(
        out,
        "| clients | migrations | seconds | migrations/s | per migration p50 ms | p99 ms |"
    )
    .unwrap();
    writeln!(out, "|---:|---:|---:|---:|---:|---:|").unwrap();
    for &clients in &o.concurrency {
        let n = o.per_level.max(8 * clients);
        eprintln!("[bench] throughput: {clients} clients, {n} migrations");
        let t = warm::throughput(&trapping, &inbox, clients, n).await;
        writeln!(
            out,
            "| {} | {} | {:.2} | {:.1} | {} | {} |",
            t.concurrency,
            t.migrations,
            t.elapsed.as_secs_f64(),
            t.per_second(),
            ms(percentile(&t.per_migration, 50.0)),
            ms(percentile(&t.per_migration, 99.0))
        )
        .unwrap();
        show(&out, &mut shown);
    }
    relay_figures(&mut out, &trapping, &inbox, &mut shown).await;

    // 7. Cost.
    let completed = rows
        .iter()
        .find(|r| r.label.starts_with("completed migration"))
        .expect("the completed migration's row");
    let billed = |d: Duration| d.as_micros().div_ceil(1000) as u64;
    let template =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"))
            .expect("template.yaml");
    let usage = cost::Usage {
        requests: 4,
        handler_ms: [
            http::Endpoint::Start,
            http::Endpoint::Verify,
            http::Endpoint::Migrate,
            http::Endpoint::Close,
        ]
        .iter()
        .map(|step| billed(percentile(&latency[step], 50.0)))
        .collect(),
        relay_ms: billed(relayed.took),
        memory_mb: cost::template_memory_mb(&template).expect("MemorySize in template.yaml"),
        read_units: completed.counts.read_units + relayed.counts.read_units,
        write_units: completed.counts.write_units + relayed.counts.write_units,
        events: relayed.events,
        emails: 2 + relayed.emails,
        kms_requests: 1,
        sms: 2,
    };
    writeln!(
        out,
        "\n### 7. What a million completed migrations cost\n\n\
         AWS list prices for us-east-1 as of {}, on demand, no free tier; usage from this run: \
         the request units of section 2 (steps and relay), the handlers' p50 durations of \
         section 4 and the relay's delivery of one outbox, each rounded up to the millisecond as \
         Lambda bills, at the template's memory size. Durations against the local emulators are \
         shorter than in a region, where each DynamoDB round trip takes a few milliseconds: \
         every 10 ms more per invocation adds {:.2} USD.\n",
        cost::PRICES_AS_OF,
        // Ten milliseconds more in each of the five invocations.
        cost::duration_per_million(
            10.0 * f64::from(usage.requests + 1),
            usage.memory_mb,
            &cost::US_EAST_1
        )
    )
    .unwrap();
    out.push_str(&cost::table(&usage, &cost::US_EAST_1));
    show(&out, &mut shown);

    writeln!(
        out,
        "\nBenchmark run time: {:.0} s.",
        began.elapsed().as_secs_f64()
    )
    .unwrap();
    show(&out, &mut shown);
    println!();
    out
}

fn median_of(runs: &[serde_json::Value], key: &str) -> u64 {
    let mut v: Vec<u64> = runs.iter().filter_map(|r| r[key].as_u64()).collect();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// `runs` processes of `bench phases <mode>` per mode, taking turns.
fn phase_breakdown(runs: usize, table: &str) -> Vec<Vec<serde_json::Value>> {
    let exe = std::env::current_exe().expect("own path");
    let mut results = vec![Vec::new(); phases::MODES.len()];
    for _ in 0..runs {
        for (i, mode) in phases::MODES.iter().enumerate() {
            let output = Command::new(&exe)
                .args(["phases", mode])
                .env_clear()
                .envs(init::lambda_env("phases", table, None))
                .stdin(Stdio::null())
                .output()
                .expect("the phases probe runs");
            let stdout = String::from_utf8_lossy(&output.stdout);
            let line = stdout.lines().last().unwrap_or_default();
            match serde_json::from_str(line) {
                Ok(v) if output.status.success() => results[i].push(v),
                _ => panic!(
                    "phases {mode} failed: {}{}",
                    stdout,
                    String::from_utf8_lossy(&output.stderr)
                ),
            }
        }
    }
    results
}

/// The code key as an SSM SecureString in the SSM emulator, for the cold
/// start that reads it at init as production does.
async fn put_code_key_parameter() -> String {
    let name = format!("/contact-migration/bench/{}", uuid::Uuid::new_v4().simple());
    let aws = end_to_end::local_config().await;
    let endpoint =
        std::env::var("AWS_ENDPOINT_URL_SSM").unwrap_or_else(|_| "http://127.0.0.1:8006".into());
    aws_sdk_ssm::Client::from_conf(
        aws_sdk_ssm::config::Builder::from(&aws)
            .endpoint_url(endpoint)
            .build(),
    )
    .put_parameter()
    .name(&name)
    .value(String::from_utf8_lossy(end_to_end::TEST_SECRET))
    .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
    .send()
    .await
    .expect("the SSM emulator is reachable");
    name
}

fn machine(out: &mut String) {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let memory = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .map(|v| {
            v.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .unwrap_or(0.0)
        })
        .map(|kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0))
        .unwrap_or_default();
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let rustc = Command::new("rustc")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let load = read("/proc/loadavg");
    writeln!(out, "### Machine\n").unwrap();
    writeln!(
        out,
        "- {}; {nproc} CPUs ({cpu}), {memory} memory; Linux {}; {rustc}",
        contact_migration::domain::rfc3339(end_to_end::unix_now()),
        read("/proc/sys/kernel/osrelease").trim()
    )
    .unwrap();
    writeln!(
        out,
        "- load average at start: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
    .unwrap();
}

/// Section 2: the DynamoDB requests of each step, next to their floors;
/// returned for the cost (section 7).
async fn request_figures(
    out: &mut String,
    stack: &end_to_end::Stack,
) -> (Vec<requests::Row>, requests::Relayed) {
    eprintln!("[bench] DynamoDB requests per step");
    let (rows, relayed) = requests::measure(stack).await;
    writeln!(out, "\n### 2. DynamoDB requests\n").unwrap();
    writeln!(
        out,
        "Counted by an interceptor on the store's client (every request sent, retries included) \
         while the handler serves each step once; *RRU* and *WRU*: the read and write request \
         units the requests report consuming (`ReturnConsumedCapacity`), transactional writes \
         doubled as DynamoDB bills them (DynamoDB Local reports them undoubled). *Floor*: the \
         fewest requests the data model allows for the same guarantees, and what those requests \
         are.\n"
    )
    .unwrap();
    writeln!(
        out,
        "| step | requests | RRU | WRU | by operation | floor | the floor's requests |"
    )
    .unwrap();
    writeln!(out, "|---|---:|---:|---:|---|---:|---|").unwrap();
    for row in &rows {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.label,
            row.counts.total(),
            row.counts.read_units,
            row.counts.write_units,
            row.counts.breakdown(),
            row.floor.0,
            row.floor.1
        )
        .unwrap();
    }
    writeln!(
        out,
        "\nThe relay, delivering the completed migration's outbox ({} notices by email, {} by \
         SMS, {} events): {} requests ({}), {} RRU, {} WRU.",
        relayed.emails,
        relayed.sms,
        relayed.events,
        relayed.counts.total(),
        relayed.counts.breakdown(),
        relayed.counts.read_units,
        relayed.counts.write_units
    )
    .unwrap();
    (rows, relayed)
}

/// The request counts alone (section 2), printed.
async fn requests_only() {
    let stack = end_to_end::Stack::new().await;
    let mut out = String::new();
    request_figures(&mut out, &stack).await;
    print!("{out}");
}

async fn relay_only() {
    let stack = end_to_end::Stack::new().await;
    let (trapping, inbox) = warm::trapping_stack(&stack).await;
    let (mut out, mut shown) = (String::new(), 0);
    relay_figures(&mut out, &trapping, &inbox, &mut shown).await;
}

/// Batch sizes of the relay's drain runs.
const RELAY_BATCHES: [i32; 3] = [1, 10, 100];
/// Migrations committed before each drain run.
const RELAY_BACKLOG: usize = 50;
/// Migrations whose commit-to-queue time is measured.
const RELAY_LATENCY_SAMPLES: usize = 20;
/// How often the background relay polls the stream (the Lambda event
/// source mapping polls each shard about four times a second).
const RELAY_POLL_EVERY: Duration = Duration::from_millis(250);

async fn relay_figures(
    out: &mut String,
    stack: &end_to_end::Stack,
    inbox: &flow::Inbox,
    shown: &mut usize,
) {
    writeln!(out, "\n### 6. The relay (outbox to notices and events)\n").unwrap();
    writeln!(
        out,
        "A backlog of {RELAY_BACKLOG} committed migrations (two events and two notices each) \
         drained by the relay's handler through the local stream poller, per batch size; then \
         {RELAY_LATENCY_SAMPLES} migrations one at a time with a relay polling every {} ms, \
         from the close's answer to its event on the SQS queue.\n",
        RELAY_POLL_EVERY.as_millis()
    )
    .unwrap();
    writeln!(out, "| batch size | events | seconds | events/s |").unwrap();
    writeln!(out, "|---:|---:|---:|---:|").unwrap();
    for batch in RELAY_BATCHES {
        eprintln!("[bench] relay: drain at batch size {batch}");
        let d = relay::drain_backlog(stack, inbox, batch, RELAY_BACKLOG).await;
        writeln!(
            out,
            "| {} | {} | {:.2} | {:.0} |",
            d.batch,
            d.events,
            d.elapsed.as_secs_f64(),
            d.per_second()
        )
        .unwrap();
        show(out, shown);
    }
    eprintln!("[bench] relay: commit to queue");
    let l = relay::commit_to_queue(stack, inbox, RELAY_LATENCY_SAMPLES, RELAY_POLL_EVERY).await;
    writeln!(
        out,
        "\nCommit to queue: p50 {} ms, p99 {} ms, max {} ms.",
        ms(percentile(&l, 50.0)),
        ms(percentile(&l, 99.0)),
        ms(*l.last().unwrap())
    )
    .unwrap();
    show(out, shown);
}
