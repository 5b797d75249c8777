//! Token statistics: how many tokens each exported example holds with the
//! model's own tokenizer (o200k_base by default, or a Hugging Face
//! `tokenizer.json`), and the figures a fine-tuning service asks about.
//!
//! A count is the sum of each text's tokens encoded on its own, without
//! special tokens and without a chat template: what the texts cost, which a
//! template adds a few tokens per message to.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::path::Path;
use std::sync::Mutex;

/// A tokenizer that counts, remembering the count of each distinct text it
/// has seen (an export's system prompt and histories repeat across pairs and
/// conversations; encoding is nearly all of what counting costs).
pub struct Tokenizer {
    model: Model,
    memo: Memo,
}

enum Model {
    /// OpenAI's `o200k_base`, vocabulary bundled with `tiktoken-rs`.
    O200k(&'static tiktoken_rs::CoreBPE),
    /// A Hugging Face `tokenizer.json` (Llama, Mistral, Qwen, Gemma…).
    HuggingFace { name: String, tokenizer: Box<tokenizers::Tokenizer> },
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl Tokenizer {
    pub fn o200k() -> Self {
        Self::new(Model::O200k(tiktoken_rs::o200k_base_singleton()))
    }

    fn new(model: Model) -> Self {
        Tokenizer { model, memo: Memo::default() }
    }

    /// A `tokenizer.json`; the error names the file and what is wrong with it.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let mut tokenizer = tokenizers::Tokenizer::from_file(path).map_err(|e| format!("{}: not a Hugging Face tokenizer.json: {e}", path.display()))?;
        // A file's own truncation would cut the counts, and its padding inflate them.
        tokenizer.with_truncation(None).map_err(|e| format!("{}: {e}", path.display()))?;
        tokenizer.with_padding(None);
        Ok(Self::new(Model::HuggingFace { name: path.display().to_string(), tokenizer: Box::new(tokenizer) }))
    }

    /// How the figures name it.
    pub fn name(&self) -> String {
        match &self.model {
            Model::O200k(_) => "o200k_base".to_owned(),
            Model::HuggingFace { name, .. } => name.clone(),
        }
    }

    /// The tokens of `text` encoded on its own, without special tokens.
    pub fn count(&self, text: &str) -> usize {
        if text.is_empty() {
            return 0;
        }
        self.count_keyed(text, self.memo.key(text))
    }

    /// [`Tokenizer::count`] of a text whose memo key is known.
    fn count_keyed(&self, text: &str, key: u128) -> usize {
        if let Some(count) = self.memo.get(key) {
            return count;
        }
        let count = match &self.model {
            Model::O200k(bpe) => bpe.encode_ordinary(text).len(),
            Model::HuggingFace { tokenizer, .. } => tokenizer.encode_fast(text, false).map_or(0, |encoding| encoding.len()),
        };
        self.memo.insert(key, count);
        count
    }
}

/// Counts of texts seen, keyed by a 128-bit hash of the text (two SipHash
/// keys drawn at random: a collision is as unlikely as guessing a key), in
/// shards so the export's worker threads seldom wait for each other.
struct Memo {
    hashers: [std::collections::hash_map::RandomState; 2],
    shards: Vec<Mutex<HashMap<u128, usize, BuildKey>>>,
}

/// Memo keys are random already (a keyed hash of the text): a map of them
/// uses their low bits as they are rather than hashing them again.
#[derive(Clone, Copy, Default)]
struct BuildKey;

impl BuildHasher for BuildKey {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u128` is used; any other input is still hashed, if poorly.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u128(&mut self, key: u128) {
        self.0 = key as u64;
    }
}

const MEMO_SHARDS: usize = 16;
/// Texts remembered at most per shard: memory stays bounded (about 40 MB in
/// all) however many distinct texts a file holds; later texts are counted each time.
const MEMO_SHARD_LIMIT: usize = 1 << 16;

impl Default for Memo {
    fn default() -> Self {
        Memo { hashers: Default::default(), shards: (0..MEMO_SHARDS).map(|_| Mutex::default()).collect() }
    }
}

impl Memo {
    fn key(&self, text: &str) -> u128 {
        let [low, high] = &self.hashers;
        (u128::from(high.hash_one(text)) << 64) | u128::from(low.hash_one(text))
    }

    fn shard(&self, key: u128) -> std::sync::MutexGuard<'_, HashMap<u128, usize, BuildKey>> {
        // A poisoned shard only means another thread panicked; its counts are
        // still right. The shard is chosen by the high bits, the slot by the low.
        self.shards[((key >> 64) as usize) % MEMO_SHARDS].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, key: u128) -> Option<usize> {
        self.shard(key).get(&key).copied()
    }

    fn insert(&self, key: u128, count: usize) {
        let mut shard = self.shard(key);
        if shard.len() < MEMO_SHARD_LIMIT {
            shard.insert(key, count);
        }
    }
}

/// Counts the texts of one conversation, each distinct text once: a pair
/// repeats the conversation's history and system prompt, so most of an
/// export's text is seen before.
/// Texts are known by their memo key, so each is hashed once and a text
/// seen again is neither compared nor looked up in the shared memo.
pub struct ConversationCounter<'t, 'c> {
    tokenizer: &'t Tokenizer,
    seen: HashMap<u128, usize, BuildKey>,
    texts: std::marker::PhantomData<&'c str>,
}

impl<'t, 'c> ConversationCounter<'t, 'c> {
    pub fn new(tokenizer: &'t Tokenizer) -> Self {
        Self { tokenizer, seen: HashMap::default(), texts: std::marker::PhantomData }
    }

    pub fn count(&mut self, text: &'c str) -> usize {
        if text.is_empty() {
            return 0;
        }
        let tokenizer = self.tokenizer;
        let key = tokenizer.memo.key(text);
        *self.seen.entry(key).or_insert_with(|| tokenizer.count_keyed(text, key))
    }

    /// A text made for the export (not borrowed from the conversation).
    pub fn count_owned(&self, text: &str) -> usize {
        self.tokenizer.count(text)
    }
}

/// One example's tokens: what the model reads and what it is trained to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExampleTokens {
    /// System prompt, user turns, instruction and input.
    pub context: usize,
    /// The assistant's turns (the targets).
    pub training: usize,
}

impl ExampleTokens {
    pub fn total(self) -> usize {
        self.context + self.training
    }
}

/// Per-file figures over the examples written.
#[derive(Clone, Debug, Default)]
pub struct TokenStats {
    per_example: Vec<usize>,
    context: u64,
    training: u64,
    /// Examples over the limit, with their id and tokens (warned, never cut).
    pub over_limit: Vec<(String, usize)>,
    limit: Option<usize>,
}

impl TokenStats {
    pub fn with_limit(limit: Option<usize>) -> Self {
        Self { limit, ..Self::default() }
    }

    pub fn add(&mut self, id: &str, tokens: ExampleTokens) {
        let total = tokens.total();
        self.per_example.push(total);
        self.context += tokens.context as u64;
        self.training += tokens.training as u64;
        if self.limit.is_some_and(|limit| total > limit) {
            self.over_limit.push((id.to_owned(), total));
        }
    }

    pub fn summary(&self) -> TokenSummary {
        let mut sorted = self.per_example.clone();
        sorted.sort_unstable();
        let n = sorted.len();
        // Nearest rank: the smallest count at least 95 % of the examples do not exceed.
        let p95 = (n > 0).then(|| sorted[(n * 95).div_ceil(100).max(1) - 1]);
        TokenSummary {
            examples: n,
            total: self.context + self.training,
            context: self.context,
            training: self.training,
            min: sorted.first().copied(),
            mean: (n > 0).then(|| (self.context + self.training) as f64 / n as f64),
            p95,
            max: sorted.last().copied(),
            max_tokens: self.limit,
            over_max_tokens: self.over_limit.len(),
        }
    }
}

/// The figures of [`TokenStats`], as printed and written to the dataset card.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TokenSummary {
    pub examples: usize,
    pub total: u64,
    pub context: u64,
    pub training: u64,
    pub min: Option<usize>,
    pub mean: Option<f64>,
    pub p95: Option<usize>,
    pub max: Option<usize>,
    pub max_tokens: Option<usize>,
    pub over_max_tokens: usize,
}

impl std::fmt::Display for TokenSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let figure = |v: Option<usize>| v.map_or_else(|| "n/a".to_owned(), |v| v.to_string());
        write!(
            f,
            "{} tokens ({} training, {} context) over {} examples; per example min {} mean {} p95 {} max {}",
            self.total,
            self.training,
            self.context,
            self.examples,
            figure(self.min),
            self.mean.map_or_else(|| "n/a".to_owned(), |m| format!("{m:.1}")),
            figure(self.p95),
            figure(self.max)
        )?;
        if let Some(limit) = self.max_tokens {
            write!(f, "; {} over {limit}", self.over_max_tokens)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn o200k_counts_as_tiktoken_does() {
        // tiktoken: enc.encode_ordinary("hello world") == [24912, 2375].
        let tokenizer = Tokenizer::o200k();
        assert_eq!(tokenizer.count("hello world"), 2);
        assert_eq!(tokenizer.count(""), 0);
        // Special-token text is counted as text, never as one special token.
        assert!(tokenizer.count("<|endoftext|>") > 1);
    }

    #[test]
    fn a_text_seen_before_is_counted_as_the_first_time() {
        let tokenizer = Tokenizer::o200k();
        let texts = ["You are a careful tutor.", "hello world", "You are a careful tutor!", "hello world"];
        let first: Vec<usize> = texts.iter().map(|t| tokenizer.count(t)).collect();
        let again: Vec<usize> = texts.iter().map(|t| tokenizer.count(t)).collect();
        assert_eq!(first, again);
        assert_eq!(first[1], 2);
        // Remembered once per distinct text, and distinct texts kept apart.
        assert_eq!(tokenizer.memo.shards.iter().map(|s| s.lock().unwrap().len()).sum::<usize>(), 3);
        assert_eq!(first, texts.iter().map(|t| Tokenizer::o200k().count(t)).collect::<Vec<_>>());
    }

    #[test]
    fn summary_figures_are_nearest_rank_and_limits_are_listed_not_cut() {
        let mut stats = TokenStats::with_limit(Some(15));
        for (i, total) in (1..=20).enumerate() {
            stats.add(&format!("e{i}"), ExampleTokens { context: total - 1, training: 1 });
        }
        let summary = stats.summary();
        assert_eq!((summary.examples, summary.total, summary.training, summary.context), (20, 210, 20, 190));
        assert_eq!((summary.min, summary.p95, summary.max), (Some(1), Some(19), Some(20)));
        assert_eq!(summary.mean, Some(10.5));
        assert_eq!(summary.over_max_tokens, 5);
        assert_eq!(stats.over_limit[0], ("e15".to_owned(), 16));
    }

    #[test]
    fn an_empty_file_has_no_figures() {
        let summary = TokenStats::default().summary();
        assert_eq!((summary.examples, summary.min, summary.mean, summary.p95), (0, None, None, None));
    }
}
