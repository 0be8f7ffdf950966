//! Column types as check files and messages write them: `int64`, `string`, `timestamp(us, UTC)`.

use arrow_schema::{DataType, TimeUnit};

/// A column type required by a `schema` check.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TypeSpec {
    Any,
    Bool,
    Int {
        signed: bool,
        bits: u8,
    },
    Float {
        bits: u8,
    },
    String,
    Binary,
    Date,
    Timestamp {
        unit: Option<TimeUnit>,
        tz: Option<Option<String>>,
    },
    Decimal,
}

impl TypeSpec {
    pub(crate) fn parse(text: &str) -> Option<TypeSpec> {
        let t = text.trim().to_ascii_lowercase();
        let spec = match t.as_str() {
            "any" => TypeSpec::Any,
            "bool" | "boolean" => TypeSpec::Bool,
            "int8" => TypeSpec::Int {
                signed: true,
                bits: 8,
            },
            "int16" => TypeSpec::Int {
                signed: true,
                bits: 16,
            },
            "int32" | "int" => TypeSpec::Int {
                signed: true,
                bits: 32,
            },
            "int64" | "long" | "bigint" => TypeSpec::Int {
                signed: true,
                bits: 64,
            },
            "uint8" => TypeSpec::Int {
                signed: false,
                bits: 8,
            },
            "uint16" => TypeSpec::Int {
                signed: false,
                bits: 16,
            },
            "uint32" => TypeSpec::Int {
                signed: false,
                bits: 32,
            },
            "uint64" => TypeSpec::Int {
                signed: false,
                bits: 64,
            },
            "float16" => TypeSpec::Float { bits: 16 },
            "float32" | "float" => TypeSpec::Float { bits: 32 },
            "float64" | "double" => TypeSpec::Float { bits: 64 },
            "string" | "utf8" | "str" => TypeSpec::String,
            "binary" | "bytes" => TypeSpec::Binary,
            "date" | "date32" => TypeSpec::Date,
            "decimal" => TypeSpec::Decimal,
            "timestamp" => TypeSpec::Timestamp {
                unit: None,
                tz: None,
            },
            // Iceberg's names: microseconds, with or without a zone (stored as UTC).
            "timestamptz" => TypeSpec::Timestamp {
                unit: Some(TimeUnit::Microsecond),
                tz: Some(Some("UTC".to_string())),
            },
            "timestamptz_ns" => TypeSpec::Timestamp {
                unit: Some(TimeUnit::Nanosecond),
                tz: Some(Some("UTC".to_string())),
            },
            "timestamp_ns" => TypeSpec::Timestamp {
                unit: Some(TimeUnit::Nanosecond),
                tz: Some(None),
            },
            other => {
                let inner = other.strip_prefix("timestamp(")?.strip_suffix(')')?;
                let mut parts = inner.splitn(2, ',');
                let unit = match parts.next()?.trim() {
                    "s" => TimeUnit::Second,
                    "ms" => TimeUnit::Millisecond,
                    "us" => TimeUnit::Microsecond,
                    "ns" => TimeUnit::Nanosecond,
                    _ => return None,
                };
                // Keep the time zone's original spelling: "UTC" and "Europe/Rome" are case-sensitive.
                let tz = parts.next().map(|_| {
                    let original = text.trim();
                    let open = original.find(',').map(|i| i + 1).unwrap_or(0);
                    let zone = original[open..].trim().trim_end_matches(')').trim();
                    if zone.eq_ignore_ascii_case("none") || zone.is_empty() {
                        None
                    } else {
                        Some(zone.to_string())
                    }
                });
                TypeSpec::Timestamp {
                    unit: Some(unit),
                    tz,
                }
            }
        };
        Some(spec)
    }

    pub(crate) fn matches(&self, data_type: &DataType) -> bool {
        if let DataType::Dictionary(_, value) = data_type {
            return self.matches(value);
        }
        match self {
            TypeSpec::Any => true,
            TypeSpec::Bool => matches!(data_type, DataType::Boolean),
            TypeSpec::Int { signed, bits } => matches!(
                (signed, bits, data_type),
                (true, 8, DataType::Int8)
                    | (true, 16, DataType::Int16)
                    | (true, 32, DataType::Int32)
                    | (true, 64, DataType::Int64)
                    | (false, 8, DataType::UInt8)
                    | (false, 16, DataType::UInt16)
                    | (false, 32, DataType::UInt32)
                    | (false, 64, DataType::UInt64)
            ),
            TypeSpec::Float { bits } => matches!(
                (bits, data_type),
                (16, DataType::Float16) | (32, DataType::Float32) | (64, DataType::Float64)
            ),
            TypeSpec::String => matches!(
                data_type,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ),
            TypeSpec::Binary => matches!(
                data_type,
                DataType::Binary
                    | DataType::LargeBinary
                    | DataType::BinaryView
                    | DataType::FixedSizeBinary(_)
            ),
            TypeSpec::Date => matches!(data_type, DataType::Date32 | DataType::Date64),
            TypeSpec::Decimal => matches!(
                data_type,
                DataType::Decimal32(..)
                    | DataType::Decimal64(..)
                    | DataType::Decimal128(..)
                    | DataType::Decimal256(..)
            ),
            TypeSpec::Timestamp { unit, tz } => match data_type {
                DataType::Timestamp(actual_unit, actual_tz) => {
                    unit.as_ref().is_none_or(|u| u == actual_unit)
                        && tz
                            .as_ref()
                            .is_none_or(|z| same_zone(z.as_deref(), actual_tz.as_deref()))
                }
                _ => false,
            },
        }
    }
}

/// Whether two time zones of timestamps are the same zone; the spellings of UTC that writers
/// use (`UTC`, `+00:00`, `Z`, `Etc/UTC`, …) are one zone.
fn same_zone(a: Option<&str>, b: Option<&str>) -> bool {
    fn is_utc(zone: &str) -> bool {
        [
            "UTC", "Z", "+00:00", "+0000", "+00", "Etc/UTC", "GMT", "Etc/GMT",
        ]
        .iter()
        .any(|u| u.eq_ignore_ascii_case(zone))
    }
    match (a, b) {
        (Some(a), Some(b)) => a == b || (is_utc(a) && is_utc(b)),
        (None, None) => true,
        _ => false,
    }
}

/// An Arrow type in the notation of checks files and the docs (`int64`, `string`,
/// `timestamp(us, UTC)`), for every message that names a column's type.
pub fn type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Boolean => "bool".into(),
        DataType::Int8 => "int8".into(),
        DataType::Int16 => "int16".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::UInt8 => "uint8".into(),
        DataType::UInt16 => "uint16".into(),
        DataType::UInt32 => "uint32".into(),
        DataType::UInt64 => "uint64".into(),
        DataType::Float16 => "float16".into(),
        DataType::Float32 => "float32".into(),
        DataType::Float64 => "float64".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
        DataType::FixedSizeBinary(n) => format!("binary({n})"),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => format!("decimal({p}, {s})"),
        DataType::Timestamp(unit, tz) => {
            let unit = unit_name(*unit);
            match tz {
                Some(zone) if same_zone(Some(zone), Some("UTC")) => {
                    format!("timestamp({unit}, UTC)")
                }
                Some(zone) => format!("timestamp({unit}, {zone})"),
                None => format!("timestamp({unit})"),
            }
        }
        DataType::Time32(unit) | DataType::Time64(unit) => format!("time({})", unit_name(*unit)),
        DataType::Dictionary(_, value) => type_name(value),
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => {
            format!("list<{}>", type_name(f.data_type()))
        }
        DataType::Struct(fields) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| format!("{}: {}", f.name(), type_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        DataType::Null => "null".into(),
        other => other.to_string().to_lowercase(),
    }
}

fn unit_name(unit: TimeUnit) -> &'static str {
    match unit {
        TimeUnit::Second => "s",
        TimeUnit::Millisecond => "ms",
        TimeUnit::Microsecond => "us",
        TimeUnit::Nanosecond => "ns",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_specs_match_arrow_types() {
        let ts = TypeSpec::parse("timestamp(us, UTC)").unwrap();
        assert!(ts.matches(&DataType::Timestamp(
            TimeUnit::Microsecond,
            Some("UTC".into())
        )));
        assert!(!ts.matches(&DataType::Timestamp(TimeUnit::Microsecond, None)));
        assert!(!ts.matches(&DataType::Timestamp(
            TimeUnit::Nanosecond,
            Some("UTC".into())
        )));
        let any_ts = TypeSpec::parse("timestamp").unwrap();
        assert!(any_ts.matches(&DataType::Timestamp(TimeUnit::Second, None)));
        let s = TypeSpec::parse("string").unwrap();
        assert!(s.matches(&DataType::Utf8View));
        assert!(s.matches(&DataType::Dictionary(
            Box::new(DataType::Int32),
            Box::new(DataType::Utf8)
        )));
        assert!(!s.matches(&DataType::Int64));
        assert!(TypeSpec::parse("int64").unwrap().matches(&DataType::Int64));
        assert!(TypeSpec::parse("varchar").is_none());
    }

    #[test]
    fn every_spelling_of_utc_is_one_zone_and_types_print_as_in_the_docs() {
        let utc = |zone: &str| DataType::Timestamp(TimeUnit::Microsecond, Some(zone.into()));
        for spec in ["timestamp(us, UTC)", "timestamp(us, +00:00)", "timestamptz"] {
            let spec = TypeSpec::parse(spec).unwrap();
            for zone in ["UTC", "+00:00", "Z", "Etc/UTC"] {
                assert!(spec.matches(&utc(zone)), "{spec:?} vs {zone}");
            }
            assert!(!spec.matches(&utc("Europe/Rome")));
        }
        assert_eq!(type_name(&utc("+00:00")), "timestamp(us, UTC)");
        assert_eq!(type_name(&utc("Europe/Rome")), "timestamp(us, Europe/Rome)");
        assert_eq!(
            type_name(&DataType::Timestamp(TimeUnit::Nanosecond, None)),
            "timestamp(ns)"
        );
        assert_eq!(type_name(&DataType::LargeUtf8), "string");
        assert_eq!(type_name(&DataType::Decimal128(10, 2)), "decimal(10, 2)");
    }
}
