//! Calls of the rdma_omx driver methods (`kmod-shim/include/uapi/
//! rdma_omx_abi.h`): one uverbs ioctl each, built here from the header's
//! constants and rdma-core's own ioctl structures.
//!
//! Only the progress thread calls them (completion events, async events,
//! CQ errors), except [`fatal_fd`], which `Runtime::io` calls once on the
//! control path: never from inside a post or poll call. Nothing here
//! allocates or takes a lock.

use omx_rdma_sys::{
    ib_uverbs_attr, ib_uverbs_ioctl_hdr, OMX_ATTR_CQ_ERROR_HANDLE, OMX_ATTR_CQ_NOTIFY_HANDLE,
    OMX_ATTR_CTX_FATAL_FD_FD, OMX_ATTR_QP_EVENT_EPOCH, OMX_ATTR_QP_EVENT_HANDLE,
    OMX_ATTR_QP_EVENT_TYPE, OMX_ATTR_SRQ_LIMIT_HANDLE, OMX_DRIVER_ID, OMX_METHOD_CQ_ERROR,
    OMX_METHOD_CQ_NOTIFY, OMX_METHOD_CTX_FATAL_FD, OMX_METHOD_QP_EVENT, OMX_METHOD_SRQ_LIMIT,
    UVERBS_ATTR_F_MANDATORY, UVERBS_OBJECT_CQ, UVERBS_OBJECT_DEVICE, UVERBS_OBJECT_QP,
    UVERBS_OBJECT_SRQ,
};

use crate::errno::Errno;

/// `RDMA_VERBS_IOCTL` = `_IOWR(RDMA_IOCTL_MAGIC, 1, struct ib_uverbs_ioctl_hdr)`,
/// built from the header's magic and struct size (Linux asm-generic ioctl
/// encoding: direction bits 30-31, size 16-29, type 8-15, number 0-7).
pub(crate) const RDMA_VERBS_IOCTL: libc::c_ulong = {
    const IOC_READ_WRITE: libc::c_ulong = 3;
    let size = core::mem::size_of::<ib_uverbs_ioctl_hdr>() as libc::c_ulong;
    (IOC_READ_WRITE << 30)
        | (size << 16)
        | ((omx_rdma_sys::RDMA_IOCTL_MAGIC as libc::c_ulong) << 8)
        | 1
};

/// Most attributes one of our methods takes.
const MAX_ATTRS: usize = 3;

/// One driver-method call: the uverbs ioctl header and its attributes,
/// laid out as the kernel reads them (the header, then `num_attrs`
/// attributes).
#[repr(C)]
pub(crate) struct MethodCall {
    hdr: ib_uverbs_ioctl_hdr,
    attrs: [ib_uverbs_attr; MAX_ATTRS],
}

impl MethodCall {
    fn new(object: u32, method: u32) -> Self {
        // SAFETY: both are plain C structs (integers and unions of
        // integers) for which all-zero is a valid value.
        let mut c: Self = unsafe { core::mem::zeroed() };
        c.hdr.length = core::mem::size_of::<ib_uverbs_ioctl_hdr>() as u16;
        c.hdr.object_id = object as u16;
        c.hdr.method_id = method as u16;
        c.hdr.driver_id = OMX_DRIVER_ID;
        c
    }

    /// Appends a mandatory attribute whose value travels inline in the
    /// attribute's `data` word: an object handle (`len` 0) or a value of
    /// up to 8 bytes (`len` its size: the kernel reads the first `len`
    /// bytes of `data`, which on a little-endian host hold `value`'s low
    /// bytes).
    fn attr(mut self, id: u32, len: u16, value: u64) -> Self {
        let i = usize::from(self.hdr.num_attrs);
        let a = &mut self.attrs[i];
        a.attr_id = id as u16;
        a.len = len;
        a.flags = UVERBS_ATTR_F_MANDATORY as u16;
        a.__bindgen_anon_1.data = value;
        self.hdr.num_attrs += 1;
        self.hdr.length += core::mem::size_of::<ib_uverbs_attr>() as u16;
        self
    }

    /// Issues the call on the context's uverbs command fd.
    pub(crate) fn call(&mut self, cmd_fd: i32) -> Result<(), Errno> {
        // SAFETY: `self` is a complete ioctl buffer whose header length
        // covers exactly the header and the attributes filled in; cmd_fd
        // is the context's uverbs fd (the caller keeps it open).
        let r = unsafe { libc::ioctl(cmd_fd, RDMA_VERBS_IOCTL, self as *mut Self) };
        if r < 0 {
            Err(Errno(
                std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EIO),
            ))
        } else {
            Ok(())
        }
    }
}

/// OMX_METHOD_CQ_NOTIFY: raise the completion event of the CQ `handle`.
pub(crate) fn cq_notify(handle: u32) -> MethodCall {
    MethodCall::new(UVERBS_OBJECT_CQ, OMX_METHOD_CQ_NOTIFY).attr(
        OMX_ATTR_CQ_NOTIFY_HANDLE,
        0,
        handle.into(),
    )
}

/// OMX_METHOD_CQ_ERROR: the CQ `handle` overran (IBV_EVENT_CQ_ERR).
pub(crate) fn cq_error(handle: u32) -> MethodCall {
    MethodCall::new(UVERBS_OBJECT_CQ, OMX_METHOD_CQ_ERROR).attr(
        OMX_ATTR_CQ_ERROR_HANDLE,
        0,
        handle.into(),
    )
}

/// OMX_METHOD_QP_EVENT: the engine moved the QP `handle` to ERROR in
/// reset epoch `epoch`; `event` is an `enum omx_qp_event`.
pub(crate) fn qp_event(handle: u32, event: u32, epoch: u32) -> MethodCall {
    MethodCall::new(UVERBS_OBJECT_QP, OMX_METHOD_QP_EVENT)
        .attr(OMX_ATTR_QP_EVENT_HANDLE, 0, handle.into())
        .attr(OMX_ATTR_QP_EVENT_TYPE, 4, event.into())
        .attr(OMX_ATTR_QP_EVENT_EPOCH, 4, epoch.into())
}

/// OMX_METHOD_SRQ_LIMIT: the SRQ `handle` fell below its armed limit.
pub(crate) fn srq_limit(handle: u32) -> MethodCall {
    MethodCall::new(UVERBS_OBJECT_SRQ, OMX_METHOD_SRQ_LIMIT).attr(
        OMX_ATTR_SRQ_LIMIT_HANDLE,
        0,
        handle.into(),
    )
}

/// OMX_METHOD_CTX_FATAL_FD: the kernel signals the eventfd `fd` when the
/// device is removed under this context.
pub(crate) fn fatal_fd(fd: i32) -> MethodCall {
    MethodCall::new(UVERBS_OBJECT_DEVICE, OMX_METHOD_CTX_FATAL_FD).attr(
        OMX_ATTR_CTX_FATAL_FD_FD,
        4,
        u64::from(fd as u32),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_match_the_kernel_abi() {
        // rdma-core's RDMA_VERBS_IOCTL on x86_64 (provider-contract B.3).
        assert_eq!(RDMA_VERBS_IOCTL, 0xC018_1B01);
        assert_eq!(core::mem::size_of::<ib_uverbs_ioctl_hdr>(), 24);
        assert_eq!(core::mem::size_of::<ib_uverbs_attr>(), 16);
        assert_eq!(core::mem::offset_of!(MethodCall, attrs), 24);

        let c = cq_notify(7);
        assert_eq!(c.hdr.length, 24 + 16);
        assert_eq!(c.hdr.num_attrs, 1);
        assert_eq!(c.hdr.object_id, 3, "UVERBS_OBJECT_CQ");
        assert_eq!(c.hdr.method_id, 0x1000);
        assert_eq!(c.hdr.driver_id, 0);
        assert_eq!(c.attrs[0].attr_id, 0x1000);
        assert_eq!(c.attrs[0].len, 0);
        // SAFETY: the union member written by attr().
        assert_eq!(unsafe { c.attrs[0].__bindgen_anon_1.data }, 7);

        let c = qp_event(9, 3, 2);
        assert_eq!(c.hdr.length, 24 + 3 * 16);
        assert_eq!(c.hdr.object_id, 4, "UVERBS_OBJECT_QP");
        assert_eq!(c.hdr.method_id, 0x1000);
        let ids: Vec<u16> = c.attrs.iter().map(|a| a.attr_id).collect();
        assert_eq!(ids, [0x1000, 0x1001, 0x1002]);
        assert_eq!(c.attrs[1].len, 4);
        // SAFETY: as above.
        let v: Vec<u64> = c
            .attrs
            .iter()
            .map(|a| unsafe { a.__bindgen_anon_1.data })
            .collect();
        assert_eq!(v, [9, 3, 2]);

        let c = cq_error(5);
        assert_eq!((c.hdr.object_id, c.hdr.method_id), (3, 0x1001));
        let c = srq_limit(6);
        assert_eq!(
            (c.hdr.object_id, c.hdr.method_id),
            (5, 0x1000),
            "UVERBS_OBJECT_SRQ"
        );
        assert_eq!((c.attrs[0].attr_id, c.attrs[0].len), (0x1000, 0));
        // SAFETY: as above.
        assert_eq!(unsafe { c.attrs[0].__bindgen_anon_1.data }, 6);
        let c = fatal_fd(11);
        assert_eq!((c.hdr.object_id, c.hdr.method_id), (0, 0x1000));
        assert_eq!(c.attrs[0].len, 4);
        // SAFETY: as above.
        assert_eq!(unsafe { c.attrs[0].__bindgen_anon_1.data }, 11);
    }
}
