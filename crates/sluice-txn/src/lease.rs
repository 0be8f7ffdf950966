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
use crate::journal::{Journal, Record, encode, read_stream};
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

pub(crate) async fn read_lease(journal: &dyn Journal, name: &str) -> Result<LeaseView> {
    let stream = lease_stream(name);
    let contents = read_stream::<LeaseEvent>(journal, &stream).await?;
    let mut current: Option<LeaseHolder> = None;
    for (_, record) in contents.records {
        match record.event {
            LeaseEvent::Acquired { holder, expires_at } => {
                if current.as_ref().is_none_or(|c| record.token > c.token) {
                    current = Some(LeaseHolder {
                        token: record.token,
                        holder,
                        expires_at,
                        released: false,
                    });
                }
            }
            LeaseEvent::Renewed { expires_at } => {
                if let Some(c) = current.as_mut().filter(|c| c.token == record.token) {
                    c.expires_at = c.expires_at.max(expires_at);
                }
            }
            LeaseEvent::Released => {
                if let Some(c) = current.as_mut().filter(|c| c.token == record.token) {
                    c.released = true;
                }
            }
        }
    }
    Ok(LeaseView {
        next_seq: contents.next_seq,
        current,
    })
}

/// A lease this process holds.
#[derive(Debug)]
pub(crate) struct Lease {
    pub name: String,
    pub token: u64,
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
    loop {
        let view = read_lease(journal, name).await?;
        if let Some(current) = view.current.as_ref().filter(|c| c.is_live(clock.now())) {
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
                    ttl,
                    next_seq: Mutex::new(view.next_seq + 1),
                    lost: AtomicBool::new(false),
                })));
            }
            // Someone else appended first: look again.
            Err(Error::AppendConflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
}

impl Lease {
    /// Whether a renewal found that another process took the lease over.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    async fn append(&self, journal: &dyn Journal, clock: &dyn Clock, event: LeaseEvent) -> Result<bool> {
        let stream = lease_stream(&self.name);
        let mut next_seq = self.next_seq.lock().await;
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
        self.append(journal, clock, LeaseEvent::Renewed { expires_at })
            .await
    }

    /// Give the lease up.
    pub async fn release(&self, journal: &dyn Journal, clock: &dyn Clock) -> Result<()> {
        if !self.is_lost() {
            self.append(journal, clock, LeaseEvent::Released).await?;
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
}
