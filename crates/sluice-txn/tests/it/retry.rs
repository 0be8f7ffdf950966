//! Retry schedules, checked with proptest on a manual clock (no real sleeps).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use proptest::prelude::*;
use serde_json::json;
use sluice_txn::{Engine, ManualClock, ObjectStoreJournal, RetryPolicy, State, StepError};

fn policy() -> impl Strategy<Value = RetryPolicy> {
    (1u32..8, 1u64..500, 1u64..5_000).prop_map(|(attempts, base, max)| {
        RetryPolicy::new(attempts)
            .with_base_delay(Duration::from_millis(base))
            .with_max_delay(Duration::from_millis(max))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn caps_are_monotone_and_bounded(p in policy(), retry in 1u32..200) {
        let cap = p.delay_cap(retry);
        prop_assert!(cap <= p.max_delay);
        prop_assert!(cap <= p.delay_cap(retry + 1));
        prop_assert!(p.delay_cap(1) == p.base_delay.min(p.max_delay));
        if retry < 30 {
            let uncapped = p.base_delay * 2u32.pow(retry - 1);
            prop_assert_eq!(cap, uncapped.min(p.max_delay));
        }
    }

    #[test]
    fn jitter_stays_within_zero_and_the_cap(p in policy(), retry in 1u32..64, unit in 0.0f64..=1.0) {
        let d = p.jittered_delay(retry, unit);
        prop_assert!(d <= p.delay_cap(retry));
        prop_assert!(p.jittered_delay(retry, 0.0) == Duration::ZERO);
        prop_assert!(p.jittered_delay(retry, 1.0) == p.delay_cap(retry));
        let random = p.delay(retry);
        prop_assert!(random <= p.delay_cap(retry));
    }

    #[test]
    fn a_step_sleeps_within_the_schedule_and_stops_at_max_attempts(
        p in policy(),
        transient_failures in 0u32..10,
        deadline_ms in proptest::option::of(1u64..20_000),
    ) {
        let p = match deadline_ms {
            Some(ms) => p.with_deadline(Duration::from_millis(ms)),
            None => p,
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let clock = ManualClock::new(Utc::now());
        let engine = Engine::builder(ObjectStoreJournal::in_memory())
            .clock(Arc::new(clock.clone()))
            .build();
        let outcome = rt.block_on(engine.transaction("k").run(async |tx| {
            tx.step("flaky")
                .retry(p.clone())
                .run(async |step| {
                    if step.attempt() <= transient_failures {
                        Err(StepError::transient("try again"))
                    } else {
                        Ok(step.attempt())
                    }
                })
                .await
                .map(|a| json!(a))
        })).unwrap();

        let sleeps = clock.sleeps();
        for (i, slept) in sleeps.iter().enumerate() {
            let retry = u32::try_from(i).unwrap() + 1;
            prop_assert!(*slept <= p.delay_cap(retry), "sleep {} of {:?} over cap {:?}", retry, slept, p.delay_cap(retry));
        }
        let total: Duration = sleeps.iter().sum();
        if let Some(deadline) = p.deadline {
            prop_assert!(total <= deadline, "slept {:?} past the deadline {:?}", total, deadline);
        }
        let attempts = u32::try_from(sleeps.len()).unwrap() + 1;
        prop_assert!(attempts <= p.max_attempts);
        let report = rt.block_on(engine.show_run(outcome.run_id())).unwrap();
        prop_assert_eq!(report.steps[0].attempts, attempts);
        if transient_failures < attempts {
            prop_assert_eq!(outcome.state(), State::Completed);
            prop_assert_eq!(attempts, transient_failures + 1);
        } else {
            prop_assert_eq!(outcome.state(), State::RolledBack);
            // It stopped because attempts ran out, or (only with a deadline) because the
            // next delay would have passed the deadline.
            prop_assert!(
                attempts == p.max_attempts || p.deadline.is_some(),
                "stopped after {} of {} attempts without a deadline", attempts, p.max_attempts
            );
        }
        // The recorded backoffs are the ones slept.
        let recorded: Vec<u64> = report.steps[0].errors.iter().filter_map(|e| e.retry_in_ms).collect();
        let slept_ms: Vec<u64> = sleeps.iter().map(|d| u64::try_from(d.as_millis()).unwrap()).collect();
        prop_assert_eq!(recorded, slept_ms);
    }
}
