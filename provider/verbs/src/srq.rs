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
//! Nothing allocates after [`Srq::new`]: the ring holds `max_wr` WQEs and
//! posting past that is refused.

use std::collections::VecDeque;

use omx_engine::{PostError, RecvWr, SharedRecv};

use crate::lock::{SpinGuard, SpinLock};

/// A shared receive queue.
#[derive(Debug)]
pub struct Srq {
    ring: SpinLock<VecDeque<RecvWr>>,
    /// WQEs it holds at most (`max_wr` as granted).
    pub max_wr: u32,
    /// Scatter entries per WQE at most (`max_sge` as granted).
    pub max_sge: u32,
}

/// The locked ring, for posting a WR list in one critical section.
#[derive(Debug)]
pub struct SrqRing<'a> {
    q: SpinGuard<'a, VecDeque<RecvWr>>,
    max_wr: u32,
}

impl SrqRing<'_> {
    /// Appends one WQE: [`PostError::Full`] (ENOMEM) when `max_wr` are
    /// waiting.
    pub fn post(&mut self, wr: RecvWr) -> Result<(), PostError> {
        if self.q.len() >= self.max_wr as usize {
            return Err(PostError::Full);
        }
        self.q.push_back(wr);
        Ok(())
    }
}

impl Srq {
    /// An empty SRQ of `max_wr` WQEs (at least 1) of up to `max_sge`
    /// entries.
    pub fn new(max_wr: u32, max_sge: u32) -> Self {
        let max_wr = max_wr.max(1);
        Srq {
            ring: SpinLock::new(VecDeque::with_capacity(max_wr as usize)),
            max_wr,
            max_sge,
        }
    }

    /// The ring, locked (a spin lock, a leaf).
    pub fn lock(&self) -> SrqRing<'_> {
        SrqRing {
            q: self.ring.lock(),
            max_wr: self.max_wr,
        }
    }

    /// WQEs waiting.
    pub fn len(&self) -> usize {
        self.ring.lock().len()
    }

    /// Whether no WQE is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SharedRecv for Srq {
    fn take(&self) -> Option<RecvWr> {
        self.ring.lock().pop_front()
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
        let cap = s.ring.lock().capacity();
        {
            let mut r = s.lock();
            for id in 0..3 {
                r.post(wr(id)).unwrap();
            }
            assert_eq!(r.post(wr(9)), Err(PostError::Full));
        }
        assert_eq!(s.ring.lock().capacity(), cap, "posting allocated");
        assert_eq!(s.take().map(|w| w.wr_id), Some(0));
        s.lock().post(wr(3)).unwrap();
        let ids: Vec<u64> = std::iter::from_fn(|| s.take()).map(|w| w.wr_id).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert!(s.is_empty());
    }

    #[test]
    fn zero_max_wr_still_holds_one() {
        let s = Srq::new(0, 1);
        assert_eq!(s.max_wr, 1);
        s.lock().post(wr(1)).unwrap();
        assert_eq!(s.lock().post(wr(2)), Err(PostError::Full));
    }
}
