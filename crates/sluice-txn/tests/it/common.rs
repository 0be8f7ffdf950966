use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use sluice_txn::{
    Engine, EngineBuilder, ObjectStoreJournal, Outcome, Registry, RetryPolicy, StepError,
    Transaction,
};

/// Records what hooks did, in order, and makes chosen hooks fail.
#[derive(Clone, Default)]
pub struct Recorder {
    pub log: Arc<Mutex<Vec<String>>>,
    /// label -> remaining transient failures (u32::MAX: always fail).
    pub failures: Arc<Mutex<HashMap<String, u32>>>,
}

impl Recorder {
    pub fn entries(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn fail(&self, label: &str, times: u32) {
        self.failures
            .lock()
            .unwrap()
            .insert(label.to_string(), times);
    }

    /// A registry whose `record` handler appends `payload.label` to the log (after
    /// failing transiently as configured), and whose `broken` handler fails permanently.
    pub fn registry(&self) -> Registry {
        let me = self.clone();
        Registry::new()
            .with_handler("record", move |payload: Value| {
                let me = me.clone();
                async move {
                    let label = payload["label"].as_str().unwrap_or("?").to_string();
                    {
                        let mut failures = me.failures.lock().unwrap();
                        if let Some(left) = failures.get_mut(&label).filter(|n| **n > 0) {
                            if *left != u32::MAX {
                                *left -= 1;
                            }
                            me.log.lock().unwrap().push(format!("failed {label}"));
                            return Err(StepError::transient(format!("{label} is unavailable")));
                        }
                    }
                    me.log.lock().unwrap().push(label);
                    Ok(())
                }
            })
            .with_handler("broken", |_| async {
                Err(StepError::permanent("this hook can never succeed"))
            })
    }
}

/// Hook retries without real waiting.
pub fn fast_hooks() -> RetryPolicy {
    RetryPolicy::new(4)
        .with_base_delay(Duration::from_millis(1))
        .with_max_delay(Duration::from_millis(2))
}

pub fn engine_in(dir: &Path, recorder: &Recorder) -> Engine {
    builder_in(dir).registry(recorder.registry()).build()
}

pub fn builder_in(dir: &Path) -> EngineBuilder {
    Engine::builder(ObjectStoreJournal::local_dir(dir).unwrap()).hook_retry(fast_hooks())
}

pub fn label(l: &str) -> Value {
    serde_json::json!({ "label": l })
}

/// Runs the transaction `key` to its outcome; the engine itself (journal, lease) must not fail.
pub async fn run_txn(
    engine: &Engine,
    key: &str,
    body: impl AsyncFnOnce(Transaction) -> Result<Value, StepError>,
) -> Outcome {
    engine
        .transaction(key)
        .run(body)
        .await
        .unwrap_or_else(|e| panic!("transaction {key}: {e}"))
}

/// For each `i`, a step `s{i}` that stages the compensation `undo-{i}` and the commit action
/// `commit-{i}` and returns `i`: work whose hooks show in the log in the order they ran.
pub async fn steps_with_hooks(
    tx: &Transaction,
    steps: impl IntoIterator<Item = usize>,
) -> Result<(), StepError> {
    for i in steps {
        tx.step(format!("s{i}"))
            .run(async |step| {
                step.stage_compensation("record", label(&format!("undo-{i}")))
                    .await?;
                step.stage_commit_action("record", label(&format!("commit-{i}")))
                    .await?;
                Ok(i)
            })
            .await?;
    }
    Ok(())
}

/// Stages the compensation `record` with each label, in order.
pub async fn stage_compensations(tx: &Transaction, labels: &[&str]) -> Result<(), StepError> {
    for l in labels {
        tx.stage_compensation("record", label(l)).await?;
    }
    Ok(())
}
