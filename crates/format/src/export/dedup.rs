//! Exact duplicates: an example's key is a hash of its normalised user input
//! and target (Unicode NFC, whitespace runs collapsed to one space, trimmed,
//! case kept), so text that differs only in how it is encoded or spaced is one.

use std::borrow::Cow;

use sha2::{Digest, Sha256};
use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

/// The key of an example made of these (user input, target) exchanges.
pub type DedupKey = [u8; 32];

/// Hashes exchanges in order; each text is normalised and ended by a byte no
/// UTF-8 text holds, so `("ab", "c")` and `("a", "bc")` differ.
#[derive(Default)]
pub struct KeyBuilder(Sha256);

impl KeyBuilder {
    pub fn exchange(&mut self, user_input: &str, target: &str) {
        for text in [user_input, target] {
            hash_normalised(&mut self.0, text);
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

/// Feeds `hasher` the bytes of [`normalised`]`(text)` without building it:
/// text already in NFC (nearly all: every ASCII text is) is not composed
/// again, and the text between whitespace runs goes in a stretch at a time.
fn hash_normalised(hasher: &mut Sha256, text: &str) {
    // The quick check starts afresh at every ASCII character, so it may start
    // at the first character that is not one.
    let first_non_ascii = if text.is_ascii() { None } else { text.bytes().position(|b| !b.is_ascii()) };
    let nfc = match first_non_ascii {
        Some(at) if is_nfc_quick(text[at..].chars()) != IsNormalized::Yes => Cow::Owned(text.nfc().collect::<String>()),
        _ => Cow::Borrowed(text),
    };
    // `split_whitespace` and `trim` split on the same characters.
    let text = nfc.trim();
    let bytes = text.as_bytes();
    let (mut from, mut i) = (0, 0);
    while i < bytes.len() {
        let byte = bytes[i];
        let is_word_byte = |b: u8| b > b' ' && b.is_ascii();
        // Neither a space, an ASCII control nor the start of a longer character: part of a word.
        if is_word_byte(byte) {
            i += 1;
            continue;
        }
        // One space between words (the text is trimmed, so a word follows it or a longer character does).
        if byte == b' ' && bytes.get(i + 1).copied().is_some_and(is_word_byte) {
            i += 2;
            continue;
        }
        let run_start = i;
        let mut run_end = i;
        while let Some(ch) = text[run_end..].chars().next().filter(|c| c.is_whitespace()) {
            run_end += ch.len_utf8();
        }
        if run_end == run_start {
            // A character of more than one byte that is not whitespace.
            i += text[i..].chars().next().map_or(1, char::len_utf8);
            continue;
        }
        // A single space already is what the run becomes; any other run is replaced by one.
        if !(run_end == run_start + 1 && byte == b' ') {
            hasher.update(&bytes[from..run_start]);
            hasher.update(b" ");
            from = run_end;
        }
        i = run_end;
    }
    hasher.update(&bytes[from..]);
}

/// `text` in NFC with each whitespace run one space and none at either end.
#[cfg(test)]
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

    fn hashed(text: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hash_normalised(&mut hasher, text);
        hasher.finalize().into()
    }

    fn hashed_text(text: &str) -> [u8; 32] {
        Sha256::digest(normalised(text).as_bytes()).into()
    }

    #[test]
    fn hashing_without_building_the_text_hashes_the_normalised_text() {
        for text in ["", " ", "a", "  a  b\tc\n\n d ", "Caf\u{0065}\u{0301}\u{3000}x", "\u{00a0}é\u{2028}", "a  b c   d e", "ﬁ Å Å"] {
            assert_eq!(hashed(text), hashed_text(text), "{text:?}");
        }
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/enriched");
        let mut texts = 0;
        for entry in std::fs::read_dir(fixtures).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for line in text.lines() {
                assert_eq!(hashed(line), hashed_text(line), "{line:?}");
                texts += 1;
            }
        }
        assert!(texts > 100);
    }

    proptest::proptest! {
        #[test]
        fn hashing_matches_the_normalised_text_for_any_text(text in "(\\PC|\\s|\u{0301}|\u{0300}| ){0,40}") {
            proptest::prop_assert_eq!(hashed(&text), hashed_text(&text));
        }
    }

    #[test]
    fn keys_match_across_encodings_and_spacing_only() {
        assert_eq!(pair_key("Caf\u{e9}  time", "Yes\n"), pair_key(" Cafe\u{301} time", "Yes"));
        assert_ne!(pair_key("ab", "c"), pair_key("a", "bc"));
        assert_ne!(pair_key("Hi", "yes"), pair_key("hi", "yes"));
    }
}
