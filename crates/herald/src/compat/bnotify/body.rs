//! bnotify's request and response bodies: the send body checked as its NestJS DTO
//! (class-validator messages), and the subscription and notification views in Unix seconds.

use herald_core::clock::Millis;
use herald_core::keys;
use herald_core::model::Subscription;
use herald_core::service::pairing::ChannelSend;
use serde::Serialize;
use serde_json::Value;

use super::error::BnError;

/// `title`: 3–30 characters.
const TITLE: (&str, usize, usize) = ("title", 3, 30);
/// `text`: 3–200 characters.
const TEXT: (&str, usize, usize) = ("text", 3, 200);

/// A validated `POST …/notifications/{iuid}` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendBody {
    pub title: String,
    pub text: String,
}

/// The class-validator messages of one `@IsString() @MinLength(min) @MaxLength(max)` field, in
/// the order NestJS lists them (decorators run bottom-up: max, min, string).
fn check(body: &Value, (field, min, max): (&str, usize, usize), messages: &mut Vec<Value>) -> Option<String> {
    let too_long = format!("{field} must be shorter than or equal to {max} characters");
    let too_short = format!("{field} must be longer than or equal to {min} characters");
    match body.get(field).and_then(Value::as_str) {
        // class-validator counts characters (code points), not bytes.
        Some(s) if s.chars().count() > max => messages.push(too_long.into()),
        Some(s) if s.chars().count() < min => messages.push(too_short.into()),
        Some(s) => return Some(s.to_string()),
        None => messages.extend([too_long.into(), too_short.into(), format!("{field} must be a string").into()]),
    }
    None
}

/// Parses the send body as NestJS would: malformed JSON is a 400 with the parser's message,
/// invalid fields a 400 listing every class-validator message.
pub fn parse_send(raw: &[u8]) -> Result<SendBody, BnError> {
    let body: Value = if raw.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(raw).map_err(|e| {
            let position = json_position(raw, e.line(), e.column());
            BnError::BadRequest(Value::String(format!("Unexpected token in JSON at position {position}")))
        })?
    };
    let mut messages = Vec::new();
    let title = check(&body, TITLE, &mut messages);
    let text = check(&body, TEXT, &mut messages);
    match (title, text) {
        (Some(title), Some(text)) => Ok(SendBody { title, text }),
        _ => Err(BnError::BadRequest(Value::Array(messages))),
    }
}

/// The byte offset of serde's 1-based line and column, as JavaScript's JSON.parse reports it.
fn json_position(raw: &[u8], line: usize, column: usize) -> usize {
    let line_start: usize = raw.split(|b| *b == b'\n').take(line.saturating_sub(1)).map(|l| l.len() + 1).sum::<usize>();
    (line_start + column.saturating_sub(1)).min(raw.len())
}

fn seconds(ms: Millis) -> i64 {
    ms.div_euclid(1000)
}

/// A subscription as bnotify lists it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    pub channel: String,
    /// The device: stable for one browser or device in this channel, whoever it belongs to.
    pub subscriber: String,
    pub iuid: String,
    pub mute: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub id: String,
}

impl From<&Subscription> for SubscriptionView {
    fn from(s: &Subscription) -> Self {
        SubscriptionView {
            channel: s.channel_id.clone(),
            subscriber: subscriber_id(&s.channel_id, &s.identifier),
            iuid: s.external_id.clone(),
            mute: s.muted,
            created_at: seconds(s.created_at),
            updated_at: seconds(s.updated_at),
            id: s.id.to_string(),
        }
    }
}

/// A pseudonymous device id: 24 hex digits of SHA-256 over (channel, identifier), so the
/// endpoint or token itself is never shown.
fn subscriber_id(channel_id: &str, identifier: &str) -> String {
    keys::hash(&format!("{channel_id}\n{identifier}")).iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// A sent notification as bnotify answers it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    pub subscription: String,
    pub title: String,
    pub text: String,
    /// Inbox read time in Unix seconds; 0 until read.
    pub readed_at: i64,
    pub created_at: i64,
    pub id: String,
}

impl NotificationView {
    /// Renders a send with the body it was made from.
    pub fn new(sent: &ChannelSend, body: SendBody) -> Self {
        NotificationView {
            subscription: sent.subscription.id.to_string(),
            title: body.title,
            text: body.text,
            readed_at: sent.read_at.map_or(0, seconds),
            created_at: seconds(sent.created_at),
            id: sent.notification_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn messages(raw: &str) -> Value {
        match parse_send(raw.as_bytes()) {
            Err(BnError::BadRequest(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nest_style_messages() {
        assert_eq!(
            messages(r#"{"title":"ab","text":"abc"}"#),
            json!(["title must be longer than or equal to 3 characters"])
        );
        assert_eq!(
            messages(&json!({"title": "abc", "text": "x".repeat(201)}).to_string()),
            json!(["text must be shorter than or equal to 200 characters"])
        );
        assert_eq!(
            messages(r#"{"text": 5}"#),
            json!([
                "title must be shorter than or equal to 30 characters",
                "title must be longer than or equal to 3 characters",
                "title must be a string",
                "text must be shorter than or equal to 200 characters",
                "text must be longer than or equal to 3 characters",
                "text must be a string"
            ])
        );
        // Characters, not bytes: three two-byte characters are enough.
        assert_eq!(
            parse_send("{\"title\":\"ééé\",\"text\":\"ééé\"}".as_bytes()).unwrap(),
            SendBody { title: "ééé".into(), text: "ééé".into() }
        );
        assert_eq!(messages("{\"title\": }"), json!("Unexpected token in JSON at position 10"));
    }

    #[test]
    fn unix_seconds_floor() {
        assert_eq!((seconds(1_673_889_812_999), seconds(-1)), (1_673_889_812, -1));
        assert_eq!(subscriber_id("c", "e").len(), 24);
    }
}
