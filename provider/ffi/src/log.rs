//! Diagnostics on stderr. `OMX_DEBUG=1` enables debug lines; errors are
//! printed when `OMX_DEBUG` or libibverbs' `IBV_SHOW_WARNINGS` is set, so a
//! quiet application stays quiet. `OMX_STATS=1` prints every counter (drop
//! reasons included, docs/troubleshooting.md) when a QP is destroyed and
//! when a context closes, one line each: `omx-stats qp 0x<qpn> <name>
//! <value>` and `omx-stats ctx <endpoint> <name> <value>`.

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

pub fn debug(args: core::fmt::Arguments<'_>) {
    if flags().0 {
        eprintln!("omx: {args}");
    }
}

pub fn error(args: core::fmt::Arguments<'_>) {
    if flags().1 {
        eprintln!("omx: {args}");
    }
}

/// An actionable error the user must see (missing capability, wrong
/// network namespace): always printed.
pub fn notice(args: core::fmt::Arguments<'_>) {
    eprintln!("omx: {args}");
}
