//! Deciding whether a uverbs device belongs to rdma_omx (pure logic).
//!
//! libibverbs (v44 and v55 `init.c match_device()`) first looks the device up
//! in the provider's match table and then, because `match_device` is set,
//! calls it **unconditionally** and lets it decide alone. So the table is a
//! hint and this module is the authority:
//!
//! * `<ibdev>/omx_abi_version` readable: claim the device iff it holds
//!   exactly `OMX_UVERBS_ABI_VERSION` (a different number is an omx device
//!   of another ABI: refuse it, with a warning).
//! * attribute missing but the ibdev sysfs directory exists: not ours.
//! * sysfs unavailable altogether (a container without /sys, discovery by
//!   netlink): fall back to the table's name match `rdma_device:*Nomx*`;
//!   the ABI version in the GET_CONTEXT response is checked again when the
//!   device is opened.

use omx_rdma_sys::OMX_UVERBS_ABI_VERSION;

/// What reading `<ibdev_path>/omx_abi_version` gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AbiAttr {
    /// Content (libibverbs strips the trailing newline).
    Read(Vec<u8>),
    /// The file could not be read.
    Unreadable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Claim,
    /// An omx device whose kernel speaks another omx ABI.
    WrongAbi(u32),
    NotOurs,
}

/// Parses the decimal ABI number the kernel prints (`"1\n"`).
pub fn parse_abi_version(raw: &[u8]) -> Option<u32> {
    let s = core::str::from_utf8(raw).ok()?;
    let s = s.trim_end_matches(['\n', '\0']).trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// See the module doc. `ibdev_dir_exists`: whether the device's sysfs
/// directory could be seen; `name_matched`: the table hit left by
/// libibverbs in `verbs_sysfs_dev.match`.
pub fn decide(attr: &AbiAttr, ibdev_dir_exists: bool, name_matched: bool) -> Decision {
    match attr {
        AbiAttr::Read(raw) => match parse_abi_version(raw) {
            Some(v) if v == OMX_UVERBS_ABI_VERSION => Decision::Claim,
            Some(v) => Decision::WrongAbi(v),
            None => Decision::NotOurs,
        },
        AbiAttr::Unreadable if !ibdev_dir_exists && name_matched => Decision::Claim,
        AbiAttr::Unreadable => Decision::NotOurs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_format() {
        assert_eq!(parse_abi_version(b"1\n"), Some(1));
        assert_eq!(parse_abi_version(b"1"), Some(1));
        assert_eq!(parse_abi_version(b"17"), Some(17));
        assert_eq!(parse_abi_version(b""), None);
        assert_eq!(parse_abi_version(b"-1"), None);
        assert_eq!(parse_abi_version(b"one"), None);
        assert_eq!(parse_abi_version(b"99999999999"), None);
    }

    #[test]
    fn attribute_is_the_authority() {
        let ours = AbiAttr::Read(OMX_UVERBS_ABI_VERSION.to_string().into_bytes());
        assert_eq!(decide(&ours, true, false), Decision::Claim);
        assert_eq!(decide(&ours, true, true), Decision::Claim);
        assert_eq!(
            decide(&AbiAttr::Read(b"1".to_vec()), true, true),
            Decision::WrongAbi(1)
        );
        assert_eq!(
            decide(&AbiAttr::Read(b"x".to_vec()), true, true),
            Decision::NotOurs
        );
        // A device named omx* whose sysfs dir exists but has no attribute
        // (another driver) is not claimed.
        assert_eq!(decide(&AbiAttr::Unreadable, true, true), Decision::NotOurs);
    }

    #[test]
    fn name_fallback_only_without_sysfs() {
        assert_eq!(decide(&AbiAttr::Unreadable, false, true), Decision::Claim);
        assert_eq!(
            decide(&AbiAttr::Unreadable, false, false),
            Decision::NotOurs
        );
    }
}
