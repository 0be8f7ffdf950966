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

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

use crate::clock::Clock;
use crate::events::LeaseEvent;
use crate::journal::{Journal, Record, decode_stream, encode};
use crate::{Error, Result};

/// The current holder of a lease as read from its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaseHolder {
    pub token: u64,
    pub holder: String,
    pub expires_at: DateTime<Utc>,
    pub released: bool,
}

impl LeaseHolder {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        !self.released && self.expires_at > now
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
        let (holder, expires_at, released) = match record.event {
            LeaseEvent::Acquired { holder, expires_at }
            | LeaseEvent::Renewed { holder, expires_at } => (holder, expires_at, false),
            LeaseEvent::Released { holder } => (holder, record.at, true),
        };
        return Ok(LeaseView {
            next_seq,
            current: Some(LeaseHolder {
                token: record.token,
                holder,
                expires_at,
                released,
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
    pub ttl: Duration,
    next_seq: Mutex<u64>,
    lost: AtomicBool,
}

pub(crate) enum AcquireOutcome {
    Acquired(Arc<Lease>),
    Busy(LeaseHolder),
}

fn expiry(clock: &dyn Clock, ttl: Duration) -> DateTime<Utc> {
    clock.now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

/// Take the lease if it is free, released or expired.
pub(crate) async fn try_acquire(
    journal: &dyn Journal,
    clock: &dyn Clock,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<AcquireOutcome> {
    let stream = lease_stream(name);
    let mut attempted: Option<u64> = None;
    loop {
        let view = read_lease(journal, name).await?;
        if let Some(current) = view.current.as_ref().filter(|c| c.is_live(clock.now())) {
            // Our own acquisition, whose acknowledgement was lost to a storage error.
            if attempted == Some(current.token) && current.holder == holder {
                return Ok(AcquireOutcome::Acquired(Arc::new(Lease {
                    name: name.to_string(),
                    token: current.token,
                    holder: holder.to_string(),
                    ttl,
                    next_seq: Mutex::new(view.next_seq),
                    lost: AtomicBool::new(false),
                })));
            }
            return Ok(AcquireOutcome::Busy(current.clone()));
        }
        let token = view.current.as_ref().map_or(1, |c| c.token + 1);
        let record = Record {
            at: clock.now(),
            token,
            event: LeaseEvent::Acquired {
                holder: holder.to_string(),
                expires_at: expiry(clock, ttl),
            },
        };
        match journal
            .append(&stream, view.next_seq, encode(&stream, &record)?)
            .await
        {
            Ok(()) => {
                return Ok(AcquireOutcome::Acquired(Arc::new(Lease {
                    name: name.to_string(),
                    token,
                    holder: holder.to_string(),
                    ttl,
                    next_seq: Mutex::new(view.next_seq + 1),
                    lost: AtomicBool::new(false),
                })));
            }
            // Someone else appended first: look again.
            Err(Error::AppendConflict { .. }) => continue,
            // Ambiguous: the record may be stored. Look again, recognising our own.
            Err(e @ Error::Storage { .. }) if attempted.is_none() => {
                tracing::warn!(lease = %name, error = %e, "lease append failed; checking whether it was stored");
                attempted = Some(token);
            }
            Err(e) => return Err(e),
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
        loop {
            let record = Record {
                at: clock.now(),
                token: self.token,
                event: event.clone(),
            };
            match journal
                .append(&stream, *next_seq, encode(&stream, &record)?)
                .await
            {
                Ok(()) => {
                    *next_seq += 1;
                    return Ok(true);
                }
                // A storage error is ambiguous; read back like a conflict. At worst the
                // same renewal is recorded twice, which changes nothing.
                Err(e @ Error::Storage { .. }) if storage_failures < 2 => {
                    storage_failures += 1;
                    tracing::warn!(lease = %self.name, error = %e, "lease append failed; reading it back");
                    let view = read_lease(journal, &self.name).await?;
                    *next_seq = view.next_seq;
                    if view.current.is_none_or(|c| c.token != self.token) {
                        self.lost.store(true, Ordering::SeqCst);
                        return Ok(false);
                    }
                }
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
        self.append(journal, clock, LeaseEvent::Renewed { holder, expires_at })
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

    #[tokio::test]
    async fn lease_excludes_until_expiry_then_fences_the_old_holder() {
        let journal = ObjectStoreJournal::in_memory();
        let clock = ManualClock::new(Utc::now());
        let ttl = Duration::from_secs(10);
        let AcquireOutcome::Acquired(first) =
            try_acquire(&journal, &clock, "k", "a", ttl).await.unwrap()
        else {
            panic!("free lease was not acquired");
        };
        assert_eq!(first.token, 1);
        match try_acquire(&journal, &clock, "k", "b", ttl).await.unwrap() {
            AcquireOutcome::Busy(h) => assert_eq!((h.holder.as_str(), h.token), ("a", 1)),
            AcquireOutcome::Acquired(_) => panic!("live lease was taken"),
        }
        clock.advance(Duration::from_secs(5));
        assert!(first.renew(&journal, &clock).await.unwrap());
        clock.advance(Duration::from_secs(9));
        // Renewed at t=5 for 10 s: still live at t=14.
        assert!(matches!(
            try_acquire(&journal, &clock, "k", "b", ttl).await.unwrap(),
            AcquireOutcome::Busy(_)
        ));
        clock.advance(Duration::from_secs(2));
        let AcquireOutcome::Acquired(second) =
            try_acquire(&journal, &clock, "k", "b", ttl).await.unwrap()
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
            let AcquireOutcome::Acquired(lease) =
                try_acquire(&journal, &clock, "k", "a", ttl).await.unwrap()
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
}
