//! Expiring, fenced leases built only from create-if-not-exists appends.
//!
//! A lease is a stream of `Acquired`, `Renewed` and `Released` records. Whoever appends
//! `Acquired` with token `n + 1` at the next free sequence number holds the lease; since
//! two processes cannot both create the same sequence number, at most one wins. A holder
//! renews by appending `Renewed`; if a taker appended first, the renewal's slot is taken,
//! and reading it back tells the holder it lost the lease.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::clock::Clock;
use crate::events::LeaseEvent;
use crate::holder::ProcessIdentity;
use crate::journal::{Journal, Record, decode_stream, encode};
use crate::{Error, Result};

/// The current holder of a lease as read from its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaseHolder {
    pub token: u64,
    pub holder: String,
    pub expires_at: DateTime<Utc>,
    pub released: bool,
    /// The holder's host and process, when its record says.
    pub process: Option<ProcessIdentity>,
}

impl LeaseHolder {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        !self.released && self.expires_at > now
    }

    /// Whether the lease still binds `local`: not released, not expired, and not held by
    /// a process that `local` can see has ended (same host; see [`ProcessIdentity`]).
    pub fn binds(&self, now: DateTime<Utc>, local: &ProcessIdentity) -> bool {
        self.is_live(now)
            && !self
                .process
                .as_ref()
                .is_some_and(|p| p.is_provably_dead(local))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct LeaseView {
    pub next_seq: u64,
    pub current: Option<LeaseHolder>,
}

pub(crate) fn lease_stream(name: &str) -> String {
    format!("leases/{name}")
}

/// Read a lease's state from the tail of its stream.
///
/// Every append contends for the next sequence number, so the stream is linear: its last
/// intact record was written by the current token's holder and says all there is to know
/// (who, which token, until when, released or not). Only damaged records are stepped over,
/// so reading a lease costs one listing and, normally, one read however long its history.
pub(crate) async fn read_lease(journal: &dyn Journal, name: &str) -> Result<LeaseView> {
    let stream = lease_stream(name);
    let seqs = journal.sequence_numbers(&stream).await?;
    let next_seq = seqs.last().map_or(0, |s| s + 1);
    for seq in seqs.iter().rev() {
        let raw = journal.read(&stream, *seq).await?;
        let Some(first) = raw.into_iter().next().filter(|(s, _)| s == seq) else {
            continue;
        };
        let decoded = decode_stream::<LeaseEvent>(vec![first], *seq);
        let Some((_, record)) = decoded.records.into_iter().next() else {
            continue;
        };
        let (holder, expires_at, released, process) = match record.event {
            LeaseEvent::Acquired {
                holder,
                expires_at,
                process,
                ..
            }
            | LeaseEvent::Renewed {
                holder,
                expires_at,
                process,
            } => (holder, expires_at, false, process),
            LeaseEvent::Released { holder } => (holder, record.at, true, None),
        };
        return Ok(LeaseView {
            next_seq,
            current: Some(LeaseHolder {
                token: record.token,
                holder,
                expires_at,
                released,
                process,
            }),
        });
    }
    Ok(LeaseView {
        next_seq,
        current: None,
    })
}

/// A lease this process holds.
#[derive(Debug)]
pub(crate) struct Lease {
    pub name: String,
    pub token: u64,
    pub holder: String,
    pub process: ProcessIdentity,
    pub ttl: Duration,
    next_seq: Mutex<u64>,
    lost: AtomicBool,
}

pub(crate) enum AcquireOutcome {
    Acquired(Arc<Lease>),
    Busy(LeaseHolder),
}

/// Who asks for a lease: the engine's holder id and the process it runs in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claimant<'a> {
    pub holder: &'a str,
    pub process: &'a ProcessIdentity,
}

fn expiry(clock: &dyn Clock, ttl: Duration) -> DateTime<Utc> {
    clock.now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

/// How often an append that failed with an ambiguous storage error is sent again.
const AMBIGUOUS_RESENDS: u32 = 3;

/// Take the lease if it is free, released, expired, or held by a process on this host that
/// has provably ended.
pub(crate) async fn try_acquire(
    journal: &dyn Journal,
    clock: &dyn Clock,
    name: &str,
    claimant: Claimant<'_>,
    ttl: Duration,
) -> Result<AcquireOutcome> {
    let stream = lease_stream(name);
    loop {
        let view = read_lease(journal, name).await?;
        if let Some(current) = view.current.as_ref().filter(|c| c.is_live(clock.now())) {
            if current.binds(clock.now(), claimant.process) {
                return Ok(AcquireOutcome::Busy(current.clone()));
            }
            tracing::info!(
                lease = %name,
                holder = %current.holder,
                token = current.token,
                "the lease holder's process has ended on this host; taking the lease over"
            );
        }
        let token = view.current.as_ref().map_or(1, |c| c.token + 1);
        let record = Record {
            at: clock.now(),
            token,
            event: LeaseEvent::Acquired {
                holder: claimant.holder.to_string(),
                expires_at: expiry(clock, ttl),
                process: Some(claimant.process.clone()),
                claim: Some(Uuid::new_v4()),
            },
        };
        let bytes = encode(&stream, &record)?;
        let mut storage_failures = 0u32;
        // The same bytes are sent again after an ambiguous failure: the journal recognises
        // them if an earlier attempt was stored, and the claim's nonce makes them ours alone.
        let stored = loop {
            match journal.append(&stream, view.next_seq, bytes.clone()).await {
                Ok(()) => break true,
                // Someone else appended first: look again.
                Err(Error::AppendConflict { .. }) => break false,
                Err(e @ Error::Storage { .. }) if storage_failures + 1 < AMBIGUOUS_RESENDS => {
                    storage_failures += 1;
                    tracing::warn!(lease = %name, error = %e, "lease append failed; sending it again");
                    clock
                        .sleep(Duration::from_millis(50 * u64::from(storage_failures)))
                        .await;
                }
                Err(e) => return Err(e),
            }
        };
        if stored {
            return Ok(AcquireOutcome::Acquired(Arc::new(Lease {
                name: name.to_string(),
                token,
                holder: claimant.holder.to_string(),
                process: claimant.process.clone(),
                ttl,
                next_seq: Mutex::new(view.next_seq + 1),
                lost: AtomicBool::new(false),
            })));
        }
    }
}

impl Lease {
    /// Whether a renewal found that another process took the lease over.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    async fn append(
        &self,
        journal: &dyn Journal,
        clock: &dyn Clock,
        event: LeaseEvent,
    ) -> Result<bool> {
        let stream = lease_stream(&self.name);
        let mut next_seq = self.next_seq.lock().await;
        let mut storage_failures = 0u32;
        // After an ambiguous storage error the same bytes go to the same slot again: the
        // journal recognises them if the first attempt was stored.
        let mut resend: Option<Bytes> = None;
        loop {
            let bytes = match resend.take() {
                Some(bytes) => bytes,
                None => encode(
                    &stream,
                    &Record {
                        at: clock.now(),
                        token: self.token,
                        event: event.clone(),
                    },
                )?,
            };
            match journal.append(&stream, *next_seq, bytes.clone()).await {
                Ok(()) => {
                    *next_seq += 1;
                    return Ok(true);
                }
                Err(e @ Error::Storage { .. }) if storage_failures + 1 < AMBIGUOUS_RESENDS => {
                    storage_failures += 1;
                    tracing::warn!(lease = %self.name, error = %e, "lease append failed; sending it again");
                    clock
                        .sleep(Duration::from_millis(50 * u64::from(storage_failures)))
                        .await;
                    resend = Some(bytes);
                }
                // Another record took the slot: a taker's, or one of ours whose answer was
                // lost earlier. Read the lease to tell.
                Err(Error::AppendConflict { .. }) => {
                    let view = read_lease(journal, &self.name).await?;
                    *next_seq = view.next_seq;
                    if view.current.is_none_or(|c| c.token != self.token) {
                        self.lost.store(true, Ordering::SeqCst);
                        return Ok(false);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Extend the lease by its ttl. Returns false if it was lost.
    pub async fn renew(&self, journal: &dyn Journal, clock: &dyn Clock) -> Result<bool> {
        if self.is_lost() {
            return Ok(false);
        }
        let expires_at = expiry(clock, self.ttl);
        let holder = self.holder.clone();
        let process = Some(self.process.clone());
        self.append(
            journal,
            clock,
            LeaseEvent::Renewed {
                holder,
                expires_at,
                process,
            },
        )
        .await
    }

    /// Give the lease up.
    pub async fn release(&self, journal: &dyn Journal, clock: &dyn Clock) -> Result<()> {
        if !self.is_lost() {
            let holder = self.holder.clone();
            self.append(journal, clock, LeaseEvent::Released { holder })
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::journal::ObjectStoreJournal;

    fn this_process() -> &'static ProcessIdentity {
        static CURRENT: std::sync::OnceLock<ProcessIdentity> = std::sync::OnceLock::new();
        CURRENT.get_or_init(ProcessIdentity::current)
    }

    fn by(holder: &str) -> Claimant<'_> {
        Claimant {
            holder,
            process: this_process(),
        }
    }

    #[tokio::test]
    async fn lease_excludes_until_expiry_then_fences_the_old_holder() {
        let journal = ObjectStoreJournal::in_memory();
        let clock = ManualClock::new(Utc::now());
        let ttl = Duration::from_secs(10);
        let AcquireOutcome::Acquired(first) = try_acquire(&journal, &clock, "k", by("a"), ttl)
            .await
            .unwrap()
        else {
            panic!("free lease was not acquired");
        };
        assert_eq!(first.token, 1);
        match try_acquire(&journal, &clock, "k", by("b"), ttl)
            .await
            .unwrap()
        {
            AcquireOutcome::Busy(h) => assert_eq!((h.holder.as_str(), h.token), ("a", 1)),
            AcquireOutcome::Acquired(_) => panic!("live lease was taken"),
        }
        clock.advance(Duration::from_secs(5));
        assert!(first.renew(&journal, &clock).await.unwrap());
        clock.advance(Duration::from_secs(9));
        // Renewed at t=5 for 10 s: still live at t=14.
        assert!(matches!(
            try_acquire(&journal, &clock, "k", by("b"), ttl)
                .await
                .unwrap(),
            AcquireOutcome::Busy(_)
        ));
        clock.advance(Duration::from_secs(2));
        let AcquireOutcome::Acquired(second) = try_acquire(&journal, &clock, "k", by("b"), ttl)
            .await
            .unwrap()
        else {
            panic!("expired lease was not taken over");
        };
        assert_eq!(second.token, 2);
        assert!(!first.renew(&journal, &clock).await.unwrap());
        assert!(first.is_lost());
        second.release(&journal, &clock).await.unwrap();
        let view = read_lease(&journal, "k").await.unwrap();
        assert!(view.current.unwrap().released);
    }

    /// Counts the records read, to show that a lease is read from its tail.
    #[derive(Debug)]
    struct CountingJournal {
        inner: ObjectStoreJournal,
        records_read: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Journal for CountingJournal {
        async fn append(&self, stream: &str, seq: u64, record: bytes::Bytes) -> Result<()> {
            self.inner.append(stream, seq, record).await
        }
        async fn read(&self, stream: &str, from_seq: u64) -> Result<Vec<(u64, bytes::Bytes)>> {
            let records = self.inner.read(stream, from_seq).await?;
            self.records_read.fetch_add(records.len(), Ordering::SeqCst);
            Ok(records)
        }
        async fn sequence_numbers(&self, stream: &str) -> Result<Vec<u64>> {
            self.inner.sequence_numbers(stream).await
        }
        async fn list_streams(&self, parent: &str) -> Result<Vec<String>> {
            self.inner.list_streams(parent).await
        }
    }

    #[tokio::test]
    async fn a_long_lease_history_is_read_from_its_tail() {
        let journal = CountingJournal {
            inner: ObjectStoreJournal::in_memory(),
            records_read: Default::default(),
        };
        let clock = ManualClock::new(Utc::now());
        let ttl = Duration::from_secs(10);
        for round in 0..3u64 {
            let AcquireOutcome::Acquired(lease) = try_acquire(&journal, &clock, "k", by("a"), ttl)
                .await
                .unwrap()
            else {
                panic!("released lease was not acquired");
            };
            assert_eq!(lease.token, round + 1);
            for _ in 0..20 {
                clock.advance(Duration::from_secs(1));
                assert!(lease.renew(&journal, &clock).await.unwrap());
            }
            lease.release(&journal, &clock).await.unwrap();
        }
        journal.records_read.store(0, Ordering::SeqCst);
        let view = read_lease(&journal, "k").await.unwrap();
        let current = view.current.unwrap();
        assert_eq!((current.token, current.released), (3, true));
        assert_eq!(view.next_seq, 3 * 22);
        assert_eq!(journal.records_read.load(Ordering::SeqCst), 1);
    }
    /// The pid of a process that ran and has been reaped.
    #[cfg(target_os = "linux")]
    fn pid_of_an_ended_process() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[cfg(target_os = "linux")]
    async fn held_by(process: ProcessIdentity) -> (ObjectStoreJournal, ManualClock) {
        let journal = ObjectStoreJournal::in_memory();
        let clock = ManualClock::new(Utc::now());
        let dead = Claimant {
            holder: "killed",
            process: &process,
        };
        let outcome = try_acquire(&journal, &clock, "k", dead, Duration::from_secs(600))
            .await
            .unwrap();
        assert!(matches!(outcome, AcquireOutcome::Acquired(_)));
        (journal, clock)
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_lease_of_an_ended_process_on_this_host_is_taken_over_at_once() {
        let ended = ProcessIdentity {
            pid: pid_of_an_ended_process(),
            ..this_process().clone()
        };
        let (journal, clock) = held_by(ended).await;
        // Nine minutes before the lease would expire.
        let AcquireOutcome::Acquired(taken) =
            try_acquire(&journal, &clock, "k", by("b"), Duration::from_secs(600))
                .await
                .unwrap()
        else {
            panic!("the lease of an ended process was not taken over");
        };
        assert_eq!(taken.token, 2, "the takeover is fenced with the next token");
        let view = read_lease(&journal, "k").await.unwrap();
        let current = view.current.unwrap();
        assert_eq!(current.holder, "b");
        assert_eq!(current.process.as_ref(), Some(this_process()));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_reused_pid_does_not_keep_the_lease_of_its_predecessor() {
        // The holder had this very pid, but started at another time: the pid was reused.
        let predecessor = ProcessIdentity {
            start_time: this_process().start_time.map(|t| t.wrapping_sub(1)),
            ..this_process().clone()
        };
        let (journal, clock) = held_by(predecessor).await;
        let outcome = try_acquire(&journal, &clock, "k", by("b"), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(matches!(outcome, AcquireOutcome::Acquired(ref l) if l.token == 2));
        // The same pid with its own start time is this live process: it keeps the lease.
        let outcome = try_acquire(&journal, &clock, "k", by("c"), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(matches!(outcome, AcquireOutcome::Busy(ref h) if h.holder == "b"));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_holder_on_another_host_keeps_its_lease_until_it_expires() {
        let remote = ProcessIdentity {
            host: format!("{}-elsewhere", this_process().host),
            pid: pid_of_an_ended_process(),
            ..this_process().clone()
        };
        let (journal, clock) = held_by(remote).await;
        clock.advance(Duration::from_secs(599));
        let outcome = try_acquire(&journal, &clock, "k", by("b"), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(matches!(outcome, AcquireOutcome::Busy(ref h) if h.holder == "killed"));
        clock.advance(Duration::from_secs(2));
        let outcome = try_acquire(&journal, &clock, "k", by("b"), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(matches!(outcome, AcquireOutcome::Acquired(ref l) if l.token == 2));
    }
}
