//! Diagnostics on stderr. `OMX_DEBUG=1` enables debug lines; errors are
//! printed when `OMX_DEBUG` or libibverbs' `IBV_SHOW_WARNINGS` is set, so a
//! quiet application stays quiet. `OMX_STATS=1` prints every counter (drop
//! reasons included, docs/troubleshooting.md) when a QP is destroyed, when
//! a context closes and, for contexts still open, at process exit, one
//! line each: `omx-stats qp 0x<qpn> <name> <value>` and `omx-stats ctx
//! <endpoint> <name> <value>` (`<endpoint>-at-exit`); a QP that gave up on
//! its peer adds one `omx-stats qp 0x<qpn> gone ...` line ([`gone`]).

use std::sync::OnceLock;

fn set(v: &str) -> bool {
    std::env::var_os(v).is_some_and(|s| !s.is_empty() && s != "0")
}

fn flags() -> &'static (bool, bool, bool) {
    static FLAGS: OnceLock<(bool, bool, bool)> = OnceLock::new();
    FLAGS.get_or_init(|| {
        let debug = set("OMX_DEBUG");
        (debug, debug || set("IBV_SHOW_WARNINGS"), set("OMX_STATS"))
    })
}

pub fn debug_enabled() -> bool {
    flags().0
}

/// `OMX_STATS` is set: counters are printed (see the module doc).
pub fn stats_enabled() -> bool {
    flags().2
}

/// Prints `counters` of one object (`scope` "qp" or "ctx", `id` its QPN or
/// endpoint) as `omx-stats` lines, if `OMX_STATS` is set.
pub fn stats<'a>(scope: &str, id: &str, counters: impl IntoIterator<Item = (&'a str, u64)>) {
    if !stats_enabled() {
        return;
    }
    use std::io::Write;
    let mut out = String::new();
    for (name, v) in counters {
        out.push_str(&format!("omx-stats {scope} {id} {name} {v}\n"));
    }
    // One write, so lines of two threads do not interleave.
    let _ = std::io::stderr().write_all(out.as_bytes());
}

/// Why a QP declared its peer gone (IBV_WC_RETRY_EXC_ERR), as one
/// `omx-stats qp 0x<qpn> gone ...` line, if `OMX_STATS` is set.
pub fn gone(qpn: u32, r: &omx_engine::GoneReport) {
    if !stats_enabled() {
        return;
    }
    use std::io::Write;
    let line = format!(
        "omx-stats qp {qpn:#x} gone silent_us={} unit_us={} srtt_us={} rto_us={} cwnd={} outstanding={} credits_left={}\n",
        r.silent_ns / 1000,
        r.unit_ns / 1000,
        r.srtt_ns / 1000,
        r.rto_ns / 1000,
        r.cwnd,
        r.outstanding,
        r.credits_left
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
}

pub fn debug(args: core::fmt::Arguments<'_>) {
    if flags().0 {
        line(args);
    }
}

pub fn error(args: core::fmt::Arguments<'_>) {
    if flags().1 {
        line(args);
    }
}

/// An actionable error the user must see (missing capability, wrong
/// network namespace): always printed.
pub fn notice(args: core::fmt::Arguments<'_>) {
    line(args);
}

/// The longest diagnostic line; longer ones are cut and end in `...`.
const LINE_MAX: usize = 512;

/// A line being formatted on the stack: no allocation, so diagnostics are
/// safe on the post and poll paths.
struct LineBuf {
    buf: [u8; LINE_MAX],
    len: usize,
    cut: bool,
}

impl core::fmt::Write for LineBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = LINE_MAX - 4 - self.len; // keep room for "...\n"
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        self.cut |= n < s.len();
        Ok(())
    }
}

/// `omx: <args>\n` as one byte string (cut at [`LINE_MAX`]).
fn format_line(args: core::fmt::Arguments<'_>) -> LineBuf {
    use core::fmt::Write;
    let mut b = LineBuf {
        buf: [0; LINE_MAX],
        len: 0,
        cut: false,
    };
    let _ = b.write_str("omx: ");
    let _ = b.write_fmt(args);
    let tail: &[u8] = if b.cut { b"...\n" } else { b"\n" };
    b.buf[b.len..b.len + tail.len()].copy_from_slice(tail);
    b.len += tail.len();
    b
}

/// Prints one diagnostic line with a single write(2). Rust's `eprintln!`
/// writes each formatted piece separately, so the application's own
/// output (sharing the file, as `prog >log 2>&1` does) could land in the
/// middle of our line.
fn line(args: core::fmt::Arguments<'_>) {
    use std::io::Write;
    let b = format_line(args);
    let _ = std::io::stderr().write_all(&b.buf[..b.len]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(args: core::fmt::Arguments<'_>) -> String {
        let b = format_line(args);
        String::from_utf8_lossy(&b.buf[..b.len]).into_owned()
    }

    #[test]
    fn a_line_is_prefixed_and_terminated() {
        assert_eq!(
            text(format_args!("endpoint {}: gone", 7)),
            "omx: endpoint 7: gone\n"
        );
    }

    #[test]
    fn a_long_line_is_cut_and_marked() {
        let long = "x".repeat(2 * LINE_MAX);
        let t = text(format_args!("{long}"));
        assert_eq!(t.len(), LINE_MAX);
        assert!(t.starts_with("omx: xxx"));
        assert!(t.ends_with("x...\n"));
    }

    #[test]
    fn a_line_that_just_fits_is_not_marked() {
        let s = "y".repeat(LINE_MAX - 4 - "omx: ".len());
        let t = text(format_args!("{s}"));
        assert!(t.ends_with("y\n"));
        assert_eq!(t.len(), LINE_MAX - 3);
    }
}
