//! Diagnostics on stderr. `OMX_DEBUG=1` enables debug lines; errors are
//! printed when `OMX_DEBUG` or libibverbs' `IBV_SHOW_WARNINGS` is set, so a
//! quiet application stays quiet.

use std::sync::OnceLock;

fn flags() -> &'static (bool, bool) {
    static FLAGS: OnceLock<(bool, bool)> = OnceLock::new();
    FLAGS.get_or_init(|| {
        let set = |v: &str| std::env::var_os(v).is_some_and(|s| !s.is_empty() && s != "0");
        let debug = set("OMX_DEBUG");
        (debug, debug || set("IBV_SHOW_WARNINGS"))
    })
}

pub fn debug_enabled() -> bool {
    flags().0
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
