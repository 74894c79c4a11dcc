//! Property tests on the simulated network: every posted WR completes
//! exactly once, in order, with exactly the bytes that were sent (an
//! atomic: with the value the counter held after the atomics before it,
//! executed once), or the QP errors out as IBTA says (one error
//! completion, then flushes).

mod sim;

use omx_engine::*;
use proptest::prelude::*;
use sim::*;

#[derive(Debug, Clone, Copy)]
enum Op {
    Send {
        len: u32,
        imm: Option<u32>,
    },
    Write {
        len: u32,
        imm: Option<u32>,
    },
    Read {
        len: u32,
    },
    /// FETCH_AND_ADD of `add` on B's counter.
    FetchAdd {
        add: u64,
    },
    /// CMP_AND_SWP on B's counter; `hit`: compare with the value the
    /// counter holds then (the swap happens), else with something else.
    CmpSwap {
        hit: bool,
        swap: u64,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let len = prop_oneof![0u32..64, 64u32..5000, 5000u32..40_000];
    (
        0u8..5,
        len,
        proptest::option::of(any::<u32>()),
        any::<u64>(),
    )
        .prop_map(|(k, len, imm, v)| match k {
            0 => Op::Send { len, imm },
            1 => Op::Write { len, imm },
            2 => Op::Read { len },
            3 => Op::FetchAdd { add: v },
            _ => Op::CmpSwap {
                hit: v & 1 == 0,
                swap: v,
            },
        })
}

fn mtu_strategy() -> impl Strategy<Value = PathMtu> {
    prop_oneof![
        Just(PathMtu::Mtu256),
        Just(PathMtu::Mtu512),
        Just(PathMtu::Mtu1024),
        Just(PathMtu::Mtu2048),
        Just(PathMtu::Mtu4096),
    ]
}

const A_SRC: u32 = 1; // A: source of SEND/WRITE
const A_DST: u32 = 5; // A: READ destination
const B_RECV: u32 = 2; // B: receive buffers
const B_WRITE: u32 = 3; // B: RDMA WRITE target
const B_READ: u32 = 4; // B: RDMA READ source
const B_CTR: u32 = 6; // B: the atomics' counter (8 bytes)
const A_RES: u32 = 7; // A: the atomics' results, 8 bytes per WR
const SLOT: u64 = 64 * 1024;

struct Case {
    ops: Vec<Op>,
    src: Vec<u8>,
    remote: Vec<u8>,
}

fn run_case(
    ops: Vec<Op>,
    mtu: PathMtu,
    psn: u32,
    faults: Faults,
    seed: u64,
) -> Result<(), TestCaseError> {
    let p = Params {
        mtu,
        psn_a: psn,
        psn_b: psn ^ 0x80_0000,
        ..Params::default()
    };
    let mut net = Net::new(p, seed);
    let n = ops.len() as u64;
    let case = Case {
        src: net.rng.bytes((n * SLOT) as usize),
        remote: net.rng.bytes((n * SLOT) as usize),
        ops,
    };
    net.a.add_region(A_SRC, 0, case.src.clone());
    net.a.add_region(A_DST, 0, vec![0; (n * SLOT) as usize]);
    net.b.add_region(B_RECV, 0, vec![0; (n * SLOT) as usize]);
    net.b.add_region(B_WRITE, 0, vec![0; (n * SLOT) as usize]);
    net.b.add_region(B_READ, 0, case.remote.clone());
    net.b.add_region(B_CTR, 0, 7u64.to_ne_bytes().to_vec());
    net.a.add_region(A_RES, 0, vec![0; (n * 8) as usize]);
    net.set_faults(faults);
    // What each atomic returns and leaves, executed once each, in order.
    let mut ctr = 7u64;
    let mut atomic_ret = vec![None; case.ops.len()];

    let mut expected_recv = Vec::new(); // (wr index, len, imm, opcode)
    for (i, op) in case.ops.iter().enumerate() {
        let base = i as u64 * SLOT;
        let (wr_op, lkey, len) = match *op {
            Op::Send { len, imm } => {
                expected_recv.push((i, len, imm, WcOpcode::Recv));
                (imm.map_or(SendOp::Send, SendOp::SendWithImm), A_SRC, len)
            }
            Op::Write { len, imm } => {
                if imm.is_some() {
                    expected_recv.push((i, len, imm, WcOpcode::RecvRdmaWithImm));
                }
                let op = match imm {
                    Some(imm) => SendOp::RdmaWriteWithImm {
                        remote_addr: base,
                        rkey: B_WRITE,
                        imm,
                    },
                    None => SendOp::RdmaWrite {
                        remote_addr: base,
                        rkey: B_WRITE,
                    },
                };
                (op, A_SRC, len)
            }
            Op::Read { len } => (
                SendOp::RdmaRead {
                    remote_addr: base,
                    rkey: B_READ,
                },
                A_DST,
                len,
            ),
            Op::FetchAdd { add } => {
                atomic_ret[i] = Some(ctr);
                ctr = ctr.wrapping_add(add);
                let op = SendOp::AtomicFetchAdd {
                    remote_addr: 0,
                    rkey: B_CTR,
                    add,
                };
                (op, A_RES, 8)
            }
            Op::CmpSwap { hit, swap } => {
                let compare = if hit { ctr } else { ctr ^ 1 };
                atomic_ret[i] = Some(ctr);
                if hit {
                    ctr = swap;
                }
                let op = SendOp::AtomicCmpSwap {
                    remote_addr: 0,
                    rkey: B_CTR,
                    compare,
                    swap,
                };
                (op, A_RES, 8)
            }
        };
        let addr = if atomic_ret[i].is_some() {
            i as u64 * 8
        } else {
            base
        };
        net.a
            .qp
            .post_send(send_wr(i as u64, wr_op, addr, len, lkey))
            .unwrap();
    }
    for (i, _, _, _) in &expected_recv {
        let base = *i as u64 * SLOT;
        net.b
            .qp
            .post_recv(recv_wr(*i as u64, base, SLOT as u32, B_RECV))
            .unwrap();
    }

    let done = net.run_until(Duration::from_millis(2_000), |net| {
        net.a.send_wcs().len() == case.ops.len()
    });
    prop_assert!(
        done,
        "not all WRs completed: {:?} {:?}",
        net.a.qp.stats(),
        net.a.send_wcs().len()
    );
    // Let B finish executing what is in flight.
    net.run(Duration::from_millis(50));

    let s = net.a.send_wcs();
    prop_assert_eq!(s.len(), case.ops.len());
    // Exactly once, in order.
    for (i, wc) in s.iter().enumerate() {
        prop_assert_eq!(wc.wr_id, i as u64);
    }
    let ok = s
        .iter()
        .take_while(|c| c.status == WcStatus::Success)
        .count();
    if ok < s.len() {
        // IBTA: the first failure is a retry budget error, the rest flush.
        prop_assert!(
            matches!(
                s[ok].status,
                WcStatus::RetryExcErr | WcStatus::RnrRetryExcErr
            ),
            "unexpected {:?}",
            s[ok]
        );
        prop_assert!(s[ok + 1..].iter().all(|c| c.status == WcStatus::WrFlushErr));
        prop_assert_eq!(net.a.qp.state(), QpState::Err);
    }
    // Data of every successful WR.
    for (i, op) in case.ops.iter().enumerate().take(ok) {
        let base = i * SLOT as usize;
        match *op {
            Op::Send { len, .. } => {
                let got = &net.b.mem.region(B_RECV).unwrap().data[base..base + len as usize];
                prop_assert_eq!(got, &case.src[base..base + len as usize], "send {}", i);
            }
            Op::Write { len, .. } => {
                let got = &net.b.mem.region(B_WRITE).unwrap().data[base..base + len as usize];
                prop_assert_eq!(got, &case.src[base..base + len as usize], "write {}", i);
            }
            Op::Read { len } => {
                let got = &net.a.mem.region(A_DST).unwrap().data[base..base + len as usize];
                prop_assert_eq!(got, &case.remote[base..base + len as usize], "read {}", i);
            }
            Op::FetchAdd { .. } | Op::CmpSwap { .. } => {
                let r = &net.a.mem.region(A_RES).unwrap().data[i * 8..i * 8 + 8];
                let got = u64::from_ne_bytes(r.try_into().unwrap());
                prop_assert_eq!(Some(got), atomic_ret[i], "atomic {}", i);
            }
        }
    }
    if ok == s.len() {
        // Every atomic executed exactly once: the counter is where the
        // sequence leaves it.
        let c = &net.b.mem.region(B_CTR).unwrap().data;
        prop_assert_eq!(u64::from_ne_bytes(c[..8].try_into().unwrap()), ctr);
    }
    // Receive completions: in order, exactly once, right length and imm;
    // at least those of the successful sends.
    let r = net.b.recv_wcs();
    let rs: Vec<_> = r.iter().filter(|c| c.status == WcStatus::Success).collect();
    prop_assert!(rs.len() <= expected_recv.len());
    for (wc, (i, len, imm, opcode)) in rs.iter().zip(&expected_recv) {
        prop_assert_eq!(wc.wr_id, *i as u64);
        prop_assert_eq!(wc.byte_len, *len);
        prop_assert_eq!(wc.imm, *imm);
        prop_assert_eq!(wc.opcode, *opcode);
    }
    let must = expected_recv.iter().filter(|(i, ..)| *i < ok).count();
    prop_assert!(
        rs.len() >= must,
        "{} receive completions, {} expected",
        rs.len(),
        must
    );
    if ok == s.len() {
        prop_assert_eq!(rs.len(), expected_recv.len());
        prop_assert_eq!(net.b.qp.state(), QpState::Rts);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Clean network.
    #[test]
    fn clean_network_delivers_everything(
        ops in proptest::collection::vec(op_strategy(), 1..8),
        mtu in mtu_strategy(),
        psn in prop_oneof![0u32..(1 << 24), 0xFF_FF00u32..(1 << 24)],
        seed in any::<u64>(),
    ) {
        run_case(ops, mtu, psn, Faults::default(), seed)?;
    }

    /// Loss 0-20 %, reordering, duplication and corruption.
    #[test]
    fn faulty_network_completes_exactly_once_in_order(
        ops in proptest::collection::vec(op_strategy(), 1..8),
        mtu in mtu_strategy(),
        psn in prop_oneof![0u32..(1 << 24), 0xFF_FF00u32..(1 << 24)],
        loss in 0.0f64..0.2,
        dup in 0.0f64..0.1,
        reorder in 0.0f64..0.3,
        corrupt in 0.0f64..0.05,
        seed in any::<u64>(),
    ) {
        let f = Faults {
            loss,
            dup,
            reorder,
            reorder_delay: Duration::from_micros(30),
            corrupt,
        };
        run_case(ops, mtu, psn, f, seed)?;
    }
}
