//! What every page shares: the frame (header, stylesheet, script), and the
//! small formatters that make figures readable (sizes, dates, plurals, short ids).

use axum::response::Html;
use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

/// The stylesheet, served as `/static/app.css` so the CSP can forbid inline styles.
pub const STYLE: &str = include_str!("app.css");
/// A little progressive enhancement (live selection count); every action works without it.
pub const SCRIPT: &str = include_str!("app.js");

/// Whether the header shows the signed-in navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    SignedOut,
    Files,
    Conversations,
    Other,
}

/// A message shown above a page's content: what just happened, or what went wrong.
pub enum Notice {
    Success(String),
    Error(Markup),
}

pub fn page(title: &str, nav: Nav, notice: Option<Notice>, body: Markup) -> Html<String> {
    let current = |which: Nav| if nav == which { Some("page") } else { None };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · lora-files" }
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "lora-files" }
                    @if nav != Nav::SignedOut {
                        nav aria-label="Main" {
                            a href="/conversations" aria-current=[current(Nav::Conversations)] { "Conversations" }
                            a href="/training-files" aria-current=[current(Nav::Files)] { "Training files" }
                            a href="/api/docs" { "API" }
                        }
                        form.signout method="post" action="/logout" { button.link { "Sign out" } }
                    }
                }
                main {
                    h1 { (title) }
                    @match notice {
                        Some(Notice::Success(message)) => { p.notice.success role="status" { (message) } }
                        Some(Notice::Error(markup)) => { div.notice.failure role="alert" { (markup) } }
                        None => {}
                    }
                    (body)
                }
            }
        }
    };
    Html(markup.into_string())
}

/// "1 conversation", "3 conversations".
pub fn plural(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// 512 B, 1.5 KB, 12.3 MB (powers of 1024, one decimal).
pub fn human_size(bytes: i64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// How long ago `then` was, in words ("just now", "5 minutes ago", "3 days ago").
pub fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - then).num_seconds();
    let (n, unit) = match seconds {
        s if s < 45 => return "just now".to_owned(),
        s if s < 3600 => ((s + 30) / 60, "minute"),
        s if s < 86_400 => ((s + 1800) / 3600, "hour"),
        s if s < 30 * 86_400 => ((s + 43_200) / 86_400, "day"),
        s if s < 365 * 86_400 => (s / (30 * 86_400), "month"),
        s => (s / (365 * 86_400), "year"),
    };
    format!("{} ago", plural(n.max(1), unit, &format!("{unit}s")))
}

/// A catalogue timestamp as "3 days ago", with the exact time on hover and for machines.
pub fn when(timestamp: &str) -> Markup {
    match DateTime::parse_from_rfc3339(timestamp) {
        Ok(time) => {
            let time = time.with_timezone(&Utc);
            let exact = time.format("%Y-%m-%d %H:%M UTC").to_string();
            html! { time datetime=(timestamp) title=(exact) { (ago(time, Utc::now())) } }
        }
        Err(_) => html! { (timestamp) },
    }
}

/// Relative and absolute: "3 days ago (2026-11-27 14:02 UTC)".
pub fn when_full(timestamp: &str) -> Markup {
    match DateTime::parse_from_rfc3339(timestamp) {
        Ok(time) => {
            let time = time.with_timezone(&Utc);
            html! { time datetime=(timestamp) { (ago(time, Utc::now())) } " " span.muted { "(" (time.format("%Y-%m-%d %H:%M UTC")) ")" } }
        }
        Err(_) => html! { (timestamp) },
    }
}

/// The first 8 characters of an id, the whole id on hover and when copied.
pub fn short_id(id: &str) -> Markup {
    let short = id.get(..8).unwrap_or(id);
    html! { code.id title=(id) data-id=(id) { (short) } }
}

pub fn score(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}"))
}

pub fn or_dash(value: Option<&str>) -> &str {
    value.filter(|v| !v.is_empty()).unwrap_or("–")
}

/// An enrichment status in words.
pub fn status_words(status: &str) -> &str {
    match status {
        "not_started" => "not enriched yet",
        "enrichment_in_progress" => "being enriched",
        "validation_failed" => "failed validation",
        "normalization_failed" => "failed normalisation",
        "validated" => "validated",
        "completed" => "enriched",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KB");
        assert_eq!(human_size(5 * 1024 * 1024), "5.0 MB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024), "3.0 GB");
    }

    #[test]
    fn ages_are_rounded_to_one_unit() {
        let now = Utc::now();
        assert_eq!(ago(now, now), "just now");
        assert_eq!(
            ago(now - chrono::TimeDelta::minutes(1), now),
            "1 minute ago"
        );
        assert_eq!(ago(now - chrono::TimeDelta::hours(5), now), "5 hours ago");
        assert_eq!(ago(now - chrono::TimeDelta::days(3), now), "3 days ago");
    }

    #[test]
    fn plurals_agree_with_their_number() {
        assert_eq!(plural(1, "conversation", "conversations"), "1 conversation");
        assert_eq!(
            plural(0, "conversation", "conversations"),
            "0 conversations"
        );
    }
}
