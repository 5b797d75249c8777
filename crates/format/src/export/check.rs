//! OpenAI's published chat-format checks for fine-tuning lines (the
//! cookbook's "data preparation and analysis for chat model fine-tuning"),
//! reimplemented, with the stricter rules our exports keep: roles alternate
//! after an optional system message and every content is a non-empty string.

use crate::value::Value;

/// The message keys OpenAI accepts.
const MESSAGE_KEYS: [&str; 5] = ["role", "content", "name", "function_call", "weight"];
/// The line keys OpenAI accepts, besides our `metadata` when asked for.
const LINE_KEYS: [&str; 4] = ["messages", "tools", "parallel_tool_calls", "functions"];

/// What is wrong with one chat line, as `(code, message)`; empty when it passes.
/// `allow_metadata`: a `metadata` object (the `--with-metadata` export) is known.
pub fn check_chat_line(line: &Value, allow_metadata: bool) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    let Some(map) = line.as_object() else {
        problems.push(("data_type", "the line is not a JSON object".to_owned()));
        return problems;
    };
    for key in map.keys() {
        if !(LINE_KEYS.contains(&key.as_str()) || allow_metadata && key == "metadata") {
            problems.push(("unrecognized_key", format!("$.{key} is not a key of a chat line")));
        }
    }
    let Some(messages) = map.get("messages").and_then(Value::as_array).filter(|m| !m.is_empty()) else {
        problems.push(("missing_messages_list", "$.messages must be a non-empty array".to_owned()));
        return problems;
    };
    let mut previous: Option<&str> = None;
    for (index, message) in messages.iter().enumerate() {
        let path = format!("$.messages[{index}]");
        let Some(message) = message.as_object() else {
            problems.push(("data_type", format!("{path} is not an object")));
            continue;
        };
        for key in message.keys().filter(|key| !MESSAGE_KEYS.contains(&key.as_str())) {
            problems.push(("message_unrecognized_key", format!("{path}.{key} is not a message key")));
        }
        let role = message.get("role").and_then(Value::as_str);
        match role {
            None => problems.push(("message_missing_key", format!("{path}.role is missing"))),
            Some("system" | "user" | "assistant") => {}
            Some(other) => problems.push(("unrecognized_role", format!("{path}.role {other:?} is not system, user or assistant"))),
        }
        match message.get("content").and_then(Value::as_str) {
            Some(content) if !content.trim().is_empty() => {}
            Some(_) => problems.push(("missing_content", format!("{path}.content is empty"))),
            None => problems.push(("missing_content", format!("{path}.content must be a string"))),
        }
        let Some(role) = role.filter(|role| ["system", "user", "assistant"].contains(role)) else { continue };
        let expected = match (index, previous) {
            (0, _) if role == "system" => None,
            (_, None | Some("system")) => Some("user"),
            (_, Some("user")) => Some("assistant"),
            (_, Some(_)) => Some("user"),
        };
        if expected.is_some_and(|expected| expected != role) {
            problems.push(("role_order", format!("{path}.role is {role:?} where {:?} must come (roles alternate after an optional system message)", expected.unwrap_or_default())));
        }
        previous = Some(role);
    }
    if !messages.iter().any(|m| m.get("role").and_then(Value::as_str) == Some("assistant")) {
        problems.push(("example_missing_assistant_message", "no assistant message".to_owned()));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    fn codes(line: Value, allow_metadata: bool) -> Vec<&'static str> {
        check_chat_line(&line, allow_metadata).into_iter().map(|(code, _)| code).collect()
    }

    #[test]
    fn a_system_user_assistant_chat_passes() {
        let line = json!({"messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]});
        assert!(codes(line, false).is_empty());
    }

    #[test]
    fn each_rule_names_its_breach() {
        assert_eq!(codes(json!([1]), false), ["data_type"]);
        assert_eq!(codes(json!({"messages": []}), false), ["missing_messages_list"]);
        assert_eq!(codes(json!({"messages": [{"role": "user", "content": "Hi"}]}), false), ["example_missing_assistant_message"]);
        assert_eq!(
            codes(json!({"messages": [{"role": "user", "content": "Hi", "mood": 1}, {"role": "assistant", "content": "Yo"}]}), false),
            ["message_unrecognized_key"]
        );
        assert_eq!(codes(json!({"messages": [{"role": "user", "content": " "}, {"role": "assistant", "content": "Yo"}]}), false), ["missing_content"]);
        assert_eq!(codes(json!({"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "Yo"}]}), false), ["missing_content"]);
        assert_eq!(codes(json!({"messages": [{"role": "bot", "content": "x"}, {"role": "assistant", "content": "Yo"}]}), false), ["unrecognized_role", "role_order"]);
        assert_eq!(codes(json!({"messages": [{"content": "x"}, {"role": "assistant", "content": "Yo"}]}), false), ["message_missing_key", "role_order"]);
        assert_eq!(codes(json!({"messages": [{"role": "assistant", "content": "Yo"}]}), false), ["role_order"]);
        assert_eq!(
            codes(json!({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]}), false),
            ["role_order"]
        );
        assert_eq!(
            codes(json!({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}, {"role": "assistant", "content": "c"}]}), false),
            ["role_order", "role_order"]
        );
    }

    #[test]
    fn metadata_is_known_only_when_asked_for() {
        let line = json!({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "metadata": {}});
        assert_eq!(codes(line.clone(), false), ["unrecognized_key"]);
        assert!(codes(line, true).is_empty());
    }
}
