//! Emotional valence from an emotion label.
//! The original matched substrings ("hopeless" counted as positive); the rule
//! here matches whole words and their common forms, negations first.

use std::borrow::Cow;

/// The valence the original system wrote: positive, then negative, word lists
/// matched as substrings of the lower-cased label. Kept to recognise its files.
pub fn original_rule(primary: &str) -> &'static str {
    const POSITIVE: [&str; 10] =
        ["hope", "relief", "excitement", "joy", "confidence", "gratitude", "pride", "determination", "calm", "optimism"];
    const NEGATIVE: [&str; 11] = [
        "shame", "fear", "anxiety", "guilt", "anger", "frustration", "overwhelm", "sadness", "embarrassment",
        "worry", "stress",
    ];
    // Labels are short and mostly lower-case already: no copy then, and a
    // plain window search (a `str` search prepares each of the 21 words first).
    let label = match primary.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
        true => Cow::Owned(primary.to_lowercase()),
        false => Cow::Borrowed(primary),
    };
    let holds = |word: &str| label.as_bytes().windows(word.len()).any(|window| window == word.as_bytes());
    if POSITIVE.iter().any(|w| holds(w)) {
        "positive"
    } else if NEGATIVE.iter().any(|w| holds(w)) {
        "negative"
    } else {
        "mixed"
    }
}

const POSITIVE_WORDS: &[&str] = &[
    "hope", "hopeful", "hopefulness", "relief", "relieved", "excitement", "excited", "joy", "joyful", "confidence",
    "confident", "gratitude", "grateful", "thankful", "pride", "proud", "determination", "determined", "calm",
    "calmer", "optimism", "optimistic", "empowerment", "empowered", "acceptance", "accepting", "reassurance",
    "reassured", "clarity", "peace", "peaceful", "encouraged", "motivated", "trust", "curiosity", "curious",
    "satisfaction", "satisfied", "content", "happy", "happiness", "enthusiasm", "enthusiastic",
];

const NEGATIVE_WORDS: &[&str] = &[
    "shame", "ashamed", "fear", "fearful", "afraid", "scared", "anxiety", "anxious", "guilt", "guilty", "anger",
    "angry", "frustration", "frustrated", "overwhelm", "overwhelmed", "sadness", "sad", "embarrassment",
    "embarrassed", "worry", "worried", "stress", "stressed", "hopeless", "hopelessness", "helpless",
    "helplessness", "despair", "panic", "confusion", "confused", "grief", "dread", "nervous", "insecure",
    "insecurity", "resentment", "regret", "defensive", "defensiveness", "disappointment", "disappointed",
    "apprehension", "apprehensive", "distress", "hurt", "loneliness", "lonely", "doubt", "vulnerable",
];

const NEGATIONS: &[&str] = &["not", "no", "never", "without", "lack", "lacking"];

/// The valence of an emotion label by whole words: "hopeless" is negative,
/// "not confident" is negative, "hopeful but anxious" is mixed, an unknown
/// label is mixed.
pub fn of_label(label: &str) -> &'static str {
    let lower = label.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let (mut positive, mut negative) = (false, false);
    for (i, word) in words.iter().enumerate() {
        let negated = i > 0 && NEGATIONS.contains(&words[i - 1]);
        if POSITIVE_WORDS.contains(word) {
            if negated { negative = true } else { positive = true }
        } else if NEGATIVE_WORDS.contains(word) && !negated {
            negative = true;
        }
    }
    match (positive, negative) {
        (true, false) => "positive",
        (false, true) => "negative",
        _ => "mixed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_rule_matches_substrings() {
        assert_eq!(original_rule("hopeless"), "positive");
        assert_eq!(original_rule("worried"), "mixed");
        assert_eq!(original_rule("fearful"), "negative");
        for label in ["reassurance", "empowerment", "acceptance"] {
            assert_eq!(original_rule(label), "mixed");
        }
        // Lower-cased first, as the original does, whatever the script.
        assert_eq!(original_rule("Cautious OPTIMISM"), "positive");
        assert_eq!(original_rule("ÉLAN of joy"), "positive");
        assert_eq!(original_rule("Überwhelm"), "mixed");
        assert_eq!(original_rule(""), "mixed");
    }

    #[test]
    fn whole_words_fix_the_original_edge_cases() {
        assert_eq!(of_label("hopeless"), "negative");
        assert_eq!(of_label("worried"), "negative");
        assert_eq!(of_label("fearful"), "negative");
        assert_eq!(of_label("Cautious Optimism"), "positive");
        assert_eq!(of_label("not confident"), "negative");
        assert_eq!(of_label("hopeful but anxious"), "mixed");
        assert_eq!(of_label("validation"), "mixed");
    }
}
