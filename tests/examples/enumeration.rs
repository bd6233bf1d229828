//! Enumeration benchmark: does starting a migration reveal whether the new
//! contact belongs to another account? Runs interleaved starts for bound and
//! free contacts against the local stack and compares status, body shape and
//! the latency distributions (percentiles and a two-sample Kolmogorov-Smirnov
//! test). Run with the emulators up (`make emulators-start`, `source
//! infra/local/env.sh`):
//!
//!     cargo run -q -p end-to-end --example enumeration -- [rounds]

use contact_migration::domain::{Channel, Policy};
use end_to_end::{unique_contact, unix_now, Stack};
use std::time::Instant;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// The KS statistic D and its asymptotic p-value.
fn kolmogorov_smirnov(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        if a[i] <= b[j] {
            i += 1;
        } else {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    let n = (a.len() * b.len()) as f64 / (a.len() + b.len()) as f64;
    let lambda = (n.sqrt() + 0.12 + 0.11 / n.sqrt()) * d;
    let p: f64 = (1..100)
        .map(|k| {
            let k = k as f64;
            2.0 * (-1f64).powf(k - 1.0) * (-2.0 * k * k * lambda * lambda).exp()
        })
        .sum();
    (d, p.clamp(0.0, 1.0))
}

fn shape(body: &serde_json::Value) -> Vec<String> {
    let mut keys: Vec<String> = body
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    // Quotas would stop a real account long before; the benchmark measures
    // the work of start itself, so they are lifted.
    let mut policy = Policy::default();
    policy.starts_per_account.limit = u32::MAX;
    policy.sends_per_contact_per_requester.limit = u32::MAX;
    policy.sends_per_contact.limit = u32::MAX;
    let stack = Stack::with_policy(policy).await;
    let now = unix_now();

    for channel in [Channel::Email, Channel::Phone] {
        let main = stack.main_account(channel).await;
        let mut latencies = [Vec::new(), Vec::new()];
        let mut statuses = [Vec::new(), Vec::new()];
        let mut shapes = [Vec::new(), Vec::new()];
        // Warm up connections and caches on both paths.
        for _ in 0..10 {
            let duplicate = stack.duplicate_account(channel, false).await;
            stack.start(&main, duplicate.contact(channel), now).await;
            stack
                .start(&main, &unique_contact(channel, "warm"), now)
                .await;
        }
        for round in 0..rounds {
            let duplicate = stack.duplicate_account(channel, false).await;
            let bound = duplicate.contact(channel).to_owned();
            let free = unique_contact(channel, "free");
            // Alternate which goes first, so drift affects both equally.
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for arm in order {
                let contact = if arm == 0 { &bound } else { &free };
                let began = Instant::now();
                let answer = stack.start(&main, contact, now).await;
                latencies[arm].push(began.elapsed().as_secs_f64() * 1000.0);
                statuses[arm].push(answer.status);
                shapes[arm].push(shape(&answer.body));
            }
        }
        for l in &mut latencies {
            l.sort_by(|a, b| a.total_cmp(b));
        }
        let (d, p) = kolmogorov_smirnov(&latencies[0], &latencies[1]);
        println!("channel {channel}: {rounds} starts per arm, in-process handler against the local stack");
        println!("  arm    status      body keys                                   p50 ms  p90 ms  p99 ms  mean ms");
        for (arm, name) in ["bound", "free"].iter().enumerate() {
            let mut distinct_status = statuses[arm].clone();
            distinct_status.dedup();
            let mean = latencies[arm].iter().sum::<f64>() / latencies[arm].len() as f64;
            println!(
                "  {name:<6} {:<11} {:<43} {:>6.2}  {:>6.2}  {:>6.2}  {:>7.2}",
                format!("{distinct_status:?}"),
                format!(
                    "{} keys, all equal: {}",
                    shapes[arm][0].len(),
                    shapes[arm].iter().all(|s| *s == shapes[arm][0])
                ),
                percentile(&latencies[arm], 0.5),
                percentile(&latencies[arm], 0.9),
                percentile(&latencies[arm], 0.99),
                mean
            );
        }
        println!(
            "  same status: {}, same body shape: {}, KS D = {d:.3}, p = {p:.3} ({})",
            statuses[0] == statuses[1],
            shapes[0] == shapes[1],
            if p > 0.05 {
                "no detectable difference at 5%"
            } else {
                "DIFFERENT at 5%"
            }
        );
    }
}
