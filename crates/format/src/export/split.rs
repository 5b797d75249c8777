//! Splits by conversation: a conversation's lines all go to one file, so a
//! validation split never holds text its training split was trained on.

use std::collections::HashSet;

use sha2::{Digest, Sha256};

/// `--split validation=0.1 --seed 42`.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// Names the held-out file: `NAME.<name>.jsonl`.
    pub name: String,
    /// The share of conversations held out, in (0, 1).
    pub fraction: f64,
    pub seed: u64,
}

impl Split {
    /// `NAME=FRACTION`, e.g. `validation=0.1`.
    pub fn parse(text: &str, seed: u64) -> Result<Self, String> {
        let (name, fraction) = text.split_once('=').ok_or_else(|| format!("--split {text:?}: expected NAME=FRACTION, e.g. validation=0.1"))?;
        let name = name.trim();
        if name.is_empty() || name == "train" || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(format!("--split {text:?}: the split's name must be letters, digits, '-' or '_', and not \"train\""));
        }
        let fraction: f64 = fraction.trim().parse().map_err(|_| format!("--split {text:?}: {fraction:?} is not a number"))?;
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(format!("--split {text:?}: the fraction must be between 0 and 1 (exclusive)"));
        }
        Ok(Self { name: name.to_owned(), fraction, seed })
    }

    /// How many of `n` conversations are held out: the nearest whole number
    /// to the fraction, but at least one and not all when there are two or more.
    pub fn held_out_count(&self, n: usize) -> usize {
        let wanted = (self.fraction * n as f64).round() as usize;
        if n < 2 { 0 } else { wanted.clamp(1, n - 1) }
    }

    /// The conversations held out: those whose hash with the seed is
    /// smallest. The same ids and seed always give the same split, whatever
    /// their order.
    pub fn held_out<'i>(&self, ids: impl Iterator<Item = &'i str>) -> HashSet<&'i str> {
        let mut ranked: Vec<([u8; 32], &str)> = ids
            .map(|id| {
                let mut hash = Sha256::new();
                hash.update(self.seed.to_le_bytes());
                hash.update(id.as_bytes());
                (hash.finalize().into(), id)
            })
            .collect();
        ranked.sort_unstable();
        let count = self.held_out_count(ranked.len());
        ranked.into_iter().take(count).map(|(_, id)| id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("conversation-{i}")).collect()
    }

    #[test]
    fn sizes_stay_within_one_conversation_of_the_fraction() {
        for n in [2, 3, 7, 10, 99, 1000] {
            for fraction in [0.01, 0.1, 0.25, 0.5, 0.9] {
                let split = Split { name: "validation".into(), fraction, seed: 42 };
                let ids = ids(n);
                let held = split.held_out(ids.iter().map(String::as_str));
                assert!((held.len() as f64 - fraction * n as f64).abs() < 1.0, "n={n} fraction={fraction}: {}", held.len());
                assert!(!held.is_empty() && held.len() < n);
            }
        }
    }

    #[test]
    fn the_seed_decides_and_input_order_does_not() {
        let ids = ids(200);
        let split = |seed| Split { name: "validation".into(), fraction: 0.1, seed };
        let forward = split(42).held_out(ids.iter().map(String::as_str));
        let backward = split(42).held_out(ids.iter().rev().map(String::as_str));
        assert_eq!(forward, backward);
        assert_ne!(forward, split(7).held_out(ids.iter().map(String::as_str)));
    }

    #[test]
    fn parsing_names_what_is_wrong() {
        assert_eq!(Split::parse("validation=0.1", 42).unwrap(), Split { name: "validation".into(), fraction: 0.1, seed: 42 });
        assert!(Split::parse("validation", 1).unwrap_err().contains("NAME=FRACTION"));
        assert!(Split::parse("train=0.1", 1).is_err());
        assert!(Split::parse("validation=1.5", 1).unwrap_err().contains("between 0 and 1"));
        assert!(Split::parse("validation=x", 1).unwrap_err().contains("not a number"));
    }
}
