//! Screenshots for the README: each screen at a desktop width and at 360 px,
//! written to docs/screens/ when `SCREENSHOTS=1` (make screens); a normal
//! test run leaves the committed images alone. At 360 px the page must not
//! scroll sideways, whether or not images are written.

use super::{workspace_root, Page};

const DESKTOP: (u32, u32) = (1280, 900);
const NARROW: (u32, u32) = (360, 800);

impl Page {
    /// Checks the 360 px layout of the current screen and, with
    /// `SCREENSHOTS=1`, writes `docs/screens/<name>.png` and `<name>-360.png`.
    pub async fn screen(&self, name: &str) {
        let write = std::env::var("SCREENSHOTS").is_ok_and(|v| v == "1");
        let dir = workspace_root().join("docs/screens");
        if write {
            std::fs::create_dir_all(&dir).expect("docs/screens");
            self.capture(&dir.join(format!("{name}.png"))).await;
        }
        self.client
            .set_window_size(NARROW.0, NARROW.1)
            .await
            .expect("resize");
        let overflow = self
            .client
            .execute(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
                vec![],
            )
            .await
            .expect("script");
        if write {
            self.capture(&dir.join(format!("{name}-360.png"))).await;
        }
        self.client
            .set_window_size(DESKTOP.0, DESKTOP.1)
            .await
            .expect("resize");
        assert!(
            overflow.as_i64().unwrap_or(0) <= 0,
            "the {name} screen scrolls sideways at 360 px by {overflow}"
        );
    }

    async fn capture(&self, path: &std::path::Path) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(path, png).expect("write screenshot");
    }
}
