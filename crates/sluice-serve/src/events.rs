//! Object-store notifications: AWS S3 event notification documents (also as delivered by SNS
//! to an HTTP subscription) and MinIO's webhook documents, which carry the same `Records[]`.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// An object created in a bucket, as a notification tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectCreated {
    /// `s3://bucket/key`, the key decoded.
    pub location: String,
    /// The object's size, when the notification gives it.
    pub size: Option<u64>,
    /// The object's entity tag, when the notification gives it.
    pub etag: Option<String>,
    /// When the event happened.
    pub time: Option<DateTime<Utc>>,
}

/// What a notification document holds.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Notification {
    /// Objects created.
    pub created: Vec<ObjectCreated>,
    /// Records of other events (removals, restores …), by location, with their event name.
    pub other: Vec<(String, String)>,
    /// S3's `s3:TestEvent`, sent when a notification is configured: nothing to do.
    pub test: bool,
}

/// Parses a notification document. The error says what is wrong with it, for a `400`.
pub fn parse_notification(body: &[u8]) -> Result<Notification, String> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not a JSON document: {e}"))?;
    parse_value(&doc, 0)
}

fn parse_value(doc: &Value, depth: u8) -> Result<Notification, String> {
    let Some(object) = doc.as_object() else {
        return Err(
            "the body is not a JSON object; expected an S3 event notification with Records[]"
                .to_string(),
        );
    };
    // An SNS HTTP subscription wraps the S3 document in `Message`.
    match object.get("Type").and_then(Value::as_str) {
        Some("Notification") if depth == 0 => {
            let message = object.get("Message").and_then(Value::as_str).ok_or(
                "an SNS notification without a Message string; expected the S3 event document in it",
            )?;
            let inner: Value = serde_json::from_str(message)
                .map_err(|e| format!("the SNS Message is not a JSON document: {e}"))?;
            return parse_value(&inner, depth + 1);
        }
        Some("SubscriptionConfirmation") => {
            return Err(
                "an SNS subscription confirmation: confirm the subscription by opening \
                        its SubscribeURL (sluice makes no calls out); notifications are accepted \
                        once it is confirmed"
                    .to_string(),
            );
        }
        _ => {}
    }
    if object.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Notification {
            test: true,
            ..Notification::default()
        });
    }
    let Some(records) = object.get("Records").and_then(Value::as_array) else {
        return Err(
            "no Records[]: expected an S3 event notification (Records[] with eventName, \
                    s3.bucket.name and s3.object.key) or a MinIO webhook document"
                .to_string(),
        );
    };
    if records.is_empty() {
        return Err("Records[] is empty: no event to act on".to_string());
    }
    let mut out = Notification::default();
    for (i, record) in records.iter().enumerate() {
        let field = |path: &[&str]| -> Option<&Value> {
            path.iter().try_fold(record, |value, key| value.get(key))
        };
        let text = |path: &[&str]| field(path).and_then(Value::as_str);
        let missing = |what: &str| format!("Records[{i}] has no {what}");
        let name = text(&["eventName"]).ok_or_else(|| missing("eventName"))?;
        let bucket = text(&["s3", "bucket", "name"]).ok_or_else(|| missing("s3.bucket.name"))?;
        let key = text(&["s3", "object", "key"]).ok_or_else(|| missing("s3.object.key"))?;
        let key = decode_key(key).map_err(|e| format!("Records[{i}]: s3.object.key: {e}"))?;
        let location = format!("s3://{bucket}/{key}");
        // AWS names events `ObjectCreated:Put`, MinIO `s3:ObjectCreated:Put`.
        let kind = name.strip_prefix("s3:").unwrap_or(name);
        if !kind.starts_with("ObjectCreated:") {
            out.other.push((location, name.to_string()));
            continue;
        }
        let size = match field(&["s3", "object", "size"]) {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| format!("Records[{i}]: s3.object.size is not a size: {v}"))?,
            ),
        };
        let etag = text(&["s3", "object", "eTag"])
            .filter(|e| !e.is_empty())
            .map(str::to_string);
        let time = match text(&["eventTime"]) {
            None => None,
            Some(t) => Some(
                DateTime::parse_from_rfc3339(t)
                    .map_err(|e| format!("Records[{i}]: eventTime `{t}`: {e}"))?
                    .with_timezone(&Utc),
            ),
        };
        out.created.push(ObjectCreated {
            location,
            size,
            etag,
            time,
        });
    }
    Ok(out)
}

/// Object keys in notifications are URL-encoded, with `+` for a space.
fn decode_key(key: &str) -> Result<String, String> {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("`{key}` has a bad %-escape at byte {i}"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("`{key}` does not decode to UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AWS: &str = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3",
        "awsRegion":"us-east-1","eventTime":"2026-12-05T10:00:00.123Z",
        "eventName":"ObjectCreated:Put",
        "s3":{"bucket":{"name":"raw","arn":"arn:aws:s3:::raw"},
              "object":{"key":"events/day%3D1/part+1.parquet","size":1024,"eTag":"abc"}}},
        {"eventName":"ObjectRemoved:Delete","eventTime":"2026-12-05T10:00:01Z",
         "s3":{"bucket":{"name":"raw"},"object":{"key":"events/old.parquet"}}}]}"#;

    #[test]
    fn aws_records_give_created_objects_with_decoded_keys() {
        let n = parse_notification(AWS.as_bytes()).unwrap();
        assert_eq!(n.created.len(), 1);
        let o = &n.created[0];
        assert_eq!(o.location, "s3://raw/events/day=1/part 1.parquet");
        assert_eq!(o.size, Some(1024));
        assert_eq!(o.etag.as_deref(), Some("abc"));
        assert_eq!(o.time.unwrap().timestamp_millis(), 1_796_464_800_123);
        assert_eq!(
            n.other,
            [(
                "s3://raw/events/old.parquet".to_string(),
                "ObjectRemoved:Delete".to_string()
            )]
        );
    }

    #[test]
    fn minio_and_sns_documents_are_read_too() {
        let minio = r#"{"EventName":"s3:ObjectCreated:Put","Key":"raw/a.parquet","Records":[
            {"eventName":"s3:ObjectCreated:Put","eventTime":"2026-12-05T10:00:00.000Z",
             "s3":{"bucket":{"name":"raw"},"object":{"key":"a.parquet","size":7,"eTag":"e"}}}]}"#;
        let n = parse_notification(minio.as_bytes()).unwrap();
        assert_eq!(n.created[0].location, "s3://raw/a.parquet");
        let sns = serde_json::json!({"Type": "Notification", "Message": AWS}).to_string();
        assert_eq!(parse_notification(sns.as_bytes()).unwrap().created.len(), 1);
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"raw"}"#;
        assert!(parse_notification(test.as_bytes()).unwrap().test);
    }

    #[test]
    fn malformed_documents_say_what_is_missing() {
        let err = |body: &str| parse_notification(body.as_bytes()).unwrap_err();
        assert!(err("{not json").contains("not a JSON document"));
        assert!(err("[1]").contains("not a JSON object"));
        assert!(err(r#"{"hello":1}"#).contains("no Records[]"));
        assert!(err(r#"{"Records":[]}"#).contains("empty"));
        let e =
            err(r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"}}}]}"#);
        assert!(
            e.contains("Records[0]") && e.contains("s3.object.key"),
            "{e}"
        );
        let e = err(
            r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k","size":"big"}}}]}"#,
        );
        assert!(e.contains("size"), "{e}");
        let e = err(r#"{"Type":"SubscriptionConfirmation","SubscribeURL":"https://x"}"#);
        assert!(e.contains("SubscribeURL"), "{e}");
        assert!(decode_key("a%zz").is_err());
    }
}
