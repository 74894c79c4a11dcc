//! Address resolution: the destination MAC of a QP comes from the GID in
//! its address vector.
//!
//! Only link-local `fe80::/64` GIDs with a modified EUI-64 interface ID
//! (what the rdma_omx kernel module puts at GID index 0) are supported: the
//! MAC is the EUI-64 with `ff:fe` removed and the universal/local bit
//! flipped back. IPv4-mapped GIDs (RoCE-style, index ≥ 1) would need ARP
//! and are refused for now.

/// Why a GID has no MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrError {
    /// IPv4-mapped GID (`::ffff:a.b.c.d`): needs neighbour resolution,
    /// not implemented.
    Ipv4Mapped,
    /// Not a link-local EUI-64 GID.
    Unsupported,
}

/// The MAC address encoded in a link-local EUI-64 GID (network order).
pub fn mac_from_gid(gid: &[u8; 16]) -> Result<[u8; 6], AddrError> {
    if gid[..10] == [0; 10] && gid[10] == 0xff && gid[11] == 0xff {
        return Err(AddrError::Ipv4Mapped);
    }
    if gid[0] != 0xfe || gid[1] & 0xc0 != 0x80 || gid[2..8] != [0; 6] {
        return Err(AddrError::Unsupported);
    }
    let id = &gid[8..];
    if id[3] != 0xff || id[4] != 0xfe {
        return Err(AddrError::Unsupported);
    }
    Ok([id[0] ^ 0x02, id[1], id[2], id[5], id[6], id[7]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eui64_inverts() {
        // MAC 02:11:22:33:44:55 -> fe80::0011:22ff:fe33:4455
        let mut g = [0u8; 16];
        g[0] = 0xfe;
        g[1] = 0x80;
        g[8..].copy_from_slice(&[0x00, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55]);
        assert_eq!(mac_from_gid(&g), Ok([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]));
    }

    #[test]
    fn others_refused() {
        let mut v4 = [0u8; 16];
        v4[10] = 0xff;
        v4[11] = 0xff;
        v4[12..].copy_from_slice(&[10, 78, 0, 1]);
        assert_eq!(mac_from_gid(&v4), Err(AddrError::Ipv4Mapped));
        assert_eq!(mac_from_gid(&[0; 16]), Err(AddrError::Unsupported));
        let mut g = [0u8; 16];
        g[0] = 0xfe;
        g[1] = 0x80;
        g[8..].copy_from_slice(&[0, 0x11, 0x22, 0x33, 0x44, 0x33, 0x44, 0x55]);
        assert_eq!(mac_from_gid(&g), Err(AddrError::Unsupported));
    }
}
