//! Completion queues.
//!
//! The kernel shadow CQ exists so that completion channels work: it carries
//! `user_handle = (ibv_cq *)` and the channel fd, and the progress thread
//! asks the kernel module to raise the event (OMX_METHOD_CQ_NOTIFY). The
//! ring itself is an omx-verbs-objects `Cq` sized at creation.
//!
//! Ownership: [`create_cq`] Box-allocates an [`OmxCq`]; libibverbs then runs
//! `verbs_init_cq` (context, channel refcount, mutex/cond). [`destroy_cq`]
//! frees it after `ibv_cmd_destroy_cq`, which blocks until the application
//! has acked every event the kernel delivered. The ring is an `Arc` shared
//! with the QPs that use it and with the endpoint's CQ list (removed before
//! the kernel object goes, so no notify is issued for a dead handle by us);
//! the kernel refuses to destroy a CQ still used by a QP (EBUSY).
//!
//! Locks: the ring's own mutex (see omx-verbs-objects); nothing else.

use core::mem::size_of;
use core::ptr;
use std::sync::Arc;

use omx_engine::WorkCompletion;
use omx_rdma_sys::*;
use omx_verbs::{Cq, Drive};

use crate::errno::{to_ptr, to_ret, Errno};
use crate::guard::guard;
use crate::runtime::Runtime;

#[repr(C)]
pub struct OmxCq {
    pub ibv_cq: ibv_cq,
    pub cq: Option<Arc<Cq>>,
    pub rt: Option<Arc<Runtime>>,
}

const _: () = assert!(core::mem::offset_of!(OmxCq, ibv_cq) == 0);

/// # Safety
/// `cq` is NULL or a CQ returned by [`create_cq`].
pub unsafe fn from_ibv<'a>(cq: *mut ibv_cq) -> Option<&'a OmxCq> {
    // SAFETY: ibv_cq is the first field of the repr(C) OmxCq.
    unsafe { cq.cast::<OmxCq>().as_ref() }
}

fn create(
    ctx: *mut ibv_context,
    cqe: i32,
    channel: *mut ibv_comp_channel,
    vector: i32,
) -> Result<*mut ibv_cq, Errno> {
    if cqe < 1 {
        return Err(Errno::EINVAL);
    }
    // SAFETY: ctx is one of our contexts (caller).
    let rt = unsafe { crate::context::from_ibv(ctx) }.and_then(|c| c.rt.clone());
    let cq = Box::into_raw(Box::new(OmxCq {
        ibv_cq: ibv_cq::default(),
        cq: None,
        rt,
    }));
    let mut cmd = ibv_create_cq::default();
    let mut resp = ib_uverbs_create_cq_resp::default();
    // SAFETY: ctx is ours; channel is NULL or the application's live
    // channel; cq is a fresh allocation whose address becomes the kernel's
    // user_handle and stays valid until destroy_cq.
    let ret = unsafe {
        ibv_cmd_create_cq(
            ctx,
            cqe,
            channel,
            vector,
            ptr::addr_of_mut!((*cq).ibv_cq),
            &mut cmd,
            size_of::<ibv_create_cq>(),
            &mut resp,
            size_of::<ib_uverbs_create_cq_resp>(),
        )
    };
    if let Err(e) = Errno::check(ret) {
        // SAFETY: never published.
        drop(unsafe { Box::from_raw(cq) });
        return Err(e);
    }
    // SAFETY: cq is ours, not yet returned to the application.
    let c = unsafe { &mut *cq };
    let ring = Arc::new(Cq::new(
        c.ibv_cq.handle,
        (cqe as usize).max(resp.cqe as usize),
    ));
    if let Some(rt) = &c.rt {
        rt.ep.insert_cq(ring.clone());
    }
    c.cq = Some(ring);
    Ok(cq.cast())
}

/// # Safety
/// `ctx` is NULL or ours; `channel` NULL or live.
pub unsafe extern "C" fn create_cq(
    ctx: *mut ibv_context,
    cqe: i32,
    channel: *mut ibv_comp_channel,
    comp_vector: i32,
) -> *mut ibv_cq {
    if ctx.is_null() {
        Errno::EINVAL.set();
        return ptr::null_mut();
    }
    guard("create_cq", ptr::null_mut(), || {
        to_ptr(create(ctx, cqe, channel, comp_vector))
    })
}

/// # Safety
/// `cq` is NULL or a CQ returned by [`create_cq`].
pub unsafe extern "C" fn destroy_cq(cq: *mut ibv_cq) -> i32 {
    if cq.is_null() {
        return libc::EINVAL;
    }
    guard("destroy_cq", libc::EIO, || {
        // SAFETY: cq is ours and alive.
        let o = unsafe { &*cq.cast::<OmxCq>() };
        if let (Some(rt), Some(ring)) = (&o.rt, &o.cq) {
            rt.ep.remove_cq(ring);
        }
        // SAFETY: cq is ours and alive.
        let ret = unsafe { ibv_cmd_destroy_cq(cq) };
        if let Err(e) = Errno::check(ret) {
            if let (Some(rt), Some(ring)) = (&o.rt, &o.cq) {
                rt.ep.insert_cq(ring.clone());
            }
            return e.0;
        }
        // SAFETY: kernel object gone, events acked; from Box::into_raw.
        drop(unsafe { Box::from_raw(cq.cast::<OmxCq>()) });
        to_ret(Ok(()))
    })
}

/// `ibv_req_notify_cq`: arms the ring; if completions are already
/// waiting the progress thread raises the event at once.
///
/// # Safety
/// `cq` is NULL or ours.
pub unsafe extern "C" fn req_notify_cq(cq: *mut ibv_cq, solicited_only: i32) -> i32 {
    // SAFETY: per the contract.
    let Some(o) = (unsafe { from_ibv(cq) }) else {
        return libc::EINVAL;
    };
    let Some(ring) = &o.cq else {
        return libc::EINVAL;
    };
    if ring.arm(solicited_only != 0) {
        if let Some(rt) = &o.rt {
            rt.after_drive(Drive {
                notify: true,
                deadline: None,
            });
        }
    }
    0
}

/// Converts an engine completion to `ibv_wc`.
pub fn to_ibv_wc(w: &WorkCompletion) -> ibv_wc {
    let mut wc = ibv_wc {
        wr_id: w.wr_id,
        status: w.status as u32,
        opcode: w.opcode as u32,
        byte_len: w.byte_len,
        qp_num: w.qp_num.value(),
        src_qp: w.src_qp.value(),
        ..Default::default()
    };
    if let Some(imm) = w.imm {
        wc.__bindgen_anon_1.imm_data = imm.to_be();
        wc.wc_flags |= IBV_WC_WITH_IMM;
    }
    wc
}

/// Moves up to `n` completions of `ring` to `wc`; returns how many.
///
/// # Safety
/// `wc` is writable for `n` entries.
unsafe fn drain(ring: &Cq, n: usize, wc: *mut ibv_wc) -> usize {
    const CHUNK: usize = 16;
    let mut tmp = [ZERO_WC; CHUNK];
    let mut done = 0;
    while done < n {
        let k = ring.poll(&mut tmp[..(n - done).min(CHUNK)]);
        for (i, w) in tmp[..k].iter().enumerate() {
            // SAFETY: done + i < n, within the caller's array.
            unsafe { wc.add(done + i).write(to_ibv_wc(w)) };
        }
        done += k;
        if k == 0 {
            break;
        }
    }
    done
}

const ZERO_WC: WorkCompletion = WorkCompletion {
    wr_id: 0,
    status: omx_engine::WcStatus::Success,
    opcode: omx_engine::WcOpcode::Send,
    queue: omx_engine::WcQueue::Send,
    byte_len: 0,
    imm: None,
    qp_num: omx_wire::Qpn::new(0),
    src_qp: omx_wire::Qpn::new(0),
    solicited: false,
};

/// `ibv_poll_cq`: returns waiting completions; when there are none it
/// receives pending frames itself (busy-poll), then looks again. No lock is
/// waited for, nothing is allocated; the only system calls are the
/// non-blocking receive and the transmits the frames cause.
///
/// # Safety
/// `cq` is NULL or ours; `wc` writable for `num_entries` entries.
pub unsafe extern "C" fn poll_cq(cq: *mut ibv_cq, num_entries: i32, wc: *mut ibv_wc) -> i32 {
    // SAFETY: per the contract.
    let Some(o) = (unsafe { from_ibv(cq) }) else {
        Errno::EINVAL.set();
        return -libc::EINVAL;
    };
    let (Some(ring), true) = (&o.cq, num_entries >= 0) else {
        Errno::EINVAL.set();
        return -libc::EINVAL;
    };
    if num_entries == 0 {
        return 0;
    }
    if wc.is_null() {
        Errno::EINVAL.set();
        return -libc::EINVAL;
    }
    let n = num_entries as usize;
    guard("poll_cq", -libc::EIO, || {
        // SAFETY: wc writable for n entries (contract).
        let got = unsafe { drain(ring, n, wc) };
        if got > 0 {
            if let Some(rt) = &o.rt {
                rt.app_polled(true);
            }
            return got as i32;
        }
        let Some(rt) = &o.rt else { return 0 };
        let d = rt.poll_rx();
        rt.after_drive(d);
        // SAFETY: as above.
        let got = unsafe { drain(ring, n, wc) };
        rt.app_polled(got > 0);
        got as i32
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_arguments_are_refused() {
        // SAFETY: NULL is rejected before any dereference.
        let r = unsafe { poll_cq(ptr::null_mut(), 1, ptr::null_mut()) };
        assert!(r < 0);
        // SAFETY: as above.
        assert_eq!(unsafe { req_notify_cq(ptr::null_mut(), 0) }, libc::EINVAL);
    }

    #[test]
    fn wc_conversion() {
        let w = WorkCompletion {
            wr_id: 9,
            status: omx_engine::WcStatus::LocProtErr,
            opcode: omx_engine::WcOpcode::Recv,
            imm: Some(0x0102_0304),
            byte_len: 77,
            qp_num: omx_wire::Qpn::new(0x1005),
            src_qp: omx_wire::Qpn::new(0x2001),
            ..ZERO_WC
        };
        let c = to_ibv_wc(&w);
        assert_eq!(c.wr_id, 9);
        assert_eq!(c.status, IBV_WC_LOC_PROT_ERR);
        assert_eq!(c.opcode, IBV_WC_RECV);
        assert_eq!(c.byte_len, 77);
        assert_eq!((c.qp_num, c.src_qp), (0x1005, 0x2001));
        assert_eq!(c.wc_flags & IBV_WC_WITH_IMM, IBV_WC_WITH_IMM);
        // SAFETY: plain integer union.
        assert_eq!(
            unsafe { c.__bindgen_anon_1.imm_data },
            0x0102_0304u32.to_be()
        );
    }

    #[test]
    fn drain_moves_in_order() {
        let ring = Cq::new(1, 40);
        for i in 0..35 {
            ring.push(WorkCompletion {
                wr_id: i,
                ..ZERO_WC
            });
        }
        let mut out = vec![ibv_wc::default(); 40];
        // SAFETY: out has 40 entries.
        assert_eq!(unsafe { drain(&ring, 20, out.as_mut_ptr()) }, 20);
        // SAFETY: as above.
        assert_eq!(unsafe { drain(&ring, 40, out.as_mut_ptr().add(20)) }, 15);
        assert!(out[..35]
            .iter()
            .enumerate()
            .all(|(i, w)| w.wr_id == i as u64));
    }
}
