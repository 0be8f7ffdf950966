//! What a scenario's figures must show: safety always, availability when strict.

use super::{MAX_ATTEMPTS, Outcome, Scenario};

impl Outcome {
    /// Safety violations: these fail the test whatever the strictness.
    pub(super) fn safety_violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        let mut add = |what: &str, items: &[String]| {
            if !items.is_empty() {
                v.push(format!("{what}: {}", items.join("; ")));
            }
        };
        add(
            "files lost",
            &self
                .lost_files
                .iter()
                .map(|i| format!("batch {i}"))
                .collect::<Vec<_>>(),
        );
        add(
            "files duplicated",
            &self
                .duplicated_files
                .iter()
                .map(|i| format!("batch {i}"))
                .collect::<Vec<_>>(),
        );
        add("refs left", &self.leftover_refs);
        add("referenced files missing", &self.missing);
        add("panics", &self.panics);
        add("hangs", &self.hangs);
        add("secret in output", &self.secret_leaks);
        add("fault-free convergence failed", &self.final_failures);
        if self.foreign_rows > 0 {
            v.push(format!(
                "{} rows in main from no source file",
                self.foreign_rows
            ));
        }
        if !self.sum_matches && v.is_empty() {
            v.push("sum of amount in main differs from the source files".to_string());
        }
        v
    }

    /// Availability shortfalls against the acceptance targets.
    pub(super) fn availability_violations(&self, scenario: &Scenario) -> Vec<String> {
        let mut v = Vec::new();
        let target = scenario.attempt_target();
        for (batch, attempts) in self.unkilled_attempts.iter().enumerate() {
            if *attempts > target {
                v.push(format!(
                    "batch {batch} needed {} attempts (target {target})",
                    describe_attempts(*attempts)
                ));
            }
        }
        if !self.orphans.is_empty() {
            v.push(format!(
                "{} orphan files, e.g. {}",
                self.orphans.len(),
                self.orphans[0]
            ));
        }
        v
    }
}

pub(super) fn describe_attempts(attempts: u32) -> String {
    if attempts > MAX_ATTEMPTS {
        format!("more than {MAX_ATTEMPTS}")
    } else {
        attempts.to_string()
    }
}
