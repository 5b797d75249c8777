//! One module per subcommand; each has `Args` (or a subcommand enum) and `run`.

pub mod bench;
pub mod build;
pub mod validate;

use chrono::{DateTime, Utc};

/// Now, or `SOURCE_DATE_EPOCH` when set, so builds can be reproduced byte for byte.
pub fn clock() -> anyhow::Result<DateTime<Utc>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(seconds) => {
            let seconds: i64 = seconds.trim().parse().map_err(|_| anyhow::anyhow!("SOURCE_DATE_EPOCH must be whole seconds, found {seconds:?}"))?;
            DateTime::from_timestamp(seconds, 0).ok_or_else(|| anyhow::anyhow!("SOURCE_DATE_EPOCH {seconds} is out of range"))
        }
        Err(_) => Ok(Utc::now()),
    }
}

/// `1234567` → `1.2 MB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// `Some(3.25)` → `3.25`, `None` → `n/a`.
pub fn figure(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}"))
}
