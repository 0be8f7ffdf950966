//! The markdown figures of a scenario.

use std::collections::BTreeMap;
use std::io::Write;

use sluice_tests::fault_proxy::{FaultKind, FaultStats};

use super::verdict::describe_attempts;
use super::{Outcome, Scenario};

pub(super) const REPORT_HEADER: &str = "\
| scenario | batches | runs | kills | requests | faults injected | attempts per batch | batches over target | lost | duplicated | orphans | refs left | panics | hangs | secrets | time |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

/// One markdown row: the figures of `outcome`.
pub(super) fn report_row(scenario: &Scenario, outcome: &Outcome) -> String {
    let mut histogram: BTreeMap<u32, u32> = BTreeMap::new();
    for a in &outcome.unkilled_attempts {
        *histogram.entry(*a).or_default() += 1;
    }
    let attempts = histogram
        .iter()
        .map(|(a, n)| format!("{}×{n}", describe_attempts(*a).replace("more than ", ">")))
        .collect::<Vec<_>>()
        .join(" ");
    let over = outcome
        .unkilled_attempts
        .iter()
        .filter(|a| **a > scenario.attempt_target())
        .count();
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {over} (≤{}) | {} | {} | {} | {} | {} | {} | {} | {:.0}s |",
        scenario.name,
        scenario.batches,
        outcome.runs,
        outcome.kills,
        outcome.stats.requests(),
        fault_summary(&outcome.stats),
        attempts,
        scenario.attempt_target(),
        outcome.lost_files.len(),
        outcome.duplicated_files.len(),
        outcome.orphans.len(),
        outcome.leftover_refs.len(),
        outcome.panics.len(),
        outcome.hangs.len(),
        outcome.secret_leaks.len(),
        outcome.elapsed.as_secs_f64(),
    )
}

fn fault_summary(stats: &FaultStats) -> String {
    let parts: Vec<String> = FaultKind::ALL
        .iter()
        .filter(|k| stats.faults_of(**k) > 0)
        .map(|k| format!("{} {}", k.name(), stats.faults_of(*k)))
        .collect();
    if parts.is_empty() {
        "0".to_string()
    } else {
        format!("{} ({})", stats.faults(), parts.join(", "))
    }
}

/// Writes past the test harness's capture, so the figures show for passing tests too.
pub(super) fn print_now(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}
