//! The `accepted_values` kind.

use super::*;

const ACCEPTED: &str = r#"
[[check]]
kind = "accepted_values"
column = "event_type"
values = ["view", "click", "purchase"]
"#;

#[test]
fn accepted_values_pass() {
    let r = first(
        ACCEPTED,
        &[batch(vec![(
            "event_type",
            strs(vec![Some("view"), Some("click")]),
        )])],
    );
    assert_eq!(
        (r.status, r.rows_checked, r.rows_failing),
        (Status::Pass, 2, 0)
    );
}

#[test]
fn accepted_values_fail() {
    let r = first(
        ACCEPTED,
        &[batch(vec![(
            "event_type",
            strs(vec![Some("view"), Some("refund"), Some("VIEW")]),
        )])],
    );
    assert_eq!((r.status, r.rows_failing), (Status::Fail, 2));
    assert_eq!(r.samples[0]["event_type"], json!("refund"));
}

#[test]
fn accepted_values_tell_apart_strings_that_share_a_prefix_or_a_length() {
    let toml = r#"
[[check]]
kind = "accepted_values"
column = "event_type"
values = ["add_to_cart", "", "a", "ab", "abc", "abcdefgh", "abcdefgh1"]
"#;
    let accepted = ["add_to_cart", "", "a", "ab", "abc", "abcdefgh", "abcdefgh1"];
    let rejected = [
        "add_to_carx",  // same length and first eight bytes
        "add_to_car",   // same first eight bytes, shorter
        "add_to_cart_", // longer
        "abcdefgh2",
        "abcdefg",
        "b",
        "ac",
        "abd",
        "bbc",
        "a\0",
        "\0",
    ];
    let values: Vec<Option<&str>> = accepted.iter().chain(&rejected).map(|v| Some(*v)).collect();
    let r = first(toml, &[batch(vec![("event_type", strs(values))])]);
    assert_eq!(
        (r.rows_checked, r.rows_failing),
        (
            (accepted.len() + rejected.len()) as u64,
            rejected.len() as u64
        )
    );
}

#[test]
fn accepted_values_judge_dictionary_encoded_strings_as_plain_ones() {
    use arrow_array::DictionaryArray;
    use arrow_array::types::Int32Type;
    // "zzz" is in the dictionary but no row uses it; a null key and a null value are nulls.
    let dictionary = vec![
        Some("view"),
        Some("refund"),
        Some("click"),
        Some("zzz"),
        None,
    ];
    let keys = vec![Some(0), Some(1), None, Some(2), Some(4), Some(1), Some(0)];
    let plain: Vec<Option<&str>> = keys
        .iter()
        .map(|k: &Option<i32>| k.and_then(|k| dictionary[k as usize]))
        .collect();
    let encoded: ArrayRef = Arc::new(
        DictionaryArray::<Int32Type>::try_new(
            arrow_array::Int32Array::from(keys),
            Arc::new(arrow_array::StringArray::from(dictionary)),
        )
        .unwrap(),
    );
    for many in [false, true] {
        // More than eight accepted values take the hashed set.
        let extra = if many {
            r#", "a", "b", "c", "d", "e", "f""#
        } else {
            ""
        };
        let toml = format!(
            "[[check]]\nkind = \"accepted_values\"\ncolumn = \"event_type\"\n\
             values = [\"view\", \"click\", \"purchase\"{extra}]\n"
        );
        let r = first(&toml, &[batch(vec![("event_type", encoded.clone())])]);
        let p = first(&toml, &[batch(vec![("event_type", strs(plain.clone()))])]);
        assert_eq!((r.status, r.rows_failing), (Status::Fail, 2), "{toml}");
        assert_eq!(r.samples[0]["event_type"], json!("refund"));
        assert_eq!(
            (r.rows_checked, r.rows_failing),
            (p.rows_checked, p.rows_failing)
        );
    }
}

#[test]
fn accepted_values_mostly_edge() {
    let toml = format!("{ACCEPTED}mostly = 0.75\n");
    let mk = |bad: usize| {
        let v: Vec<Option<&str>> = (0..4)
            .map(|i| Some(if i < bad { "x" } else { "view" }))
            .collect();
        batch(vec![("event_type", strs(v))])
    };
    assert_eq!(first(&toml, &[mk(1)]).status, Status::Pass);
    assert_eq!(first(&toml, &[mk(2)]).status, Status::Fail);
}

#[test]
fn accepted_values_skip_nulls() {
    let r = first(
        ACCEPTED,
        &[batch(vec![(
            "event_type",
            strs(vec![None, Some("view"), None]),
        )])],
    );
    assert_eq!(
        (r.status, r.rows_checked, r.rows_failing),
        (Status::Pass, 1, 0)
    );
}

#[test]
fn accepted_values_empty_input_passes() {
    let b = batch(vec![("event_type", strs(vec![Some("view")]))]);
    let r = first(ACCEPTED, &[empty_like(&b)]);
    assert_eq!((r.status, r.rows_checked), (Status::Pass, 0));
}

#[test]
fn accepted_values_integers_and_other_types() {
    let b = batch(vec![
        (
            "code",
            Arc::new(Int32Array::from(vec![Some(1), Some(2), Some(5)])) as ArrayRef,
        ),
        ("x", floats(vec![Some(0.5), Some(1.0), Some(2.0)])),
    ]);
    let r = first(
        "[[check]]\nkind = \"accepted_values\"\ncolumn = \"code\"\nvalues = [1, 2]\n",
        &[b.clone()],
    );
    assert_eq!(r.rows_failing, 1);
    let r = first(
        "[[check]]\nkind = \"accepted_values\"\ncolumn = \"x\"\nvalues = [0.5, 2]\n",
        &[b],
    );
    assert_eq!(r.rows_failing, 1);
}
