//! One conversation rendered as export lines: the same parsed
//! [`Conversation`] the build renders, each line with its dedup key and
//! tokens, so a file's export is the concatenation of its conversations'.

use std::borrow::Cow;

use serde::Serialize;

use super::dedup::{pair_key, DedupKey, KeyBuilder};
use super::tokens::{ConversationCounter, ExampleTokens, Tokenizer};
use super::ExportFormat;
use crate::json::write_compact;
use crate::model::{has_target, Conversation};
use crate::quality::{ConversationFigures, QualityTier};
use crate::render as build_render;
use crate::value::Value;

/// One line of an export.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    /// The conversation id (one line per conversation) or the pair's id.
    pub id: String,
    /// The line, ending in `\n`.
    pub line: Vec<u8>,
    pub key: DedupKey,
    /// Counted when a tokenizer was given.
    pub tokens: ExampleTokens,
}

/// One conversation's lines in an export.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportFragment {
    pub conversation_id: String,
    pub examples: Vec<Example>,
    pub figures: ConversationFigures,
}

/// How lines are rendered.
#[derive(Clone, Copy, Debug)]
pub struct RenderSettings<'t> {
    pub format: ExportFormat,
    /// OpenAI lines get the original's `metadata` object.
    pub with_metadata: bool,
    pub tokenizer: Option<&'t Tokenizer>,
}

/// Chat roles as OpenAI names them; ShareGPT's names are [`Role::sharegpt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    pub fn sharegpt(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "human",
            Role::Assistant => "gpt",
        }
    }
}

/// One message of a chat.
#[derive(Clone, Debug, PartialEq)]
pub struct Message<'c> {
    pub role: Role,
    pub content: Cow<'c, str>,
}

/// Renders `conversation` as `settings.format` lines. A conversation with no
/// pair that has a target gives no line. `line_suffix` is the build's JSONL
/// id suffix ([`build_render::line_id_suffix`]), or `None` when the pairs
/// were read from a JSONL and carry their line ids already.
pub fn render_export_fragment(conversation: &Conversation, settings: &RenderSettings, line_suffix: Option<&str>) -> ExportFragment {
    let figures = conversation.figures();
    let mut counter = settings.tokenizer.map(ConversationCounter::new);
    let examples = match settings.format {
        ExportFormat::OpenAi | ExportFormat::ShareGpt => chat_example(conversation, settings, &figures, counter.as_mut()).into_iter().collect(),
        ExportFormat::Alpaca => target_pairs(conversation).map(|pair| alpaca_example(pair, counter.as_mut())).collect(),
        ExportFormat::Jsonl => jsonl_examples(conversation, line_suffix, counter.as_mut()),
    };
    ExportFragment { conversation_id: conversation.conversation_id.clone(), examples, figures }
}

fn target_pairs(conversation: &Conversation) -> impl Iterator<Item = &Value> {
    conversation.training_pairs.iter().filter(|pair| has_target(pair))
}

fn text<'v>(pair: &'v Value, key: &str) -> &'v str {
    pair.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The history entries of a pair that are chat turns: a user or assistant
/// role and text content.
fn history(pair: &Value) -> impl Iterator<Item = (Role, &str)> {
    pair.get("conversation_history").and_then(Value::as_array).into_iter().flatten().filter_map(|entry| {
        let role = match entry.get("role").and_then(Value::as_str)? {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            _ => return None,
        };
        Some((role, entry.get("content").and_then(Value::as_str)?))
    })
}

/// The history of `pair` before its own user input: an assistant pair's
/// history ends on the user message it answers, which `current_user_input`
/// repeats (spec §1.8), and the copy is left out.
fn history_before_input(pair: &Value) -> Vec<(Role, &str)> {
    let mut turns: Vec<(Role, &str)> = history(pair).collect();
    if turns.last().is_some_and(|&(role, content)| role == Role::User && content == text(pair, "current_user_input")) {
        turns.pop();
    }
    turns
}

/// The conversation as a chat, up to its last assistant turn with a target:
/// the system prompt, the history, the user input and the target. Roles
/// alternate from a user turn on (the v4 format only warns when they do not):
/// assistant turns before the first user turn are left out and consecutive
/// turns of one role are joined by a blank line; empty turns are skipped.
pub fn chat_messages(conversation: &Conversation) -> Option<Vec<Message<'_>>> {
    let last = target_pairs(conversation).last()?;
    let mut messages: Vec<Message> = Vec::new();
    let system = text(last, "system_prompt");
    if !system.trim().is_empty() {
        messages.push(Message { role: Role::System, content: Cow::Borrowed(system) });
    }
    let turns = history_before_input(last)
        .into_iter()
        .chain([(Role::User, text(last, "current_user_input")), (Role::Assistant, text(last, "target_response"))]);
    for (role, content) in turns {
        if content.trim().is_empty() || (role == Role::Assistant && messages.last().is_none_or(|m| m.role == Role::System)) {
            continue;
        }
        match messages.last_mut() {
            Some(previous) if previous.role == role => {
                let joined = format!("{}\n\n{content}", previous.content);
                previous.content = Cow::Owned(joined);
            }
            _ => messages.push(Message { role, content: Cow::Borrowed(content) }),
        }
    }
    messages.last().is_some_and(|m| m.role == Role::Assistant).then_some(messages)
}

#[derive(Serialize)]
struct OpenAiLine<'a> {
    messages: Vec<OpenAiMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<OpenAiMetadata<'a>>,
}

#[derive(Serialize)]
struct OpenAiMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct ShareGptLine<'a> {
    conversations: Vec<ShareGptMessage<'a>>,
}

#[derive(Serialize)]
struct ShareGptMessage<'a> {
    from: &'static str,
    value: &'a str,
}

/// The original's `metadata` object: every key a string but the score, a
/// float or null, so each has one type on every line.
#[derive(Serialize)]
struct OpenAiMetadata<'a> {
    conversation_id: &'a str,
    persona: &'a str,
    emotional_arc: &'a str,
    training_topic: &'a str,
    quality_score: Option<f64>,
    quality_tier: &'static str,
}

impl<'a> OpenAiMetadata<'a> {
    fn of(conversation: &'a Conversation, figures: &ConversationFigures) -> Self {
        let scaffolding = &conversation.scaffolding;
        let name = |name: &'a String, key: &'a String| if name.is_empty() { key.as_str() } else { name.as_str() };
        Self {
            conversation_id: &conversation.conversation_id,
            persona: name(&scaffolding.persona_name, &scaffolding.persona_key),
            emotional_arc: name(&scaffolding.emotional_arc, &scaffolding.emotional_arc_key),
            training_topic: name(&scaffolding.training_topic, &scaffolding.training_topic_key),
            quality_score: figures.quality_score,
            quality_tier: QualityTier::of_score(figures.quality_score).as_str(),
        }
    }
}

fn write_line(line: &mut Vec<u8>, value: &impl Serialize) {
    serde_json::to_writer(&mut *line, value).expect("writing to a Vec cannot fail");
    line.push(b'\n');
}

fn chat_example<'c>(
    conversation: &'c Conversation,
    settings: &RenderSettings,
    figures: &ConversationFigures,
    counter: Option<&mut ConversationCounter<'_, 'c>>,
) -> Option<Example> {
    let messages = chat_messages(conversation)?;
    let mut tokens = ExampleTokens::default();
    if let Some(counter) = counter {
        for message in &messages {
            let count = match &message.content {
                Cow::Borrowed(text) => counter.count(text),
                Cow::Owned(text) => counter.count_owned(text),
            };
            if message.role == Role::Assistant { tokens.training += count } else { tokens.context += count }
        }
    }
    let mut line = Vec::with_capacity(messages.iter().map(|m| m.content.len() + 32).sum::<usize>() + 256);
    if settings.format == ExportFormat::ShareGpt {
        let conversations = messages.iter().map(|m| ShareGptMessage { from: m.role.sharegpt(), value: &m.content }).collect();
        write_line(&mut line, &ShareGptLine { conversations });
    } else {
        let metadata = settings.with_metadata.then(|| OpenAiMetadata::of(conversation, figures));
        let messages = messages.iter().map(|m| OpenAiMessage { role: m.role.as_str(), content: &m.content }).collect();
        write_line(&mut line, &OpenAiLine { messages, metadata });
    }
    let mut key = KeyBuilder::default();
    for pair in target_pairs(conversation) {
        key.exchange(text(pair, "current_user_input"), text(pair, "target_response"));
    }
    Some(Example { id: conversation.conversation_id.clone(), line, key: key.finish(), tokens })
}

#[derive(Serialize)]
struct AlpacaLine<'a> {
    instruction: &'a str,
    input: &'a str,
    output: &'a str,
}

/// A pair's `input`: the user input alone when there is no history, else
/// the history and the input as a transcript (`User:` / `Assistant:` turns
/// separated by blank lines).
pub fn alpaca_input(pair: &Value) -> Cow<'_, str> {
    let current = text(pair, "current_user_input");
    let earlier = history_before_input(pair);
    if earlier.is_empty() {
        return Cow::Borrowed(current);
    }
    let mut input = String::new();
    for (role, content) in earlier.into_iter().chain([(Role::User, current)]) {
        if !input.is_empty() {
            input.push_str("\n\n");
        }
        input.push_str(if role == Role::User { "User: " } else { "Assistant: " });
        input.push_str(content);
    }
    Cow::Owned(input)
}

fn alpaca_example<'c>(pair: &'c Value, counter: Option<&mut ConversationCounter<'_, 'c>>) -> Example {
    let (instruction, output) = (text(pair, "system_prompt"), text(pair, "target_response"));
    let input = alpaca_input(pair);
    let mut tokens = ExampleTokens::default();
    if let Some(counter) = counter {
        let input_tokens = match &input {
            Cow::Borrowed(text) => counter.count(text),
            Cow::Owned(text) => counter.count_owned(text),
        };
        tokens = ExampleTokens { context: counter.count(instruction) + input_tokens, training: counter.count(output) };
    }
    let mut line = Vec::with_capacity(instruction.len() + input.len() + output.len() + 64);
    write_line(&mut line, &AlpacaLine { instruction, input: &input, output });
    Example { id: text(pair, "id").to_owned(), line, key: pair_key(text(pair, "current_user_input"), output), tokens }
}

/// The texts a build JSONL line holds, counted as the line holds them:
/// system prompt, history and user input as context, the target as training.
fn pair_tokens<'c>(pair: &'c Value, counter: &mut ConversationCounter<'_, 'c>) -> ExampleTokens {
    let mut context = counter.count(text(pair, "system_prompt")) + counter.count(text(pair, "current_user_input"));
    for (_, content) in history(pair) {
        context += counter.count(content);
    }
    ExampleTokens { context, training: counter.count(text(pair, "target_response")) }
}

/// The build's own JSONL lines. A pair read from a JSONL file already has
/// its line id (`conversation_id` beside its own id) and is written as it came.
fn jsonl_examples<'c>(conversation: &'c Conversation, line_suffix: Option<&str>, mut counter: Option<&mut ConversationCounter<'_, 'c>>) -> Vec<Example> {
    let rendered = line_suffix.map(|suffix| build_render::render_conversation_fragment(conversation, suffix).jsonl).unwrap_or_default();
    let mut lines = rendered.split_inclusive(|&b| b == b'\n');
    target_pairs(conversation)
        .map(|pair| {
            let line = match lines.next() {
                Some(line) => line.to_vec(),
                None => {
                    let mut line = Vec::new();
                    write_compact(&mut line, pair).expect("writing to a Vec cannot fail");
                    line.push(b'\n');
                    line
                }
            };
            let id = match line_suffix {
                Some(suffix) => format!("{}_{suffix}", text(pair, "id")),
                None => text(pair, "id").to_owned(),
            };
            let tokens = counter.as_deref_mut().map(|counter| pair_tokens(pair, counter)).unwrap_or_default();
            Example { id, line, key: pair_key(text(pair, "current_user_input"), text(pair, "target_response")), tokens }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::check::check_chat_line;
    use crate::json;
    use crate::value::Map;

    fn conversation(pairs: Vec<Value>) -> Conversation {
        Conversation { conversation_id: "c0ffee00-0000-4000-8000-000000000001".into(), training_pairs: pairs, ..Conversation::from_enriched(Map::new()) }
    }

    fn pair(turn: u64, history: Value, input: &str, target: Option<&str>) -> Value {
        json!({"id": format!("p_turn{turn}"), "turn_number": turn, "system_prompt": "You are a kind financial coach.",
            "conversation_history": history, "current_user_input": input, "target_response": target,
            "training_metadata": {"quality_score": 4}})
    }

    /// A three-exchange chat: user, assistant, user, assistant, as enrichment writes it.
    fn chat() -> Conversation {
        let h = |turn: u64, role: &str, content: &str| json!({"turn": turn, "role": role, "content": content});
        conversation(vec![
            pair(1, json!([]), "I am worried.", None),
            pair(2, json!([h(1, "user", "I am worried.")]), "I am worried.", Some("Tell me more.")),
            pair(3, json!([h(1, "user", "I am worried."), h(2, "assistant", "Tell me more.")]), "About money.", None),
            pair(
                4,
                json!([h(1, "user", "I am worried."), h(2, "assistant", "Tell me more."), h(3, "user", "About money.")]),
                "About money.",
                Some("Let us look at it together."),
            ),
        ])
    }

    fn lines(fragment: &ExportFragment) -> Vec<Value> {
        fragment.examples.iter().map(|e| serde_json::from_slice(&e.line).unwrap()).collect()
    }

    fn settings(format: ExportFormat) -> RenderSettings<'static> {
        RenderSettings { format, with_metadata: false, tokenizer: None }
    }

    #[test]
    fn openai_line_is_the_whole_chat_up_to_the_last_target() {
        let fragment = render_export_fragment(&chat(), &settings(ExportFormat::OpenAi), Some("c0ffee00"));
        let expected = json!({"messages": [
            {"role": "system", "content": "You are a kind financial coach."},
            {"role": "user", "content": "I am worried."},
            {"role": "assistant", "content": "Tell me more."},
            {"role": "user", "content": "About money."},
            {"role": "assistant", "content": "Let us look at it together."},
        ]});
        assert_eq!(lines(&fragment), std::slice::from_ref(&expected));
        assert!(check_chat_line(&expected, false).is_empty());
        assert!(fragment.examples[0].line.ends_with(b"}\n"));
    }

    #[test]
    fn openai_metadata_has_one_type_per_key() {
        let settings = RenderSettings { with_metadata: true, ..settings(ExportFormat::OpenAi) };
        let scored = render_export_fragment(&chat(), &settings, Some("x"));
        let unscored = conversation(vec![json!({"id": "p", "system_prompt": "s", "conversation_history": [], "current_user_input": "u", "target_response": "t"})]);
        let unscored = render_export_fragment(&unscored, &settings, Some("x"));
        let (scored, unscored) = (&lines(&scored)[0]["metadata"], &lines(&unscored)[0]["metadata"]);
        // 4 is written 4.0: one float type on every line, null when unscored.
        assert_eq!(scored["quality_score"], json!(4.0));
        assert_eq!(unscored["quality_score"], Value::Null);
        for key in ["conversation_id", "persona", "emotional_arc", "training_topic", "quality_tier"] {
            assert!(scored[key].is_string() && unscored[key].is_string(), "{key}");
        }
        assert!(check_chat_line(&lines(&render_export_fragment(&chat(), &settings, None))[0], true).is_empty());
    }

    #[test]
    fn chats_that_do_not_alternate_are_made_to() {
        let h = |role: &str, content: &str| json!({"role": role, "content": content});
        let odd = conversation(vec![pair(
            5,
            json!([h("assistant", "Welcome!"), h("user", "Hi"), h("user", "Still there?"), h("assistant", ""), h("user", "Help")]),
            "Help",
            Some("Of course."),
        )]);
        let messages = chat_messages(&odd).unwrap();
        let roles: Vec<Role> = messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::System, Role::User, Role::Assistant]);
        assert_eq!(messages[1].content, "Hi\n\nStill there?\n\nHelp");
        let line = &lines(&render_export_fragment(&odd, &settings(ExportFormat::OpenAi), None))[0];
        assert!(check_chat_line(line, false).is_empty(), "{:?}", check_chat_line(line, false));
    }

    #[test]
    fn a_conversation_without_targets_gives_no_line() {
        let none = conversation(vec![pair(1, json!([]), "Hello", None)]);
        for format in ExportFormat::ALL {
            assert!(render_export_fragment(&none, &settings(format), Some("x")).examples.is_empty(), "{format:?}");
        }
    }

    #[test]
    fn sharegpt_uses_its_own_role_names() {
        let fragment = render_export_fragment(&chat(), &settings(ExportFormat::ShareGpt), None);
        let froms: Vec<String> = lines(&fragment)[0]["conversations"].as_array().unwrap().iter().map(|m| m["from"].as_str().unwrap().to_owned()).collect();
        assert_eq!(froms, ["system", "human", "gpt", "human", "gpt"]);
    }

    #[test]
    fn alpaca_has_a_line_per_target_with_the_history_as_a_transcript() {
        let fragment = render_export_fragment(&chat(), &settings(ExportFormat::Alpaca), Some("c0ffee00"));
        assert_eq!(
            lines(&fragment),
            [
                json!({"instruction": "You are a kind financial coach.", "input": "I am worried.", "output": "Tell me more."}),
                json!({"instruction": "You are a kind financial coach.", "input": "User: I am worried.\n\nAssistant: Tell me more.\n\nUser: About money.", "output": "Let us look at it together."}),
            ]
        );
        assert_ne!(fragment.examples[0].key, fragment.examples[1].key);
    }

    #[test]
    fn jsonl_lines_are_the_builds() {
        let conversation = chat();
        let fragment = render_export_fragment(&conversation, &settings(ExportFormat::Jsonl), Some("c0ffee00"));
        let build = build_render::render_conversation_fragment(&conversation, "c0ffee00").jsonl;
        assert_eq!(fragment.examples.iter().flat_map(|e| e.line.clone()).collect::<Vec<u8>>(), build);
        assert_eq!(fragment.examples[1].id, "p_turn4_c0ffee00");
    }

    #[test]
    fn tokens_split_assistant_targets_from_context() {
        let tokenizer = Tokenizer::o200k();
        let count = |text: &str| tokenizer.count(text);
        let settings = |format| RenderSettings { format, with_metadata: false, tokenizer: Some(&tokenizer) };
        let openai = render_export_fragment(&chat(), &settings(ExportFormat::OpenAi), None);
        let system = count("You are a kind financial coach.");
        assert_eq!(
            openai.examples[0].tokens,
            ExampleTokens {
                context: system + count("I am worried.") + count("About money."),
                training: count("Tell me more.") + count("Let us look at it together.")
            }
        );
        let alpaca = render_export_fragment(&chat(), &settings(ExportFormat::Alpaca), None);
        let input = "User: I am worried.\n\nAssistant: Tell me more.\n\nUser: About money.";
        assert_eq!(alpaca.examples[1].tokens, ExampleTokens { context: system + count(input), training: count("Let us look at it together.") });
        let jsonl = render_export_fragment(&chat(), &settings(ExportFormat::Jsonl), None);
        let history = count("I am worried.") + count("Tell me more.") + count("About money.");
        assert_eq!(jsonl.examples[1].tokens, ExampleTokens { context: system + history + count("About money."), training: count("Let us look at it together.") });
    }
}
