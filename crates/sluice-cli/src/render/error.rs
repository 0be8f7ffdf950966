//! How a failed command's error reads on the terminal: the chain of causes, each said once,
//! and what to do next in `sluice` words.

/// The error and its causes joined by `: `, skipping every cause whose text is already part
/// of what was said (libraries and `object_store` repeat their cause in their own message),
/// followed by a hint when the error is one a user can act on. Text from the iceberg library
/// loses its `Kind =>` prefix and its `, source:` tail (the source follows as a cause).
pub fn message(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let whole = cause.to_string();
        let said = without_library_form(&whole);
        if said.is_empty() || text.contains(said) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(said);
        if let Some(next) = lake_next_step(cause) {
            text.push_str(&next);
        }
    }
    let mut text = explain_missing_credentials(text);
    if let Some(hint) = hint(error) {
        text.push('\n');
        text.push_str(hint);
    }
    text
}

/// "DataInvalid => message" or "Unexpected, context: { … } => message, source: …" → "message".
fn without_library_form(whole: &str) -> &str {
    let mut part = match whole.split_once(" => ") {
        Some((head, rest))
            if head
                .split(',')
                .next()
                .is_some_and(|kind| !kind.trim().contains(' ')) =>
        {
            rest
        }
        _ => whole,
    };
    if let Some((head, _)) = part.split_once(", source: ") {
        part = head;
    }
    part.trim()
}

/// Without credentials, the AWS client falls back to the instance metadata service, and its
/// failure (`PUT http://169.254.169.254/latest/api/token … 403`) hides the real cause.
fn explain_missing_credentials(text: String) -> String {
    let Some(at) = text.find("169.254.169.254") else {
        return text;
    };
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        return text;
    }
    let what = text[..at]
        .rfind(": ")
        .map(|end| &text[..end])
        .unwrap_or("cannot reach S3");
    format!(
        "{what}: no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and AWS_REGION; on a cloud machine, give it an instance role)"
    )
}

/// What to do about a lake error whose remedy is a `sluice` command, said right after it.
fn lake_next_step(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
    let lake = cause
        .downcast_ref::<sluice_lake::Error>()
        .or_else(|| match cause.downcast_ref::<sluice_wap::Error>() {
            Some(sluice_wap::Error::Lake(e)) => Some(e),
            _ => None,
        })
        .or_else(|| match cause.downcast_ref::<sluice_sql::Error>() {
            Some(sluice_sql::Error::Lake(e)) => Some(e),
            _ => None,
        })?;
    next_step(lake)
}

/// What to do about a lake error, in `sluice` words, to say right after it (also after the
/// error of a failed run).
pub fn next_step(lake: &sluice_lake::Error) -> Option<String> {
    match lake {
        sluice_lake::Error::TableNotFound { table } => Some(format!(
            "; a first `sluice run --table {table}` creates it from its source files, or check the name (list tables with `sluice tables`)"
        )),
        sluice_lake::Error::NamespaceNotFound { .. } => {
            Some("; list the tables of every namespace with `sluice tables`".to_string())
        }
        sluice_lake::Error::StoredDifferently { nanoseconds, .. } => Some(if *nanoseconds {
            " (`sluice run --mode copy`; add `--truncate-timestamps` if some values have a sub-microsecond part)".to_string()
        } else {
            " (`sluice run --mode copy`)".to_string()
        }),
        sluice_lake::Error::BranchNotFound { table, .. } => {
            Some(format!("; list branches with `sluice branch list {table}`"))
        }
        _ => None,
    }
}

/// What to do about errors whose remedy is a `sluice` command.
fn hint(error: &anyhow::Error) -> Option<&'static str> {
    let txn = error.chain().find_map(|cause| {
        cause.downcast_ref::<sluice_txn::Error>().or_else(|| {
            match cause.downcast_ref::<sluice_wap::Error>() {
                Some(sluice_wap::Error::Txn(e)) => Some(e),
                _ => None,
            }
        })
    })?;
    match txn {
        sluice_txn::Error::LeaseHeld { .. } => Some(
            "another `sluice run` of these files is in progress; let it finish and run again. \
             If its process was killed on another machine, run `sluice recover --wait` \
             (a run killed on this machine is taken over at once)",
        ),
        sluice_txn::Error::LeaseWaitTimeout { .. } => Some(
            "the run holding these files did not finish in time; see `sluice runs list`, \
             then run `sluice recover --wait`",
        ),
        sluice_txn::Error::Fenced { .. } => Some(
            "this run stalled past its lease and another process took it over; \
             see `sluice runs list` and run again",
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::fmt;

    /// An error that repeats its cause in its message, as library errors do.
    #[derive(Debug)]
    struct Repeating {
        message: &'static str,
        source: Option<Box<Repeating>>,
    }

    impl fmt::Display for Repeating {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.message)?;
            match &self.source {
                Some(source) => write!(f, ": {source}"),
                None => Ok(()),
            }
        }
    }

    impl std::error::Error for Repeating {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.source
                .as_deref()
                .map(|s| s as &(dyn std::error::Error + 'static))
        }
    }

    fn inner() -> Repeating {
        Repeating {
            message: "Error getting list response body",
            source: None,
        }
    }

    #[test]
    fn every_cause_is_said_once() {
        let error = anyhow::Error::new(Repeating {
            message: "journal storage failed to list journal/leases/k",
            source: Some(Box::new(Repeating {
                message: "Generic S3 error",
                source: Some(Box::new(inner())),
            })),
        })
        .context("cannot recover");
        let text = message(&error);
        assert_eq!(
            text,
            "cannot recover: journal storage failed to list journal/leases/k: Generic S3 error: Error getting list response body"
        );
        assert_eq!(text.matches("Error getting list response body").count(), 1);
    }

    #[test]
    fn the_iceberg_library_form_is_dropped() {
        let error = anyhow::Error::new(Repeating {
            message: "DataInvalid => UInt64 is not supported, source: boom",
            source: Some(Box::new(Repeating {
                message: "boom",
                source: None,
            })),
        });
        assert_eq!(message(&error), "UInt64 is not supported: boom");
    }

    #[test]
    fn a_cause_not_yet_said_is_kept() {
        let error = anyhow::Error::new(inner()).context("cannot list the source s3://raw");
        assert_eq!(
            message(&error),
            "cannot list the source s3://raw: Error getting list response body"
        );
    }

    #[test]
    fn a_missing_table_or_branch_says_which_command_helps() {
        let missing = sluice_lake::Error::TableNotFound {
            table: "ns.events".to_string(),
        };
        let error = anyhow::Error::new(sluice_wap::Error::Lake(missing)).context("cannot scan");
        assert_eq!(
            message(&error),
            "cannot scan: table ns.events does not exist; a first `sluice run --table ns.events` creates it from its source files, or check the name (list tables with `sluice tables`)"
        );
        let branch = anyhow::Error::new(sluice_lake::Error::BranchNotFound {
            table: "ns.events".to_string(),
            branch: "dev".to_string(),
        });
        assert_eq!(
            message(&branch),
            "branch `dev` does not exist in table ns.events; list branches with `sluice branch list ns.events`"
        );
        // The library itself names no command.
        let bare = sluice_lake::Error::NamespaceNotFound {
            namespace: "ns".to_string(),
        };
        assert!(!bare.to_string().contains("sluice"), "{bare}");
    }

    #[test]
    fn a_held_lease_says_what_to_run_and_names_no_library_item() {
        let error = anyhow::Error::new(sluice_wap::Error::Txn(sluice_txn::Error::LeaseHeld {
            key: "abc".to_string(),
            holder: "host:42:beef".to_string(),
            token: 1,
            expires_at: chrono::Utc::now(),
        }));
        let text = message(&error);
        assert!(text.contains("sluice recover --wait"), "{text}");
        assert!(
            !text.contains("LeaseConflict") && !text.contains("::"),
            "{text}"
        );
    }
}
