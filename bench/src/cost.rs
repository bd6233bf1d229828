//! What one million completed migrations cost on AWS, from what this run
//! measured: the DynamoDB request units of each step and of the relay, the
//! handlers' durations, the configured memory, and what is sent (emails,
//! events; SMS apart, since its price depends on the country).
//!
//! List prices of one region, us-east-1, on-demand, without free tiers.
//! Not counted: CloudWatch Logs and metrics, data transfer, the KMS keys'
//! and the DynamoDB table's monthly charges, storage (items expire), the
//! stream's reads by Lambda (free), SSM standard parameters (free), and
//! cold starts' init (a few milliseconds each, billed once per process).

use std::fmt::Write as _;

/// When the prices below were read off the AWS pricing pages.
pub const PRICES_AS_OF: &str = "2026-11-30";

/// USD.
pub struct Prices {
    /// Lambda on arm64: per request, and per GB-second.
    pub lambda_request: f64,
    pub lambda_gb_second: f64,
    /// API Gateway HTTP API, per request (the first 300 million a month).
    pub http_api_request: f64,
    /// DynamoDB on-demand, per write and per read request unit.
    pub write_unit: f64,
    pub read_unit: f64,
    /// EventBridge, per custom event published (64 KB chunks).
    pub event: f64,
    /// SES, per email sent.
    pub email: f64,
    /// KMS, per request (Decrypt of a TOTP secret).
    pub kms_request: f64,
    /// SNS SMS to the United States, per message part, before carrier fees.
    pub sms_us: f64,
}

pub const US_EAST_1: Prices = Prices {
    lambda_request: 0.20 / 1e6,
    lambda_gb_second: 0.000_013_333_4,
    http_api_request: 1.00 / 1e6,
    write_unit: 0.625 / 1e6,
    read_unit: 0.125 / 1e6,
    event: 1.00 / 1e6,
    email: 0.10 / 1e3,
    kms_request: 0.03 / 1e4,
    sms_us: 0.00581,
};

/// What one completed migration uses, as measured.
pub struct Usage {
    /// HTTP requests (start, verify, migrate, close).
    pub requests: u32,
    /// Billed Lambda milliseconds of those requests (each rounded up to the
    /// millisecond), and of the relay's delivery of the outbox.
    pub handler_ms: Vec<u64>,
    pub relay_ms: u64,
    /// The functions' memory size, MB.
    pub memory_mb: u32,
    pub read_units: f64,
    pub write_units: f64,
    pub events: usize,
    /// Emails: the two codes of an email migration and the notices by email.
    pub emails: usize,
    /// KMS requests (the TOTP secret opened at verification).
    pub kms_requests: usize,
    /// Messages of a phone migration sent by SMS instead (codes and notices).
    pub sms: usize,
}

/// One line of the cost table: what, how many per migration, USD per million.
pub struct Line {
    pub item: String,
    pub per_migration: String,
    pub per_million: f64,
}

/// USD per million migrations of `ms` Lambda milliseconds each at `memory_mb`.
pub fn duration_per_million(ms: f64, memory_mb: u32, p: &Prices) -> f64 {
    ms / 1000.0 * f64::from(memory_mb) / 1024.0 * p.lambda_gb_second * 1e6
}

pub fn lines(u: &Usage, p: &Prices) -> Vec<Line> {
    let million = 1e6;
    let invocations = u.requests + 1;
    let ms: u64 = u.handler_ms.iter().sum::<u64>() + u.relay_ms;
    vec![
        Line {
            item: "API Gateway HTTP API requests".into(),
            per_migration: u.requests.to_string(),
            per_million: f64::from(u.requests) * p.http_api_request * million,
        },
        Line {
            item: "Lambda requests (the steps and one relay invocation)".into(),
            per_migration: invocations.to_string(),
            per_million: f64::from(invocations) * p.lambda_request * million,
        },
        Line {
            item: format!("Lambda duration, arm64 at {} MB", u.memory_mb),
            per_migration: format!("{ms} ms"),
            per_million: duration_per_million(ms as f64, u.memory_mb, p),
        },
        Line {
            item: "DynamoDB write request units (transactional ones doubled)".into(),
            per_migration: format!("{}", u.write_units),
            per_million: u.write_units * p.write_unit * million,
        },
        Line {
            item: "DynamoDB read request units".into(),
            per_migration: format!("{}", u.read_units),
            per_million: u.read_units * p.read_unit * million,
        },
        Line {
            item: "EventBridge events".into(),
            per_migration: u.events.to_string(),
            per_million: u.events as f64 * p.event * million,
        },
        Line {
            item: "SES emails (codes and notices of an email migration)".into(),
            per_migration: u.emails.to_string(),
            per_million: u.emails as f64 * p.email * million,
        },
        Line {
            item: "KMS requests (TOTP secret opened)".into(),
            per_migration: u.kms_requests.to_string(),
            per_million: u.kms_requests as f64 * p.kms_request * million,
        },
    ]
}

/// The cost table in Markdown, the total, and SMS apart.
pub fn table(u: &Usage, p: &Prices) -> String {
    let lines = lines(u, p);
    let total: f64 = lines.iter().map(|l| l.per_million).sum();
    let mut out = String::new();
    writeln!(out, "| item | per migration | USD per million migrations |").unwrap();
    writeln!(out, "|---|---:|---:|").unwrap();
    for l in &lines {
        writeln!(
            out,
            "| {} | {} | {:.2} |",
            l.item, l.per_migration, l.per_million
        )
        .unwrap();
    }
    writeln!(out, "| **total** | | **{total:.2}** |").unwrap();
    writeln!(
        out,
        "\nA phone migration sends {} SMS instead of emails: at the United States' \
         ${} a message part before carrier fees, another {:.2} USD per million migrations \
         (other countries cost from a fraction of that to over ten times it).",
        u.sms,
        p.sms_us,
        u.sms as f64 * p.sms_us * 1e6
    )
    .unwrap();
    out
}

/// The functions' `MemorySize` in `template.yaml` (the Globals' value).
pub fn template_memory_mb(template: &str) -> Option<u32> {
    template
        .lines()
        .find_map(|line| line.trim().strip_prefix("MemorySize:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage() -> Usage {
        Usage {
            requests: 4,
            handler_ms: vec![10, 20, 5, 15],
            relay_ms: 50,
            memory_mb: 256,
            read_units: 10.0,
            write_units: 20.0,
            events: 2,
            emails: 4,
            kms_requests: 1,
            sms: 4,
        }
    }

    #[test]
    fn each_line_is_its_usage_at_its_price() {
        let lines = lines(&usage(), &US_EAST_1);
        let per_million = |item: &str| {
            lines
                .iter()
                .find(|l| l.item.starts_with(item))
                .unwrap()
                .per_million
        };
        assert!((per_million("API Gateway") - 4.0).abs() < 1e-9);
        assert!((per_million("DynamoDB write") - 12.5).abs() < 1e-9);
        assert!((per_million("DynamoDB read") - 1.25).abs() < 1e-9);
        assert!((per_million("SES") - 400.0).abs() < 1e-9);
        // 100 ms at a quarter GB: 0.025 GB-s a migration.
        let duration = 0.025 * US_EAST_1.lambda_gb_second * 1e6;
        assert!((per_million("Lambda duration") - duration).abs() < 1e-9);
    }

    #[test]
    fn the_memory_size_is_read_from_the_template() {
        let template = "Globals:\n  Function:\n    MemorySize: 256\n    Timeout: 10\n";
        assert_eq!(template_memory_mb(template), Some(256));
        assert_eq!(template_memory_mb("Globals: {}"), None);
    }
}
