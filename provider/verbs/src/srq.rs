//! Shared receive queues (SRQ): receive WQEs that every QP created with
//! the SRQ takes from, oldest first ([`omx_engine::SharedRecv`]).
//!
//! Who holds references: the ffi SRQ object (`Arc<Srq>`, from
//! `ibv_create_srq` to `ibv_destroy_srq`) and each QP created with it (an
//! `Arc<dyn SharedRecv>` inside its engine, until the QP is freed). The
//! kernel refuses to destroy an SRQ a QP still uses (ib_core: EBUSY), and
//! the QPs' `Arc`s would keep the ring alive anyway.
//!
//! Locks: `ring`, a spin lock ([`crate::lock`]) and a leaf: taken by
//! `ibv_post_srq_recv` (once per call, for the whole WR list) and by a
//! QP's responder inside the QP lock when a message needs a WQE; nothing
//! else is taken under it. Full lock order: docs/lifetime-and-locking.md.
//!
//! Receive buffers are checked against the QP's PD when a message lands,
//! as rxe does (an SRQ and its QPs normally share one PD).
//!
//! The limit (`ibv_modify_srq` with IBV_SRQ_LIMIT) lives in the ring,
//! under its lock: a take that leaves fewer WQEs than the armed limit
//! disarms it and sets `limit_reached`, which the endpoint's kernel pass
//! takes (once) to ask the kernel for IBV_EVENT_SRQ_LIMIT_REACHED.
//!
//! Nothing allocates after [`Srq::new`] but a resize
//! (`ibv_modify_srq(IBV_SRQ_MAX_WR)`, control path), which allocates the
//! new ring before it takes the lock: the ring holds `max_wr` WQEs
//! (under the ring lock, as is the armed limit) and posting past that is
//! refused.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use omx_engine::{PostError, RecvWr, SharedRecv};

use crate::lock::{SpinGuard, SpinLock};

/// A shared receive queue.
#[derive(Debug)]
pub struct Srq {
    ring: SpinLock<Ring>,
    /// Scatter entries per WQE at most (`max_sge` as granted).
    pub max_sge: u32,
    /// The kernel's uverbs handle (`ibv_srq.handle`), for the limit event.
    pub handle: u32,
    /// The armed limit was crossed and the kernel has not been asked for
    /// the event yet.
    limit_reached: AtomicBool,
}

/// The WQEs, how many it may hold (`max_wr`, as granted or resized; the
/// deque's capacity is at least that) and the armed limit (0: not armed).
#[derive(Debug)]
struct Ring {
    q: VecDeque<RecvWr>,
    max_wr: u32,
    limit: u32,
}

/// The locked ring, for posting a WR list in one critical section.
#[derive(Debug)]
pub struct SrqRing<'a> {
    r: SpinGuard<'a, Ring>,
}

impl SrqRing<'_> {
    /// Appends one WQE: [`PostError::Full`] (ENOMEM) when `max_wr` are
    /// waiting.
    pub fn post(&mut self, wr: RecvWr) -> Result<(), PostError> {
        if self.r.q.len() >= self.r.max_wr as usize {
            return Err(PostError::Full);
        }
        self.r.q.push_back(wr);
        Ok(())
    }
}

impl Srq {
    /// An empty SRQ of `max_wr` WQEs (at least 1) of up to `max_sge`
    /// entries.
    pub fn new(max_wr: u32, max_sge: u32) -> Self {
        let max_wr = max_wr.max(1);
        Srq {
            ring: SpinLock::new(Ring {
                q: VecDeque::with_capacity(max_wr as usize),
                max_wr,
                limit: 0,
            }),
            max_sge,
            handle: 0,
            limit_reached: AtomicBool::new(false),
        }
    }

    /// The SRQ with its kernel uverbs handle.
    pub fn with_handle(mut self, handle: u32) -> Self {
        self.handle = handle;
        self
    }

    /// The ring, locked (a spin lock, a leaf).
    pub fn lock(&self) -> SrqRing<'_> {
        SrqRing {
            r: self.ring.lock(),
        }
    }

    /// WQEs it holds at most.
    pub fn max_wr(&self) -> u32 {
        self.ring.lock().max_wr
    }

    /// `ibv_modify_srq(IBV_SRQ_MAX_WR)` (control path): the ring holds
    /// `max_wr` WQEs from now on (at least 1). Refused
    /// ([`PostError::Full`]) when more WQEs than that are waiting, or when
    /// an armed limit would exceed it. Growing allocates, before the lock
    /// is taken; posts and takes wait only for the move.
    pub fn resize(&self, max_wr: u32) -> Result<(), PostError> {
        let max_wr = max_wr.max(1);
        let mut fresh = VecDeque::with_capacity(max_wr as usize);
        let mut r = self.ring.lock();
        if r.q.len() > max_wr as usize || r.limit > max_wr {
            return Err(PostError::Full);
        }
        if r.q.capacity() < max_wr as usize {
            fresh.extend(r.q.drain(..));
            r.q = fresh;
        }
        r.max_wr = max_wr;
        Ok(())
    }

    /// WQEs waiting.
    pub fn len(&self) -> usize {
        self.ring.lock().q.len()
    }

    /// `ibv_modify_srq(IBV_SRQ_LIMIT)`: arms the limit (0 disarms). The
    /// event comes when a take leaves fewer WQEs than `limit`; WQEs
    /// already fewer at arming raise nothing until the next take (rxe
    /// does the same).
    pub fn arm(&self, limit: u32) {
        self.ring.lock().limit = limit;
    }

    /// The armed limit (0: not armed), for `ibv_query_srq`.
    pub fn limit(&self) -> u32 {
        self.ring.lock().limit
    }

    /// Whether the limit was crossed and not reported yet (a hint: no
    /// lock, one load).
    pub fn limit_event_pending(&self) -> bool {
        self.limit_reached.load(SeqCst)
    }

    /// Takes the crossing of the limit, once.
    pub fn take_limit_event(&self) -> bool {
        self.limit_reached.swap(false, SeqCst)
    }

    /// Whether no WQE is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SharedRecv for Srq {
    fn take(&self) -> Option<RecvWr> {
        let mut r = self.ring.lock();
        let w = r.q.pop_front()?;
        if r.limit != 0 && r.q.len() < r.limit as usize {
            r.limit = 0;
            self.limit_reached.store(true, SeqCst);
        }
        Some(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omx_engine::SgList;

    fn wr(id: u64) -> RecvWr {
        RecvWr {
            wr_id: id,
            sg: SgList::single(0x1000 * id, 64, 1),
        }
    }

    #[test]
    fn fifo_bounded_and_never_grows() {
        let s = Srq::new(3, 1);
        let cap = s.ring.lock().q.capacity();
        {
            let mut r = s.lock();
            for id in 0..3 {
                r.post(wr(id)).unwrap();
            }
            assert_eq!(r.post(wr(9)), Err(PostError::Full));
        }
        assert_eq!(s.ring.lock().q.capacity(), cap, "posting allocated");
        assert_eq!(s.take().map(|w| w.wr_id), Some(0));
        s.lock().post(wr(3)).unwrap();
        let ids: Vec<u64> = std::iter::from_fn(|| s.take()).map(|w| w.wr_id).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert!(s.is_empty());
    }

    #[test]
    fn an_armed_limit_fires_once_when_a_take_crosses_it() {
        let s = Srq::new(8, 1);
        for id in 0..6 {
            s.lock().post(wr(id)).unwrap();
        }
        s.arm(4);
        assert_eq!(s.limit(), 4);
        s.take().unwrap(); // 5 left
        s.take().unwrap(); // 4 left: not below
        assert!(!s.limit_event_pending());
        s.take().unwrap(); // 3 left: crossed
        assert!(s.limit_event_pending());
        assert_eq!(s.limit(), 0, "disarmed by the crossing");
        assert!(s.take_limit_event());
        assert!(!s.take_limit_event(), "once");
        s.take().unwrap();
        assert!(!s.limit_event_pending(), "not armed any more");
        // Armed below the count: nothing until the next take.
        s.arm(5);
        assert!(!s.limit_event_pending());
        s.take().unwrap();
        assert!(s.take_limit_event());
        // Disarmed with 0: the last take raises nothing; armed again, an
        // empty take (nothing consumed) raises nothing either.
        s.arm(0);
        s.take().unwrap();
        assert!(!s.limit_event_pending());
        s.arm(3);
        assert!(s.take().is_none());
        assert!(!s.limit_event_pending());
    }

    #[test]
    fn resizing_keeps_the_waiting_wqes_in_order() {
        let s = Srq::new(2, 1);
        s.lock().post(wr(1)).unwrap();
        s.lock().post(wr(2)).unwrap();
        assert_eq!(s.lock().post(wr(3)), Err(PostError::Full));
        s.resize(4).unwrap();
        assert_eq!(s.max_wr(), 4);
        let cap = s.ring.lock().q.capacity();
        assert!(cap >= 4);
        s.lock().post(wr(3)).unwrap();
        s.lock().post(wr(4)).unwrap();
        assert_eq!(s.lock().post(wr(5)), Err(PostError::Full));
        assert_eq!(s.ring.lock().q.capacity(), cap, "posting allocated");
        // Fewer than are waiting: refused, nothing changed.
        assert_eq!(s.resize(3), Err(PostError::Full));
        assert_eq!(s.max_wr(), 4);
        assert_eq!(s.take().map(|w| w.wr_id), Some(1));
        // Smaller, above what waits and the armed limit: fine.
        s.arm(2);
        assert_eq!(s.resize(1), Err(PostError::Full), "below the limit");
        s.resize(3).unwrap();
        let ids: Vec<u64> = std::iter::from_fn(|| s.take()).map(|w| w.wr_id).collect();
        assert_eq!(ids, [2, 3, 4]);
    }

    #[test]
    fn zero_max_wr_still_holds_one() {
        let s = Srq::new(0, 1);
        assert_eq!(s.max_wr(), 1);
        s.lock().post(wr(1)).unwrap();
        assert_eq!(s.lock().post(wr(2)), Err(PostError::Full));
    }
}
