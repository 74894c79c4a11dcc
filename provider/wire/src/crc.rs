//! End-to-end CRC32C (docs/wire.md §6).
//!
//! We use the `crc32c` crate: it computes the Castagnoli CRC with the
//! SSE 4.2 `crc32` instruction on x86-64 and the ARMv8 CRC extension on
//! aarch64 (runtime detected), with a table fallback elsewhere. At 10 GbE
//! rates a table-driven CRC (as in the `crc` crate) costs about one core per
//! direction, the hardware one a few percent; the crate is small, widely
//! used and keeps its `unsafe` behind a safe `crc32c(&[u8]) -> u32` API.

/// CRC-32C (Castagnoli) of `data`, init and final xor 0xFFFFFFFF.
#[inline]
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }
}
