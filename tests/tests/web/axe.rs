//! The accessibility scan: axe-core (infra/local/node_modules, installed by
//! setup.sh's `npm ci`) injected into the page through WebDriver, which is
//! not subject to the page's Content-Security-Policy. A serious or critical
//! violation fails the test.

use std::sync::OnceLock;

use serde_json::Value;

use super::{workspace_root, Page};

fn axe_source() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let path = workspace_root().join("infra/local/node_modules/axe-core/axe.min.js");
        std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{} is readable (infra/local/setup.sh installs it): {e}",
                path.display()
            )
        })
    })
}

const RUN: &str = r#"
const result = await axe.run(document, { resultTypes: ['violations'] });
return result.violations
  .filter((v) => v.impact === 'serious' || v.impact === 'critical')
  .map((v) => `${v.impact} ${v.id}: ${v.help} [${v.nodes.map((n) => n.target.join(' ')).join(', ')}]`);
"#;

impl Page {
    /// Scans what the page shows now (`screen` names it in the failure).
    pub async fn assert_accessible(&self, screen: &str) {
        let loaded = self
            .client
            .execute("return typeof window.axe === 'object';", vec![])
            .await
            .expect("script");
        if loaded != Value::Bool(true) {
            self.client
                .execute(axe_source(), vec![])
                .await
                .expect("axe-core loads");
        }
        let violations = self.client.execute(RUN, vec![]).await.expect("axe runs");
        let violations: Vec<&str> = violations
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            violations.is_empty(),
            "accessibility violations on the {screen} screen:\n{}",
            violations.join("\n")
        );
    }
}
