//! Cross-checks the generated bindings against the numbers measured on
//! rdma-core v44 in shared/reference/provider-contract.md (section A.2).
//! Bindgen's own layout asserts only prove that Rust matches the v55 headers;
//! this test proves v55 matches what Debian 12's libibverbs (v44) expects.

use core::mem::{offset_of, size_of};
use omx_rdma_sys::*;

#[test]
fn private_abi_is_34() {
    assert_eq!(IBVERBS_PABI_VERSION, 34);
    assert!(RDMA_CORE_VERSION.starts_with("55."), "{RDMA_CORE_VERSION}");
}

#[test]
fn verbs_match_ent_layout() {
    assert_eq!(size_of::<verbs_match_ent>(), 24);
    assert_eq!(offset_of!(verbs_match_ent, driver_data), 0);
    assert_eq!(offset_of!(verbs_match_ent, u), 8);
    assert_eq!(offset_of!(verbs_match_ent, vendor), 16);
    assert_eq!(offset_of!(verbs_match_ent, device), 18);
    assert_eq!(offset_of!(verbs_match_ent, kind), 20);
    assert_eq!(VERBS_MATCH_SENTINEL, 0);
    assert_eq!(VERBS_MATCH_PCI, 1);
    assert_eq!(VERBS_MATCH_MODALIAS, 2);
    assert_eq!(VERBS_MATCH_DRIVER_ID, 3);
}

#[test]
fn verbs_device_ops_layout() {
    assert_eq!(size_of::<verbs_device_ops>(), 72);
    assert_eq!(offset_of!(verbs_device_ops, name), 0);
    assert_eq!(offset_of!(verbs_device_ops, match_min_abi_version), 8);
    assert_eq!(offset_of!(verbs_device_ops, match_max_abi_version), 12);
    assert_eq!(offset_of!(verbs_device_ops, match_table), 16);
    assert_eq!(offset_of!(verbs_device_ops, static_providers), 24);
    assert_eq!(offset_of!(verbs_device_ops, match_device), 32);
    assert_eq!(offset_of!(verbs_device_ops, alloc_context), 40);
    assert_eq!(offset_of!(verbs_device_ops, import_context), 48);
    assert_eq!(offset_of!(verbs_device_ops, alloc_device), 56);
    assert_eq!(offset_of!(verbs_device_ops, uninit_device), 64);
}

#[test]
fn verbs_sysfs_dev_layout() {
    assert_eq!(size_of::<verbs_sysfs_dev>(), 992);
    assert_eq!(offset_of!(verbs_sysfs_dev, entry), 0);
    assert_eq!(offset_of!(verbs_sysfs_dev, provider_data), 16);
    assert_eq!(offset_of!(verbs_sysfs_dev, match_), 24);
    assert_eq!(offset_of!(verbs_sysfs_dev, flags), 32);
    assert_eq!(offset_of!(verbs_sysfs_dev, sysfs_name), 36);
    assert_eq!(offset_of!(verbs_sysfs_dev, sysfs_cdev), 104);
    assert_eq!(offset_of!(verbs_sysfs_dev, ibdev_name), 112);
    assert_eq!(offset_of!(verbs_sysfs_dev, ibdev_path), 176);
    assert_eq!(offset_of!(verbs_sysfs_dev, modalias), 432);
    assert_eq!(offset_of!(verbs_sysfs_dev, node_guid), 944);
    assert_eq!(offset_of!(verbs_sysfs_dev, driver_id), 952);
    assert_eq!(offset_of!(verbs_sysfs_dev, node_type), 956);
    assert_eq!(offset_of!(verbs_sysfs_dev, ibdev_idx), 960);
    assert_eq!(offset_of!(verbs_sysfs_dev, num_ports), 964);
    assert_eq!(offset_of!(verbs_sysfs_dev, abi_ver), 968);
    assert_eq!(offset_of!(verbs_sysfs_dev, time_created), 976);
}

#[test]
fn device_layout() {
    assert_eq!(size_of::<ibv_device>(), 664);
    assert_eq!(offset_of!(ibv_device, _ops), 0);
    assert_eq!(offset_of!(ibv_device, node_type), 16);
    assert_eq!(offset_of!(ibv_device, transport_type), 20);
    assert_eq!(offset_of!(ibv_device, name), 24);
    assert_eq!(offset_of!(ibv_device, dev_name), 88);
    assert_eq!(offset_of!(ibv_device, dev_path), 152);
    assert_eq!(offset_of!(ibv_device, ibdev_path), 408);
    assert_eq!(size_of::<verbs_device>(), 712);
    assert_eq!(offset_of!(verbs_device, device), 0);
    assert_eq!(offset_of!(verbs_device, ops), 664);
    assert_eq!(offset_of!(verbs_device, refcount), 672);
    assert_eq!(offset_of!(verbs_device, entry), 680);
    assert_eq!(offset_of!(verbs_device, sysfs), 696);
    assert_eq!(offset_of!(verbs_device, core_support), 704);
}

#[test]
fn context_layout() {
    assert_eq!(size_of::<ibv_context>(), 328);
    assert_eq!(offset_of!(ibv_context, device), 0);
    assert_eq!(offset_of!(ibv_context, ops), 8);
    assert_eq!(size_of::<ibv_context_ops>(), 256);
    assert_eq!(offset_of!(ibv_context, cmd_fd), 264);
    assert_eq!(offset_of!(ibv_context, async_fd), 268);
    assert_eq!(offset_of!(ibv_context, num_comp_vectors), 272);
    assert_eq!(offset_of!(ibv_context, mutex), 280);
    assert_eq!(offset_of!(ibv_context, abi_compat), 320);

    assert_eq!(size_of::<verbs_context>(), 648);
    assert_eq!(offset_of!(verbs_context, query_port), 0);
    assert_eq!(offset_of!(verbs_context, priv_), 208);
    assert_eq!(offset_of!(verbs_context, _ABI_placeholder3), 304);
    assert_eq!(offset_of!(verbs_context, sz), 312);
    assert_eq!(offset_of!(verbs_context, context), 320);
    // `context` must be the last member (verbs_get_ctx() subtracts 320).
    assert_eq!(
        offset_of!(verbs_context, context) + size_of::<ibv_context>(),
        648
    );
}

/// The 76 slots of `struct verbs_context_ops`, in rdma-core v44..v56 order
/// (provider-contract.md A.2). A v57+ header would fail here.
#[test]
fn verbs_context_ops_has_the_76_v44_slots() {
    assert_eq!(size_of::<verbs_context_ops>(), 608);
    macro_rules! slots {
        ($($i:literal $f:ident),* $(,)?) => {
            $( assert_eq!(offset_of!(verbs_context_ops, $f), 8 * $i, stringify!($f)); )*
            assert_eq!([$($i),*].len(), 76);
        };
    }
    slots!(
        0 advise_mr, 1 alloc_dm, 2 alloc_mw, 3 alloc_null_mr, 4 alloc_parent_domain,
        5 alloc_pd, 6 alloc_td, 7 async_event, 8 attach_counters_point_flow,
        9 attach_mcast, 10 bind_mw, 11 close_xrcd, 12 cq_event, 13 create_ah,
        14 create_counters, 15 create_cq, 16 create_cq_ex, 17 create_flow,
        18 create_flow_action_esp, 19 create_qp, 20 create_qp_ex,
        21 create_rwq_ind_table, 22 create_srq, 23 create_srq_ex, 24 create_wq,
        25 dealloc_mw, 26 dealloc_pd, 27 dealloc_td, 28 dereg_mr, 29 destroy_ah,
        30 destroy_counters, 31 destroy_cq, 32 destroy_flow, 33 destroy_flow_action,
        34 destroy_qp, 35 destroy_rwq_ind_table, 36 destroy_srq, 37 destroy_wq,
        38 detach_mcast, 39 free_context, 40 free_dm, 41 get_srq_num, 42 import_dm,
        43 import_mr, 44 import_pd, 45 modify_cq, 46 modify_flow_action_esp,
        47 modify_qp, 48 modify_qp_rate_limit, 49 modify_srq, 50 modify_wq,
        51 open_qp, 52 open_xrcd, 53 poll_cq, 54 post_recv, 55 post_send,
        56 post_srq_ops, 57 post_srq_recv, 58 query_device_ex, 59 query_ece,
        60 query_port, 61 query_qp, 62 query_qp_data_in_order, 63 query_rt_values,
        64 query_srq, 65 read_counters, 66 reg_dm_mr, 67 reg_dmabuf_mr, 68 reg_mr,
        69 req_notify_cq, 70 rereg_mr, 71 resize_cq, 72 set_ece, 73 unimport_dm,
        74 unimport_mr, 75 unimport_pd,
    );
}

#[test]
fn object_layouts() {
    assert_eq!(size_of::<ibv_cq>(), 128);
    assert_eq!(offset_of!(ibv_cq, handle), 24);
    assert_eq!(offset_of!(ibv_cq, cqe), 28);
    assert_eq!(offset_of!(ibv_cq, comp_events_completed), 120);
    assert_eq!(size_of::<ibv_qp>(), 160);
    assert_eq!(offset_of!(ibv_qp, handle), 48);
    assert_eq!(offset_of!(ibv_qp, qp_num), 52);
    assert_eq!(offset_of!(ibv_qp, state), 56);
    assert_eq!(size_of::<ibv_mr>(), 48);
    assert_eq!(size_of::<verbs_mr>(), 56);
    assert_eq!(size_of::<ibv_pd>(), 16);
    assert_eq!(size_of::<ibv_srq>(), 128);
    assert_eq!(size_of::<ibv_ah>(), 24);
    assert_eq!(size_of::<ibv_device_attr>(), 232);
    assert_eq!(size_of::<ibv_device_attr_ex>(), 400);
    assert_eq!(size_of::<ibv_send_wr>(), 128);
    assert_eq!(size_of::<ibv_recv_wr>(), 32);
    assert_eq!(size_of::<ibv_sge>(), 16);
    assert_eq!(size_of::<ibv_qp_attr>(), 144);
    // v49 appended active_speed_ex (52 -> 56). Debian's v44 library hands
    // providers a 52-byte buffer, so the provider never writes past 52.
    assert_eq!(size_of::<ibv_port_attr>(), 56);
    assert_eq!(offset_of!(ibv_port_attr, active_speed_ex), 52);
}

#[test]
fn command_buffer_sizes() {
    assert_eq!(size_of::<ibv_get_context>(), 16);
    assert_eq!(size_of::<ib_uverbs_get_context_resp>(), 8);
    assert_eq!(size_of::<ibv_query_port>(), 24);
    assert_eq!(size_of::<ibv_create_cq>(), 40);
    assert_eq!(size_of::<ib_uverbs_create_cq_resp>(), 8);
    assert_eq!(size_of::<ibv_alloc_pd>(), 16);
    assert_eq!(size_of::<ib_uverbs_alloc_pd_resp>(), 4);
    assert_eq!(size_of::<ibv_reg_mr>(), 48);
    assert_eq!(size_of::<ib_uverbs_reg_mr_resp>(), 12);
    assert_eq!(size_of::<ibv_create_qp>(), 64);
    assert_eq!(size_of::<ib_uverbs_create_qp_resp>(), 32);
    assert_eq!(size_of::<ibv_modify_qp>(), 120);
}

#[test]
fn omx_abi() {
    assert_eq!(OMX_UVERBS_ABI_VERSION, 2);
    assert_eq!(OMX_DRIVER_ID, 0);
    assert_eq!(OMX_SYSFS_ABI_ATTR, b"omx_abi_version\0");
    assert_eq!(OMX_QPN_SLOT_BITS, 12);
    assert_eq!(OMX_METHOD_CQ_NOTIFY, 0x1000);
    assert_eq!(OMX_ATTR_CQ_NOTIFY_HANDLE, 0x1000);
    assert_eq!(OMX_METHOD_CQ_ERROR, 0x1001);
    assert_eq!(OMX_METHOD_QP_EVENT, 0x1000);
    assert_eq!(OMX_ATTR_QP_EVENT_TYPE, 0x1001);
    assert_eq!(OMX_METHOD_CTX_FATAL_FD, 0x1000);
    assert_eq!(OMX_QP_EVENT_ACCESS_ERR, 3);
    assert_eq!(size_of::<omx_alloc_ucontext_resp>(), 32);
    assert_eq!(offset_of!(omx_alloc_ucontext_resp, abi_version), 0);
    assert_eq!(offset_of!(omx_alloc_ucontext_resp, endpoint), 4);
    assert_eq!(offset_of!(omx_alloc_ucontext_resp, ifindex), 8);
    assert_eq!(offset_of!(omx_alloc_ucontext_resp, flags), 12);
    assert_eq!(offset_of!(omx_alloc_ucontext_resp, mac), 16);
    assert_eq!(offset_of!(omx_alloc_ucontext_resp, netdev_mtu), 24);
    assert_eq!(offset_of!(omx_alloc_ucontext_resp, max_qp_per_context), 28);
}
