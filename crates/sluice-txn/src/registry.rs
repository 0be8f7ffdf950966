//! Named hook handlers, and the error type that steps and hooks return.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;

/// The cause a [`StepError`] keeps, shared by its clones.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// The failure of a step attempt or a hook, marked transient (worth retrying) or not.
///
/// Built from an error value ([`StepError::transient_cause`], [`StepError::permanent_cause`]),
/// it keeps that value as its cause, so that whoever receives the failure (an
/// [`Outcome`](crate::Outcome)) can match on it with [`StepError::downcast_ref`] instead of
/// parsing its message.
#[derive(Debug, Clone)]
pub struct StepError {
    message: String,
    transient: bool,
    cause: Option<Cause>,
}

impl PartialEq for StepError {
    /// Two failures are equal when they say the same and are retried alike (the causes are
    /// not compared).
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message && self.transient == other.transient
    }
}

impl Eq for StepError {}

impl StepError {
    /// A failure that may go away on retry (a timeout, a throttled request, a conflict).
    pub fn transient(error: impl fmt::Display) -> Self {
        Self {
            message: error.to_string(),
            transient: true,
            cause: None,
        }
    }

    /// A failure that retrying will not fix (bad input, a failed audit).
    pub fn permanent(error: impl fmt::Display) -> Self {
        Self {
            message: error.to_string(),
            transient: false,
            cause: None,
        }
    }

    /// [`StepError::transient`], keeping `error` as the cause.
    pub fn transient_cause(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            message: error.to_string(),
            transient: true,
            cause: Some(Arc::new(error)),
        }
    }

    /// [`StepError::permanent`], keeping `error` as the cause.
    pub fn permanent_cause(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            message: error.to_string(),
            transient: false,
            cause: Some(Arc::new(error)),
        }
    }

    /// The same failure, permanent, with `message` in front of what it said (the cause is
    /// kept).
    pub fn context(&self, message: impl fmt::Display) -> Self {
        Self {
            message: format!("{message}: {}", self.message),
            transient: false,
            cause: self.cause.clone(),
        }
    }

    /// The failure a step ends with after its last attempt: permanent, saying what went wrong
    /// first, and how often it was tried only when that was more than once.
    pub fn gave_up(&self, step: &str, attempts: u32) -> Self {
        let message = if attempts > 1 {
            format!(
                "{} (step {step:?} gave up after {attempts} attempts)",
                self.message
            )
        } else {
            self.message.clone()
        };
        Self {
            message,
            transient: false,
            cause: self.cause.clone(),
        }
    }

    /// The same failure said differently (the cause and the retry marking are kept).
    pub fn with_message(&self, message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            transient: self.transient,
            cause: self.cause.clone(),
        }
    }

    /// Whether the retry policy may retry it.
    pub fn is_transient(&self) -> bool {
        self.transient
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error value the failure was built from, if any.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.cause.as_deref()
    }

    /// The cause, if it is an `E`.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.cause.as_deref().and_then(|c| c.downcast_ref::<E>())
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StepError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

impl From<crate::Error> for StepError {
    fn from(error: crate::Error) -> Self {
        if error.is_retryable() {
            Self::transient_cause(error)
        } else {
            Self::permanent_cause(error)
        }
    }
}

/// Mark the error of a `Result` as transient or permanent: `fetch().await.transient()?`.
pub trait ResultExt<T> {
    /// Map the error to [`StepError::transient`].
    fn transient(self) -> Result<T, StepError>;
    /// Map the error to [`StepError::permanent`].
    fn permanent(self) -> Result<T, StepError>;
}

impl<T, E: fmt::Display> ResultExt<T> for Result<T, E> {
    fn transient(self) -> Result<T, StepError> {
        self.map_err(StepError::transient)
    }
    fn permanent(self) -> Result<T, StepError> {
        self.map_err(StepError::permanent)
    }
}

type Handler = Arc<dyn Fn(Value) -> BoxFuture<'static, Result<(), StepError>> + Send + Sync>;

/// Maps hook names to handlers, so that any process (the one that staged a hook, or a
/// later `recover()`) can run a journalled compensation or commit action.
///
/// Handlers receive the payload that was journalled when the hook was staged. They may
/// run more than once (a crash can interrupt one after it acted but before its completion
/// was recorded) and may run for a side effect that never happened (a crash between
/// staging and acting), so they must be idempotent and tolerate "nothing to undo".
///
/// ```
/// use sluice_txn::{Registry, StepError};
///
/// let registry = Registry::new().with_handler("delete-file", |payload| async move {
///     let path = payload["path"].as_str().ok_or_else(|| StepError::permanent("no path"))?;
///     match std::fs::remove_file(path) {
///         Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StepError::transient(e)),
///         _ => Ok(()),
///     }
/// });
/// assert!(registry.contains("delete-file"));
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<String, Handler>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("handlers", &self.handlers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register (or replace) the handler for `name`.
    pub fn register<F, Fut>(&mut self, name: impl Into<String>, handler: F)
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), StepError>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |payload| handler(payload).boxed());
        self.handlers.insert(name.into(), handler);
    }

    /// Builder form of [`register`](Registry::register).
    pub fn with_handler<F, Fut>(mut self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), StepError>> + Send + 'static,
    {
        self.register(name, handler);
        self
    }

    /// Whether a handler is registered for `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.handlers.contains_key(name)
    }

    /// The registered names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }

    /// Run the handler for `name`, catching a panic as a permanent failure.
    pub(crate) async fn invoke(&self, name: &str, payload: Value) -> Result<(), StepError> {
        let Some(handler) = self.handlers.get(name) else {
            return Err(StepError::permanent(format!(
                "no handler is registered for hook {name:?}; register it with Registry::register"
            )));
        };
        match std::panic::AssertUnwindSafe(handler(payload))
            .catch_unwind()
            .await
        {
            Ok(result) => result,
            Err(panic) => Err(StepError::permanent(format!(
                "hook {name:?} panicked: {}",
                panic_message(&*panic)
            ))),
        }
    }
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
