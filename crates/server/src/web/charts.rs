//! Horizontal bar charts as inline SVG, drawn on the server: no script, no
//! styles the CSP would refuse, readable by screen readers through a table.

use maud::{html, Markup};

/// One bar: its label and its count.
pub struct Bar {
    pub label: String,
    pub value: i64,
}

const ROW: i64 = 22;
const LABEL: i64 = 150;
const WIDTH: i64 = 340;

/// A chart titled `title`; the bars in the order given.
pub fn bars(title: &str, bars: &[Bar]) -> Markup {
    let max = bars.iter().map(|b| b.value).max().unwrap_or(0).max(1);
    let height = ROW * bars.len().max(1) as i64 + 4;
    let span = WIDTH - LABEL - 40;
    html! {
        figure.chart {
            h3 { (title) }
            @if bars.is_empty() {
                p.muted { "Nothing to show." }
            } @else {
                svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {WIDTH} {height}")) role="img" aria-label=(summary(title, bars)) {
                    @for (i, bar) in bars.iter().enumerate() {
                        @let y = i as i64 * ROW + 2;
                        @let w = (bar.value * span / max).max(if bar.value > 0 { 2 } else { 0 });
                        text x=(LABEL - 6) y=(y + 15) text-anchor="end" { (shorten(&bar.label)) }
                        rect.bar x=(LABEL) y=(y + 3) width=(w) height=(ROW - 6) rx="2" {}
                        text x=(LABEL + w + 5) y=(y + 15) { (bar.value) }
                    }
                }
            }
        }
    }
}

/// What the chart shows, for those who cannot see it.
fn summary(title: &str, bars: &[Bar]) -> String {
    let parts: Vec<String> = bars
        .iter()
        .map(|b| format!("{}: {}", b.label, b.value))
        .collect();
    format!("{title}. {}", parts.join(", "))
}

fn shorten(label: &str) -> String {
    if label.chars().count() <= 26 {
        return label.to_owned();
    }
    let mut short: String = label.chars().take(25).collect();
    short.push('…');
    short
}

/// Scores in half-open buckets of one point (`0–1`, …, `4–5`).
pub fn quality_spread(scores: impl Iterator<Item = f64>) -> Vec<Bar> {
    let mut counts = [0i64; 5];
    for score in scores {
        let bucket = (score.floor() as i64).clamp(0, 4) as usize;
        counts[bucket] += 1;
    }
    counts
        .iter()
        .enumerate()
        .map(|(i, &value)| Bar {
            label: format!("{i}–{}", i + 1),
            value,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_fall_into_one_point_buckets() {
        let bars = quality_spread([0.5, 3.0, 3.99, 5.0, 4.2].into_iter());
        let counts: Vec<i64> = bars.iter().map(|b| b.value).collect();
        assert_eq!(counts, [1, 0, 0, 2, 2]);
    }

    #[test]
    fn a_chart_names_every_bar_for_screen_readers() {
        let chart = bars(
            "Personas",
            &[Bar {
                label: "a & b".into(),
                value: 3,
            }],
        )
        .into_string();
        assert!(
            chart.contains("aria-label=\"Personas. a &amp; b: 3\""),
            "{chart}"
        );
    }
}
