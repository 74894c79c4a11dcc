//! `omx-craft qp-table`: the provider's verdict on `modify_qp` cases, in
//! the format of `tests/progs/omx_modify_table` (which walks the same
//! cases on the kernel module's QP shadow), so that the VM scenario can
//! `diff` the two: docs/security.md §3, issue 11 §6.
//!
//! A line is `TYPE CUR NEXT MASK [VERDICT]` (`RC INIT RTR 0x00139101 0`);
//! the answer is the same line with the verdict the kernel must give if
//! it agrees with the engine: the provider never sends `IBV_QP_AV` or
//! `IBV_QP_ALT_PATH` to the kernel (it keeps address vectors in user
//! space). A mask holding ALT_PATH is refused by ib_core itself with
//! EINVAL (22) before the driver sees it (the core bans alternate paths
//! on RoCE ports, and rdma_omx declares RoCE); one holding AV reaches
//! the driver, which refuses it with EOPNOTSUPP (95). Any other mask is
//! accepted (0) exactly when the engine accepts it with or without AV
//! (the kernel cannot tell whether the application's mask held AV), else
//! refused with EINVAL (22).

use omx_engine::{attr_mask, qp_attr_mask_ok, QpState, QpType};

fn qp_type(s: &str) -> Option<QpType> {
    Some(match s {
        "RC" => QpType::Rc,
        "UC" => QpType::Uc,
        "UD" => QpType::Ud,
        _ => return None,
    })
}

fn state(s: &str) -> Option<QpState> {
    Some(match s {
        "RESET" => QpState::Reset,
        "INIT" => QpState::Init,
        "RTR" => QpState::Rtr,
        "RTS" => QpState::Rts,
        "SQD" => QpState::Sqd,
        "SQE" => QpState::Sqe,
        "ERR" => QpState::Err,
        _ => return None,
    })
}

/// The errno the kernel gives for this case if it agrees with the engine
/// (0: accepted).
pub fn expected(t: QpType, cur: QpState, next: QpState, mask: u32) -> i32 {
    if mask & attr_mask::ALT_PATH != 0 {
        return libc::EINVAL;
    }
    if mask & attr_mask::AV != 0 {
        return libc::EOPNOTSUPP;
    }
    if qp_attr_mask_ok(t, cur, next, mask) || qp_attr_mask_ok(t, cur, next, mask | attr_mask::AV) {
        0
    } else {
        libc::EINVAL
    }
}

/// The answer to one case line, or `None` if it is not one.
pub fn answer(line: &str) -> Option<String> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if !(4..=5).contains(&f.len()) {
        return None;
    }
    let t = qp_type(f[0])?;
    let (cur, next) = (state(f[1])?, state(f[2])?);
    let mask = u32::from_str_radix(f[3].strip_prefix("0x")?, 16).ok()?;
    // The mask names the target state; without IBV_QP_STATE it stays.
    let to = if mask & attr_mask::STATE != 0 {
        next
    } else {
        cur
    };
    let v = expected(t, cur, to, mask);
    Some(format!("{} {} {} {} {v}", f[0], f[1], f[2], f[3]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_follow_the_engine_table_seen_through_the_kernel() {
        // INIT->RTR of an RC QP with everything but AV: the kernel cannot
        // see AV, the engine needs it, so the kernel must accept.
        assert_eq!(
            answer("RC INIT RTR 0x00129101 0").as_deref(),
            Some("RC INIT RTR 0x00129101 0")
        );
        // Without the RQ PSN: refused on both sides.
        assert_eq!(
            answer("RC INIT RTR 0x00128101 0").as_deref(),
            Some("RC INIT RTR 0x00128101 22")
        );
        // AV never reaches the kernel; ib_core refuses ALT_PATH first.
        assert_eq!(
            answer("RC INIT RTR 0x00129181").as_deref(),
            Some("RC INIT RTR 0x00129181 95")
        );
        assert_eq!(
            answer("RC RTS RTS 0x00004001 0").as_deref(),
            Some("RC RTS RTS 0x00004001 22")
        );
        // RESET->ERR is no transition (the kernel's table).
        assert_eq!(
            answer("UD RESET ERR 0x00000001 0").as_deref(),
            Some("UD RESET ERR 0x00000001 22")
        );
        assert_eq!(answer("XX RESET ERR 0x1 0"), None);
        assert_eq!(answer("RC RESET ERR 1 0"), None);
        assert_eq!(answer(""), None);
    }
}
