//! The one static `verbs_context_ops` table (76 slots, rdma-core v44..v56).
//!
//! `verbs_set_ops()` copies only the non-NULL entries; every other verb stays
//! on libibverbs' dummy ops, which return EOPNOTSUPP/ENOSYS (or NULL with
//! errno) without touching their arguments (checked in v44/v55
//! `libibverbs/dummy_ops.c`). `poll_cq`, `post_send` and `post_recv` are set
//! explicitly because the dummies' return values don't suit them: the
//! dummy `poll_cq` returns a *positive* EOPNOTSUPP that callers would read as
//! 95 completions.

use omx_rdma_sys::verbs_context_ops;

use crate::{ah, context, cq, mcast, mr, mw, pd, qp, qp_ex, srq};

pub static OMX_CTX_OPS: verbs_context_ops = ctx_ops();

const fn ctx_ops() -> verbs_context_ops {
    // SAFETY: verbs_context_ops is 76 `Option<fn>` fields; all-zero is
    // `None` for each.
    let mut o: verbs_context_ops = unsafe { core::mem::zeroed() };
    o.advise_mr = Some(mr::advise_mr);
    o.alloc_mw = Some(mw::alloc_mw);
    o.alloc_pd = Some(pd::alloc_pd);
    o.attach_mcast = Some(mcast::attach_mcast);
    o.bind_mw = Some(mw::bind_mw);
    o.create_ah = Some(ah::create_ah);
    o.create_cq = Some(cq::create_cq);
    o.create_cq_ex = Some(cq::create_cq_ex);
    o.create_qp = Some(qp::create_qp);
    o.create_qp_ex = Some(qp_ex::create_qp_ex);
    o.create_srq = Some(srq::create_srq);
    o.dealloc_mw = Some(mw::dealloc_mw);
    o.dealloc_pd = Some(pd::dealloc_pd);
    o.dereg_mr = Some(mr::dereg_mr);
    o.destroy_ah = Some(ah::destroy_ah);
    o.destroy_cq = Some(cq::destroy_cq);
    o.destroy_qp = Some(qp::destroy_qp);
    o.destroy_srq = Some(srq::destroy_srq);
    o.detach_mcast = Some(mcast::detach_mcast);
    o.free_context = Some(context::free_context);
    o.modify_qp = Some(qp::modify_qp);
    o.modify_srq = Some(srq::modify_srq);
    o.poll_cq = Some(cq::poll_cq);
    o.post_recv = Some(qp::post_recv);
    o.post_send = Some(qp::post_send);
    o.post_srq_recv = Some(srq::post_srq_recv);
    o.query_device_ex = Some(context::query_device_ex);
    o.query_port = Some(context::query_port);
    o.query_qp = Some(qp::query_qp);
    o.query_qp_data_in_order = Some(qp::query_qp_data_in_order);
    o.query_rt_values = Some(context::query_rt_values);
    o.query_srq = Some(srq::query_srq);
    o.reg_mr = Some(mr::reg_mr);
    o.req_notify_cq = Some(cq::req_notify_cq);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implemented_slots() {
        let o = &OMX_CTX_OPS;
        assert!(o.alloc_pd.is_some() && o.free_context.is_some() && o.poll_cq.is_some());
        assert!(o.create_cq_ex.is_some() && o.create_qp_ex.is_some() && o.advise_mr.is_some());
        assert!(o.create_srq.is_some() && o.post_srq_recv.is_some() && o.destroy_srq.is_some());
        assert!(o.create_ah.is_some() && o.destroy_ah.is_some());
        assert!(o.attach_mcast.is_some() && o.detach_mcast.is_some());
        assert!(o.query_qp_data_in_order.is_some() && o.query_rt_values.is_some());
        // Left to libibverbs' dummies for now (EOPNOTSUPP): XRC and
        // tag-matching SRQs, device memory.
        assert!(o.create_srq_ex.is_none() && o.alloc_dm.is_none());
    }
}
