//! Exact duplicates: an example's key is a hash of its normalised user input
//! and target (Unicode NFC, whitespace runs collapsed to one space, trimmed,
//! case kept), so text that differs only in how it is encoded or spaced is one.

use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

/// The key of an example made of these (user input, target) exchanges.
pub type DedupKey = [u8; 32];

/// Hashes exchanges in order; each text is normalised and ended by a byte no
/// UTF-8 text holds, so `("ab", "c")` and `("a", "bc")` differ.
#[derive(Default)]
pub struct KeyBuilder(Sha256);

impl KeyBuilder {
    pub fn exchange(&mut self, user_input: &str, target: &str) {
        for text in [user_input, target] {
            self.0.update(normalised(text).as_bytes());
            self.0.update([0xFF]);
        }
    }

    pub fn finish(self) -> DedupKey {
        self.0.finalize().into()
    }
}

/// The key of one pair.
pub fn pair_key(user_input: &str, target: &str) -> DedupKey {
    let mut key = KeyBuilder::default();
    key.exchange(user_input, target);
    key.finish()
}

/// `text` in NFC with each whitespace run one space and none at either end.
fn normalised(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.nfc().collect::<String>().split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> String {
        normalised(s)
    }

    #[test]
    fn normalising_composes_collapses_whitespace_and_keeps_case() {
        assert_eq!(text("  Caf\u{0065}\u{0301}\t\n au  lait "), "Caf\u{e9} au lait");
        assert_eq!(text("Hello"), "Hello");
        assert_ne!(text("Hello"), text("hello"));
    }

    #[test]
    fn keys_match_across_encodings_and_spacing_only() {
        assert_eq!(pair_key("Caf\u{e9}  time", "Yes\n"), pair_key(" Cafe\u{301} time", "Yes"));
        assert_ne!(pair_key("ab", "c"), pair_key("a", "bc"));
        assert_ne!(pair_key("Hi", "yes"), pair_key("hi", "yes"));
    }
}
