//! The keyboard alone: key presses go to whatever has focus, as a person
//! typing would send them (WebDriver actions, never a click).

use fantoccini::actions::{InputSource, KeyAction, KeyActions};

use super::Page;

pub const TAB: char = '\u{E004}';
pub const ENTER: char = '\u{E007}';
pub const SPACE: char = ' ';

impl Page {
    /// Presses each key of `keys` in turn.
    pub async fn press(&self, keys: &str) {
        let mut actions = KeyActions::new("keyboard".into());
        for key in keys.chars() {
            actions = actions
                .then(KeyAction::Down { value: key })
                .then(KeyAction::Up { value: key });
        }
        self.client
            .perform_actions(actions)
            .await
            .expect("key presses");
    }

    /// The name of what has focus: its label, else its text.
    pub async fn focused_name(&self) -> String {
        let script = "const e = document.activeElement; \
            const label = e.labels && e.labels.length ? e.labels[0].textContent : ''; \
            return (label || e.textContent || '').replace(/\\s+/g, ' ').trim();";
        let value = self.client.execute(script, vec![]).await.expect("script");
        value.as_str().unwrap_or_default().to_owned()
    }

    /// Presses Tab until what has focus is named starting with `name`.
    pub async fn tab_to(&self, name: &str) {
        for _ in 0..40 {
            if self.focused_name().await.starts_with(name) {
                return;
            }
            self.press(&TAB.to_string()).await;
        }
        panic!(
            "Tab never reached {name:?}; the page says:\n{}",
            self.text().await
        );
    }
}
