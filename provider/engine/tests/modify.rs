//! `RcQp::modify`: the whole transition is validated before anything
//! changes (docs/wire.md §7.4), values are range-checked as the kernel
//! module does, and the reset epoch counts what the kernel counts.

use omx_engine::testing::{rts_qp, Conn};
use omx_engine::*;
use omx_wire::{Psn, Qpn};
use proptest::prelude::*;

const QPN: u32 = 0x1001;
const PEER: u32 = 0x2001;

/// MTU and timer unlike a new QP's defaults, so that any attribute
/// applied by a refused modify shows.
fn conn() -> Conn {
    Conn {
        mtu: PathMtu::Mtu512,
        min_rnr_timer: 3,
        ..Conn::new(QPN, PEER)
    }
}

fn fresh() -> RcQp {
    RcQp::new(QpConfig::new(Qpn::new(QPN)))
}

fn to(s: QpState) -> QpAttr {
    QpAttr {
        state: Some(s),
        ..QpAttr::default()
    }
}

/// A QP in each state it can be driven to, with some history (posted
/// WRs, traffic state) so that a partial change would show.
fn qps_in_every_state() -> Vec<RcQp> {
    let [init, rtr, _] = conn().steps();
    let mut out = vec![fresh()];
    let mut q = fresh();
    q.modify(&init).unwrap();
    out.push(q);
    let mut q = fresh();
    q.modify(&init).unwrap();
    q.modify(&rtr).unwrap();
    out.push(q);
    let mut q = rts_qp(QpConfig::new(Qpn::new(QPN)), &conn());
    let sg = SgList::single(0, 8, 1);
    q.post_send(SendWr {
        wr_id: 1,
        op: SendOp::Send,
        sg,
        signaled: true,
        solicited: false,
    })
    .unwrap();
    q.post_recv(RecvWr { wr_id: 2, sg }).unwrap();
    out.push(q);
    let mut q = rts_qp(QpConfig::new(Qpn::new(QPN)), &conn());
    q.modify(&to(QpState::Sqd)).unwrap();
    out.push(q);
    let mut q = rts_qp(QpConfig::new(Qpn::new(QPN)), &conn());
    q.modify(&to(QpState::Err)).unwrap();
    out.push(q);
    out
}

/// Attributes each refused in some state, one per kind of refusal, each
/// otherwise a valid transition where one exists (so that a modify that
/// changed attributes before validating all of them would show).
fn refusals(state: QpState) -> Vec<(&'static str, QpAttr)> {
    let [init, rtr, rts] = conn().steps();
    // The attributes of the transition the QP would normally take next.
    let next = match state {
        QpState::Reset => init,
        QpState::Init => rtr,
        QpState::Rtr => rts,
        _ => QpAttr {
            min_rnr_timer: Some(3),
            ..to(QpState::Rts)
        },
    };
    let with = |f: fn(&mut QpAttr)| {
        let mut a = next;
        f(&mut a);
        a
    };
    vec![
        ("transition", QpAttr { ..to(QpState::Sqe) }),
        ("missing", with(|a| a.path = None)),
        (
            "missing state-less",
            QpAttr {
                state: None,
                ..next
            },
        ),
        ("not accepted", with(|a| a.extra_mask |= attr_mask::QKEY)),
        ("unknown bit", with(|a| a.extra_mask |= 1 << 30)),
        ("cap", with(|a| a.extra_mask |= attr_mask::CAP)),
        (
            "modelled as extra",
            with(|a| a.extra_mask |= attr_mask::SQ_PSN),
        ),
        ("retry_cnt", with(|a| a.retry_cnt = Some(8))),
        ("rnr_retry", with(|a| a.rnr_retry = Some(9))),
        ("timeout", with(|a| a.timeout = Some(32))),
        ("min_rnr_timer", with(|a| a.min_rnr_timer = Some(32))),
        ("max_rd_atomic", with(|a| a.max_rd_atomic = Some(17))),
        (
            "max_dest_rd_atomic",
            with(|a| a.max_dest_rd_atomic = Some(17)),
        ),
        (
            "access bits",
            with(|a| a.access_flags = Some(access::REMOTE_READ | 32)),
        ),
        ("dest qpn", with(|a| a.dest_qpn = Some(1 << 24 | PEER))),
    ]
}

/// Every refusal, in every state, leaves the QP exactly as it was (its
/// whole Debug output, which shows every field of every part).
#[test]
fn a_refused_modify_changes_nothing() {
    let mut refused = 0;
    for mut qp in qps_in_every_state() {
        let state = qp.state();
        for (what, attr) in refusals(state) {
            let before = format!("{qp:?}");
            let checked = qp.check_modify(&attr);
            let r = qp.modify(&attr);
            assert_eq!(r, checked, "{what} in {}", state.name());
            if r.is_err() {
                refused += 1;
                assert_eq!(format!("{qp:?}"), before, "{what} in {}", state.name());
            }
        }
    }
    // Every kind in every state, bar the few that happen to be valid.
    assert!(refused >= 6 * 13, "{refused}");
}

#[test]
fn refusal_kinds() {
    let mut qp = fresh();
    let [init, rtr, rts] = conn().steps();
    assert_eq!(
        qp.modify(&rts),
        Err(ModifyError::InvalidTransition {
            from: QpState::Reset,
            to: QpState::Rts
        })
    );
    assert_eq!(
        qp.modify(&to(QpState::Err)),
        Err(ModifyError::InvalidTransition {
            from: QpState::Reset,
            to: QpState::Err
        }),
        "RESET -> ERR is not in the kernel's table"
    );
    qp.modify(&init).unwrap();
    let no_rnr_timer = QpAttr {
        min_rnr_timer: None,
        ..rtr
    };
    assert!(matches!(
        qp.modify(&no_rnr_timer),
        Err(ModifyError::InvalidMask {
            from: QpState::Init,
            to: QpState::Rtr,
            ..
        })
    ));
    assert_eq!(
        qp.modify(&QpAttr {
            dest_qpn: Some(0x100_0000),
            ..rtr
        }),
        Err(ModifyError::InvalidAttribute)
    );
    qp.modify(&rtr).unwrap();
    // RTR -> RTR is no transition, even with no attribute.
    assert!(matches!(
        qp.modify(&QpAttr::default()),
        Err(ModifyError::InvalidTransition { .. })
    ));
    qp.modify(&rts).unwrap();
    // Access bits a QP does not take (ZERO_BASED, ON_DEMAND, RELAXED
    // ORDERING), even with the ones it takes.
    for bad in [32, 64, 1 << 20, access::REMOTE_WRITE | 128] {
        assert_eq!(
            qp.modify(&QpAttr {
                access_flags: Some(bad),
                ..QpAttr::default()
            }),
            Err(ModifyError::InvalidAttribute),
            "{bad:#x}"
        );
    }
    qp.modify(&QpAttr {
        access_flags: Some(access::QP_VALID),
        ..QpAttr::default()
    })
    .unwrap();
    // RTS -> RTS with nothing: fine; with a timeout: not accepted.
    qp.modify(&QpAttr::default()).unwrap();
    assert!(matches!(
        qp.modify(&QpAttr {
            timeout: Some(3),
            ..QpAttr::default()
        }),
        Err(ModifyError::InvalidMask { .. })
    ));
}

/// PSNs are masked to 24 bits, a destination QPN above 24 bits is
/// refused: what the kernel module does with the same values.
#[test]
fn psns_masked_dest_qpn_refused() {
    let mut qp = fresh();
    let [init, rtr, rts] = conn().steps();
    qp.modify(&init).unwrap();
    qp.modify(&QpAttr {
        rq_psn: Some(Psn::new(0x0100_0005)),
        ..rtr
    })
    .unwrap();
    qp.modify(&QpAttr {
        sq_psn: Some(Psn::new(0xFF00_0007)),
        ..rts
    })
    .unwrap();
    let mut buf = vec![0; 2048];
    let mem = omx_engine::testing::FakeMemory::default();
    qp.post_send(SendWr {
        wr_id: 1,
        op: SendOp::Send,
        sg: SgList::EMPTY,
        signaled: true,
        solicited: false,
    })
    .unwrap();
    let t = qp.poll_transmit(Instant::ZERO, &mut buf, &mem).unwrap();
    assert_eq!(omx_engine::testing::parse(&buf[..t.len]).bth.psn.value(), 7);
    let mut q2 = fresh();
    q2.modify(&init).unwrap();
    for bad in [1 << 24, u32::MAX] {
        assert_eq!(
            q2.modify(&QpAttr {
                dest_qpn: Some(bad),
                ..rtr
            }),
            Err(ModifyError::InvalidAttribute)
        );
    }
}

#[test]
fn reset_epoch_counts_successful_modifies_to_reset() {
    let mut qp = fresh();
    let [init, ..] = conn().steps();
    assert_eq!(qp.reset_epoch(), 0);
    qp.modify(&to(QpState::Reset)).unwrap();
    assert_eq!(qp.reset_epoch(), 1, "RESET -> RESET counts");
    qp.modify(&init).unwrap();
    assert_eq!(qp.reset_epoch(), 1);
    assert!(qp.modify(&to(QpState::Rts)).is_err());
    assert_eq!(qp.reset_epoch(), 1, "a refused modify does not count");
    qp.modify(&to(QpState::Reset)).unwrap();
    assert_eq!(qp.reset_epoch(), 2);
    let mut qp = rts_qp(QpConfig::new(Qpn::new(QPN)), &conn());
    qp.modify(&to(QpState::Err)).unwrap();
    qp.modify(&to(QpState::Reset)).unwrap();
    assert_eq!(qp.reset_epoch(), 1);
}

#[test]
fn access_flags_are_zero_after_creation_and_reset() {
    let mut qp = fresh();
    assert_eq!(qp.access_flags(), 0);
    let [init, ..] = conn().steps();
    qp.modify(&init).unwrap();
    assert_eq!(qp.access_flags(), conn().access_flags);
    qp.modify(&QpAttr {
        access_flags: Some(access::REMOTE_READ | access::MW_BIND),
        ..QpAttr::default()
    })
    .unwrap();
    assert_eq!(qp.access_flags(), access::REMOTE_READ | access::MW_BIND);
    qp.modify(&to(QpState::Reset)).unwrap();
    assert_eq!(qp.access_flags(), 0);
}

#[test]
fn max_dest_rd_atomic_zero_is_legal_above_16_is_not() {
    for (n, ok) in [(0, true), (1, true), (16, true), (17, false), (255, false)] {
        let mut qp = fresh();
        let [init, rtr, rts] = conn().steps();
        qp.modify(&init).unwrap();
        let r = qp.modify(&QpAttr {
            max_dest_rd_atomic: Some(n),
            ..rtr
        });
        assert_eq!(r.is_ok(), ok, "max_dest_rd_atomic {n}");
        let mut qp = fresh();
        qp.modify(&init).unwrap();
        qp.modify(&rtr).unwrap();
        let r = qp.modify(&QpAttr {
            max_rd_atomic: Some(n),
            ..rts
        });
        assert_eq!(r.is_ok(), ok, "max_rd_atomic {n}");
    }
}

fn state_strategy() -> impl Strategy<Value = QpState> {
    proptest::sample::select(QpState::ALL.to_vec())
}

fn attr_strategy() -> impl Strategy<Value = QpAttr> {
    let small = || proptest::option::of(0u8..40);
    (
        proptest::option::of(state_strategy()),
        proptest::option::of(prop_oneof![Just(0u32), Just(6), any::<u32>()]),
        proptest::option::of(prop_oneof![Just(PEER), any::<u32>()]),
        (small(), small(), small(), small(), small(), small()),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![
            Just(0u32),
            Just(attr_mask::PKEY_INDEX | attr_mask::PORT),
            any::<u32>().prop_map(|m| m & !QpAttr::MODELLED_MASK),
            any::<u32>(),
        ],
    )
        .prop_map(
            |(state, access_flags, dest_qpn, (a, b, c, d, e, f), mtu, psns, path, extra)| QpAttr {
                state,
                access_flags,
                path_mtu: mtu.then_some(PathMtu::Mtu512),
                dest_qpn,
                rq_psn: psns.then_some(Psn::new(5)),
                sq_psn: psns.then_some(Psn::new(9)),
                timeout: a,
                retry_cnt: b,
                rnr_retry: c,
                min_rnr_timer: d,
                max_rd_atomic: e,
                max_dest_rd_atomic: f,
                path: path.then(|| conn().path()),
                qkey: None,
                extra_mask: extra,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any sequence of modifies: each one is accepted exactly when
    /// check_modify says so, and the mask part of that answer is the
    /// table's; a refused one changes nothing.
    #[test]
    fn modify_is_check_then_apply(attrs in proptest::collection::vec(attr_strategy(), 1..12)) {
        let mut qp = rts_qp(QpConfig::new(Qpn::new(QPN)), &conn());
        for a in &attrs {
            let before = format!("{qp:?}");
            let from = qp.state();
            let to = a.state.unwrap_or(from);
            let checked = qp.check_modify(a);
            if checked.is_ok() {
                prop_assert!(qp_attr_mask_ok(QpType::Rc, from, to, a.mask()));
            }
            let r = qp.modify(a);
            prop_assert_eq!(r, checked);
            if r.is_err() {
                prop_assert_eq!(format!("{qp:?}"), before);
            } else {
                prop_assert_eq!(qp.state(), to);
            }
        }
    }
}
