//! Address resolution: the destination MAC of a QP comes from the GID in
//! its address vector.
//!
//! A link-local `fe80::/64` GID with a modified EUI-64 interface ID (what
//! the rdma_omx kernel module puts at GID index 0) carries the MAC itself:
//! the EUI-64 with `ff:fe` removed and the universal/local bit flipped
//! back, no lookup needed. Any other unicast GID (IPv4-mapped
//! `::ffff:a.b.c.d` at index ≥ 1, or an IPv6 address) names an IP address,
//! whose MAC the caller resolves through the neighbour table
//! ([`AddrError::NeedsNeighbour`]); multicast and the unspecified GID are
//! refused.

/// Why a GID does not carry its MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrError {
    /// An IP address (IPv4-mapped or IPv6): resolve it through the
    /// neighbour table.
    NeedsNeighbour,
    /// Multicast or unspecified: no unicast peer.
    Unsupported,
}

/// The MAC address encoded in a link-local EUI-64 GID (network order).
pub fn mac_from_gid(gid: &[u8; 16]) -> Result<[u8; 6], AddrError> {
    if gid[0] == 0xff || gid == &[0; 16] {
        return Err(AddrError::Unsupported);
    }
    let id = &gid[8..];
    let eui64_link_local =
        gid[0] == 0xfe && gid[1] & 0xc0 == 0x80 && gid[2..8] == [0; 6] && id[3..5] == [0xff, 0xfe];
    if !eui64_link_local {
        return Err(AddrError::NeedsNeighbour);
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
    fn ip_gids_need_the_neighbour_table() {
        let mut v4 = [0u8; 16];
        v4[10] = 0xff;
        v4[11] = 0xff;
        v4[12..].copy_from_slice(&[10, 78, 0, 1]);
        assert_eq!(mac_from_gid(&v4), Err(AddrError::NeedsNeighbour));
        // A link-local address that is not EUI-64 (e.g. stable privacy).
        let mut g = [0u8; 16];
        g[0] = 0xfe;
        g[1] = 0x80;
        g[8..].copy_from_slice(&[0, 0x11, 0x22, 0x33, 0x44, 0x33, 0x44, 0x55]);
        assert_eq!(mac_from_gid(&g), Err(AddrError::NeedsNeighbour));
        let mut global = [0u8; 16];
        global[..2].copy_from_slice(&[0x20, 0x01]);
        global[15] = 1;
        assert_eq!(mac_from_gid(&global), Err(AddrError::NeedsNeighbour));
    }

    #[test]
    fn no_unicast_peer_refused() {
        assert_eq!(mac_from_gid(&[0; 16]), Err(AddrError::Unsupported));
        let mut mc = [0u8; 16];
        mc[0] = 0xff;
        mc[1] = 0x02;
        mc[15] = 1;
        assert_eq!(mac_from_gid(&mc), Err(AddrError::Unsupported));
    }
}
