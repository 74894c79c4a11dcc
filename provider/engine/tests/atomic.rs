//! RC atomics (docs/wire.md §10.4): COMPARE_SWAP and FETCH_ADD executed
//! once on the responder's memory, the original value returned into the
//! requester's 8-byte buffer; the IBTA refusals (alignment, rights,
//! bounds, resources) with nothing touched; duplicates answered from the
//! saved result; and, over the simulated lossy network, several
//! requesters adding to one counter end with the exact sum.

mod sim;

use std::cell::RefCell;
use std::rc::Rc;

use omx_engine::testing::{
    completions, connected_pair, parse, transmit_all, Conn, FakeMemory, ALL_ACCESS, CANARY,
};
use omx_engine::*;
use omx_wire::{AtomicEth, Ext, NakCode, Opcode, Psn, Syndrome};
use proptest::prelude::*;
use sim::*;

const A: u32 = 0x1001;
const B: u32 = 0x2001;
/// A's result buffers (8 bytes each).
const RES: u32 = 0x100;
const RES_VA: u64 = 0x1_0000;
/// B's target: 64 bytes of canaries with the counter at `CTR_VA`.
const TGT: u32 = 0x200;
const TGT_VA: u64 = 0x2_0000;
const CTR_VA: u64 = TGT_VA + 16;

fn now() -> Instant {
    Instant::from_micros(1_000)
}

fn fetch_add(add: u64) -> SendOp {
    SendOp::AtomicFetchAdd {
        remote_addr: CTR_VA,
        rkey: TGT,
        add,
    }
}

fn cmp_swap(compare: u64, swap: u64) -> SendOp {
    SendOp::AtomicCmpSwap {
        remote_addr: CTR_VA,
        rkey: TGT,
        compare,
        swap,
    }
}

/// A connected pair: A's result area, B's target with the counter set to
/// `ctr` (rights `tgt_rights`).
struct Pair {
    a: RcQp,
    b: RcQp,
    ma: FakeMemory,
    mb: FakeMemory,
}

impl Pair {
    fn new(conn: Conn, ctr: u64, tgt_rights: &[Access]) -> Self {
        let (a, b) = connected_pair(QpConfig::new(omx_wire::Qpn::new(A)), &conn);
        let mut ma = FakeMemory::default();
        ma.add_canaried(RES, RES_VA, 64 * 8, &[Access::LocalWrite]);
        let mut mb = FakeMemory::default();
        mb.add_canaried(TGT, TGT_VA, 64, tgt_rights);
        mb.region_mut(TGT).unwrap().data[16..24].copy_from_slice(&ctr.to_ne_bytes());
        Pair { a, b, ma, mb }
    }

    fn plain(ctr: u64) -> Self {
        Pair::new(Conn::new(A, B), ctr, &ALL_ACCESS)
    }

    /// Posts `op` with result slot `i`.
    fn post(&mut self, i: u64, op: SendOp) {
        self.a
            .post_send(send_wr(i, op, RES_VA + 8 * i, 8, RES))
            .unwrap();
    }

    fn run(&mut self) {
        omx_engine::testing::exchange(
            (&mut self.a, &mut self.ma),
            (&mut self.b, &mut self.mb),
            now(),
            100,
        );
    }

    fn counter(&self) -> u64 {
        let d = &self.mb.region(TGT).unwrap().data;
        u64::from_ne_bytes(d[16..24].try_into().unwrap())
    }

    fn result(&self, i: u64) -> u64 {
        let d = &self.ma.region(RES).unwrap().data;
        let o = 8 * i as usize;
        u64::from_ne_bytes(d[o..o + 8].try_into().unwrap())
    }

    fn statuses(&mut self) -> Vec<WcStatus> {
        completions(&mut self.a).iter().map(|c| c.status).collect()
    }

    /// B's target outside the counter still holds canaries, and the
    /// counter is `ctr`.
    fn untouched_but_counter(&self, ctr: u64) {
        assert_eq!(self.mb.damage_outside(TGT, CTR_VA..CTR_VA + 8), []);
        assert_eq!(self.counter(), ctr);
    }
}

#[test]
fn fetch_add_and_compare_swap_return_the_old_value() {
    let mut p = Pair::plain(40);
    p.post(0, fetch_add(2));
    p.post(1, cmp_swap(42, 7));
    p.post(2, cmp_swap(42, 9)); // fails: the value is 7 now
    p.post(3, fetch_add(u64::MAX)); // wraps: 7 - 1
    p.run();
    let wcs = completions(&mut p.a);
    let got: Vec<_> = wcs
        .iter()
        .map(|c| (c.wr_id, c.status, c.opcode, c.byte_len))
        .collect();
    assert_eq!(
        got,
        [
            (0, WcStatus::Success, WcOpcode::FetchAdd, 8),
            (1, WcStatus::Success, WcOpcode::CompSwap, 8),
            (2, WcStatus::Success, WcOpcode::CompSwap, 8),
            (3, WcStatus::Success, WcOpcode::FetchAdd, 8),
        ]
    );
    assert_eq!(
        [p.result(0), p.result(1), p.result(2), p.result(3)],
        [40, 42, 7, 7]
    );
    p.untouched_but_counter(6);
    // The result area beyond the four results is untouched.
    assert_eq!(p.ma.damage_outside(RES, RES_VA..RES_VA + 32), []);
    assert_eq!(p.b.stats().tx_atomic_replays, 0);
}

/// The wire carries the operands and the original value big-endian
/// (docs/wire.md §4.2, §4.5); memory holds host order.
#[test]
fn atomic_frames_on_the_wire() {
    let mut p = Pair::plain(0x0102_0304_0506_0708);
    p.post(0, cmp_swap(0x0102_0304_0506_0708, 0xAA));
    let req = transmit_all(&mut p.a, now(), &p.ma, 10);
    assert_eq!(req.len(), 1);
    let r = parse(&req[0]);
    assert_eq!(r.bth.opcode, Opcode::CompareSwap);
    assert!(!r.bth.ack_req, "the acknowledge answers it");
    assert_eq!(
        r.ext.atomic,
        Some(AtomicEth {
            va: CTR_VA,
            rkey: TGT,
            swap_add: 0xAA,
            compare: 0x0102_0304_0506_0708
        })
    );
    // Big-endian at the AtomicETH's swap field (after VA and rkey).
    let eth_at = req[0]
        .windows(8)
        .position(|w| w == CTR_VA.to_be_bytes())
        .unwrap();
    assert_eq!(&req[0][eth_at + 12..eth_at + 20], &0xAAu64.to_be_bytes());
    p.b.handle_frame(now(), &req[0], &mut p.mb).unwrap();
    let resp = transmit_all(&mut p.b, now(), &p.mb, 10);
    assert_eq!(resp.len(), 1);
    let r = parse(&resp[0]);
    assert_eq!(r.bth.opcode, Opcode::AtomicAcknowledge);
    assert_eq!(r.ext.aeth.unwrap().syndrome, Syndrome::Ack);
    assert_eq!(r.ext.atomic_ack, Some(0x0102_0304_0506_0708));
    assert_eq!(p.counter(), 0xAA);
}

/// IBTA refusals: the requester completes with the status, the QP
/// goes to ERROR, and not a byte of the target changed.
#[test]
fn refusals_touch_nothing() {
    let bad_addr = |va: u64| SendOp::AtomicFetchAdd {
        remote_addr: va,
        rkey: TGT,
        add: 1,
    };
    let no_atomic = [
        Access::LocalRead,
        Access::LocalWrite,
        Access::RemoteRead,
        Access::RemoteWrite,
    ];
    let conn = Conn::new(A, B);
    let cases: Vec<(&str, Pair, SendOp, WcStatus)> = vec![
        (
            "misaligned",
            Pair::plain(5),
            bad_addr(CTR_VA + 4),
            WcStatus::RemInvReqErr,
        ),
        (
            "MR without REMOTE_ATOMIC",
            Pair::new(conn, 5, &no_atomic),
            fetch_add(1),
            WcStatus::RemAccessErr,
        ),
        (
            "QP without REMOTE_ATOMIC",
            Pair::new(
                Conn {
                    access_flags: access::REMOTE_READ | access::REMOTE_WRITE,
                    ..conn
                },
                5,
                &ALL_ACCESS,
            ),
            fetch_add(1),
            WcStatus::RemInvReqErr,
        ),
        (
            "last 8 bytes past the MR's end",
            Pair::plain(5),
            bad_addr(TGT_VA + 64),
            WcStatus::RemAccessErr,
        ),
        (
            "straddling the MR's end",
            Pair::plain(5),
            bad_addr(TGT_VA + 60),
            WcStatus::RemInvReqErr,
        ),
        (
            "bad rkey",
            Pair::plain(5),
            SendOp::AtomicCmpSwap {
                remote_addr: CTR_VA,
                rkey: TGT + 1,
                compare: 5,
                swap: 6,
            },
            WcStatus::RemAccessErr,
        ),
        (
            "max_dest_rd_atomic 0",
            Pair::new(
                Conn {
                    max_dest_rd_atomic: 0,
                    ..conn
                },
                5,
                &ALL_ACCESS,
            ),
            fetch_add(1),
            WcStatus::RemInvReqErr,
        ),
    ];
    for (what, mut p, op, want) in cases {
        p.post(0, op);
        p.post(1, fetch_add(1));
        p.run();
        assert_eq!(p.statuses(), [want, WcStatus::WrFlushErr], "{what}");
        p.untouched_but_counter(5);
        assert_eq!(p.b.state(), QpState::Err, "{what}");
        // Nothing was written into the requester's result buffer.
        assert_eq!(p.ma.damage_outside(RES, 0..0), [], "{what}");
    }
}

/// An 8-byte atomic with a 4-byte (or 12-byte) result buffer is refused
/// at post, as rxe does.
#[test]
fn result_buffer_must_be_eight_bytes() {
    let mut p = Pair::plain(0);
    for len in [0, 4, 12] {
        assert_eq!(
            p.a.post_send(send_wr(0, fetch_add(1), RES_VA, len, RES)),
            Err(PostError::BadAtomicLength)
        );
    }
}

fn atomic_request(psn: u32, op: Opcode, eth: AtomicEth) -> Vec<u8> {
    let ext = Ext {
        atomic: Some(eth),
        ..Ext::default()
    };
    Conn::new(B, A).from_peer().frame(op, psn, ext, &[])
}

/// A repeated request (the acknowledge was lost, or the network
/// duplicated the request) is answered from the saved result, never
/// executed again; a "duplicate" that differs in any field from the
/// atomic at its PSN gets nothing.
#[test]
fn duplicates_are_answered_from_the_saved_result() {
    let mut p = Pair::plain(100);
    let eth = AtomicEth {
        va: CTR_VA,
        rkey: TGT,
        swap_add: 5,
        compare: 0,
    };
    let f = atomic_request(0, Opcode::FetchAdd, eth);
    p.b.handle_frame(now(), &f, &mut p.mb).unwrap();
    let first = transmit_all(&mut p.b, now(), &p.mb, 10);
    assert_eq!(parse(&first[0]).ext.atomic_ack, Some(100));
    assert_eq!(p.counter(), 105);
    for _ in 0..3 {
        p.b.handle_frame(now(), &f, &mut p.mb).unwrap();
        let again = transmit_all(&mut p.b, now(), &p.mb, 10);
        assert_eq!(again.len(), 1);
        let r = parse(&again[0]);
        assert_eq!(
            (r.bth.opcode, r.bth.psn, r.ext.atomic_ack),
            (Opcode::AtomicAcknowledge, Psn::new(0), Some(100))
        );
    }
    assert_eq!(p.counter(), 105, "executed once");
    assert_eq!(p.b.stats().tx_atomic_replays, 3);
    // Same PSN, something else asked: dropped, nothing sent.
    for (what, op, e) in [
        (
            "other addend",
            Opcode::FetchAdd,
            AtomicEth { swap_add: 6, ..eth },
        ),
        (
            "other address",
            Opcode::FetchAdd,
            AtomicEth {
                va: CTR_VA + 8,
                ..eth
            },
        ),
        ("other rkey", Opcode::FetchAdd, AtomicEth { rkey: 1, ..eth }),
        ("other operation", Opcode::CompareSwap, eth),
    ] {
        let f = atomic_request(0, op, e);
        assert_eq!(
            p.b.handle_frame(now(), &f, &mut p.mb),
            Err(RxDrop::DuplicateAtomic),
            "{what}"
        );
        assert!(
            transmit_all(&mut p.b, now(), &p.mb, 10).is_empty(),
            "{what}"
        );
    }
    assert_eq!(p.b.stats().rx_dup_atomic_unmatched, 4);
    assert_eq!(p.counter(), 105);
    assert_eq!(p.b.state(), QpState::Rts);
}

/// The acknowledge is lost: the requester's transport timer sends the
/// request again, the responder replays the saved result, the requester
/// completes with the value of the single execution.
#[test]
fn lost_acknowledge_is_replayed_not_reexecuted() {
    let p = Params::default();
    let mut net = Net::new(p, 1);
    net.a.add_region(RES, RES_VA, vec![CANARY; 64]);
    net.b.add_region(TGT, TGT_VA, vec![0; 64]);
    // Drop the first frame B sends (the acknowledge).
    let mut first = true;
    net.a
        .qp
        .post_send(send_wr(9, fetch_add(3), RES_VA, 8, RES))
        .unwrap();
    // Step by hand: deliver A's request, drop B's answer once.
    let mut buf = vec![0; 4096];
    let t = net
        .a
        .qp
        .poll_transmit(net.now, &mut buf, &net.a.mem)
        .unwrap();
    net.b
        .qp
        .handle_frame(net.now, &buf[..t.len], &mut net.b.mem)
        .unwrap();
    while net
        .b
        .qp
        .poll_transmit(net.now, &mut buf, &net.b.mem)
        .is_some()
    {
        assert!(std::mem::take(&mut first), "one acknowledge");
    }
    assert!(net.run_until(Duration::from_millis(50), |n| n.a.send_wcs().len() == 1));
    let wc = net.a.send_wcs()[0];
    assert_eq!((wc.wr_id, wc.status), (9, WcStatus::Success));
    assert!(net.a.qp.stats().timeouts >= 1);
    assert_eq!(net.b.qp.stats().tx_atomic_replays, 1);
    let d = &net.b.mem.region(TGT).unwrap().data;
    assert_eq!(u64::from_ne_bytes(d[16..24].try_into().unwrap()), 3);
    let r = &net.a.mem.region(RES).unwrap().data;
    assert_eq!(u64::from_ne_bytes(r[..8].try_into().unwrap()), 0);
}

/// READs and atomics share `max_rd_atomic`: with 2, a third such request
/// waits for an answer.
#[test]
fn reads_and_atomics_share_the_outstanding_limit() {
    let mut p = Pair::new(
        Conn {
            max_rd_atomic: 2,
            ..Conn::new(A, B)
        },
        0,
        &ALL_ACCESS,
    );
    p.mb.region_mut(TGT).unwrap().access = ALL_ACCESS.to_vec();
    p.ma.region_mut(RES).unwrap().access = ALL_ACCESS.to_vec();
    p.post(0, fetch_add(1));
    p.a.post_send(send_wr(
        1,
        SendOp::RdmaRead {
            remote_addr: TGT_VA,
            rkey: TGT,
        },
        RES_VA + 64,
        8,
        RES,
    ))
    .unwrap();
    p.post(2, fetch_add(1));
    let out = transmit_all(&mut p.a, now(), &p.ma, 10);
    let ops: Vec<_> = out.iter().map(|f| parse(f).bth.opcode).collect();
    assert_eq!(ops, [Opcode::FetchAdd, Opcode::ReadRequest]);
    assert_eq!(p.a.stats().tx_blocked_rd_atomic, 1);
    for f in &out {
        p.b.handle_frame(now(), f, &mut p.mb).unwrap();
    }
    p.run();
    assert_eq!(p.statuses(), [WcStatus::Success; 3]);
    assert_eq!(p.counter(), 2);
}

/// An atomic acknowledge where a READ response is expected (or the
/// reverse, or with no atomic outstanding) is counted and ignored.
#[test]
fn unexpected_atomic_acknowledge_is_ignored() {
    let mut p = Pair::plain(0);
    let ack = |psn: u32| {
        let ext = Ext {
            aeth: Some(omx_wire::Aeth {
                syndrome: Syndrome::Ack,
                msn: 0,
                credits: 64,
            }),
            atomic_ack: Some(77),
            ..Ext::default()
        };
        Conn::new(A, B)
            .from_peer()
            .frame(Opcode::AtomicAcknowledge, psn, ext, &[])
    };
    // Nothing outstanding.
    let _ = p.a.handle_frame(now(), &ack(0), &mut p.ma);
    assert_eq!(p.a.stats().rx_duplicate, 1);
    // A READ outstanding at PSN 0.
    p.ma.region_mut(RES).unwrap().access = ALL_ACCESS.to_vec();
    p.a.post_send(send_wr(
        1,
        SendOp::RdmaRead {
            remote_addr: TGT_VA,
            rkey: TGT,
        },
        RES_VA,
        8,
        RES,
    ))
    .unwrap();
    assert_eq!(transmit_all(&mut p.a, now(), &p.ma, 10).len(), 1);
    let _ = p.a.handle_frame(now(), &ack(0), &mut p.ma);
    assert_eq!(p.a.stats().rx_unexpected, 1);
    assert!(completions(&mut p.a).is_empty());
    assert_eq!(p.ma.damage_outside(RES, 0..0), []);
    assert_eq!(p.a.state(), QpState::Rts);
}

/// An atomic acknowledge with a NAK syndrome is not an answer: counted,
/// ignored, the atomic still waits.
#[test]
fn atomic_acknowledge_with_a_nak_syndrome_is_ignored() {
    let mut p = Pair::plain(0);
    p.post(0, fetch_add(1));
    assert_eq!(transmit_all(&mut p.a, now(), &p.ma, 10).len(), 1);
    let ext = Ext {
        aeth: Some(omx_wire::Aeth {
            syndrome: Syndrome::Nak(NakCode::InvalidRequest),
            msn: 0,
            credits: 64,
        }),
        atomic_ack: Some(77),
        ..Ext::default()
    };
    let f = Conn::new(A, B)
        .from_peer()
        .frame(Opcode::AtomicAcknowledge, 0, ext, &[]);
    let _ = p.a.handle_frame(now(), &f, &mut p.ma);
    assert_eq!(p.a.stats().rx_bad_response, 1);
    assert!(completions(&mut p.a).is_empty());
    assert_eq!(p.a.state(), QpState::Rts);
    assert_eq!(p.ma.damage_outside(RES, 0..0), []);
}

/// Memory shared by several nets: one counter region that every net's B
/// node updates, as several QPs of one process (or processes sharing
/// memory) meet in one MR.
#[derive(Clone)]
struct Shared(Rc<RefCell<FakeMemory>>);

impl MemoryAccess for Shared {
    fn check(&self, key: u32, addr: u64, len: u64, access: Access) -> Result<(), MemError> {
        self.0.borrow().check(key, addr, len, access)
    }
    fn read(&self, key: u32, addr: u64, dst: &mut [u8], access: Access) -> Result<(), MemError> {
        self.0.borrow().read(key, addr, dst, access)
    }
    fn write(&mut self, key: u32, addr: u64, src: &[u8], access: Access) -> Result<(), MemError> {
        self.0.borrow_mut().write(key, addr, src, access)
    }
    fn atomic(&mut self, key: u32, addr: u64, op: AtomicOp) -> Result<u64, MemError> {
        self.0.borrow_mut().atomic(key, addr, op)
    }
}

/// `n` requesters (each its own QP pair and lossy network) post `k`
/// FETCH_ADD of 1 each on one counter: the counter ends at `n * k` and
/// the returned values are exactly `0 .. n * k`, each once.
fn many_requesters(
    n: usize,
    k: u64,
    faults: Faults,
    seed: u64,
) -> Result<(Stats, Stats), TestCaseError> {
    let target = Rc::new(RefCell::new(FakeMemory::default()));
    target
        .borrow_mut()
        .add(TGT, TGT_VA, vec![0; 64], &ALL_ACCESS);
    let mut nets: Vec<Net<Shared>> = (0..n)
        .map(|i| {
            let mut res = FakeMemory::default();
            res.add(RES, RES_VA, vec![CANARY; 8 * k as usize], &ALL_ACCESS);
            let p = Params {
                psn_a: (seed as u32).wrapping_mul(7 + i as u32) & 0xFF_FFFF,
                ..Params::default()
            };
            let mut net = Net::with_memories(
                p,
                seed ^ (i as u64) << 32,
                Shared(Rc::new(RefCell::new(res))),
                Shared(target.clone()),
            );
            net.set_faults(faults);
            for j in 0..k {
                net.a
                    .qp
                    .post_send(send_wr(j, fetch_add(1), RES_VA + 8 * j, 8, RES))
                    .unwrap();
            }
            net
        })
        .collect();
    // Interleave the nets' steps: their requests reach the counter in
    // an order no single net decides.
    for _ in 0..200_000 {
        let mut busy = false;
        for net in &mut nets {
            if net.a.send_wcs().len() < k as usize {
                busy |= net.step();
            }
        }
        if !busy {
            break;
        }
    }
    // Each net's completions: in order, successes first; IBTA lets a
    // QP fail with RETRY_EXC_ERR when the network loses too much (then
    // the rest flush). Those atomics may or may not have executed.
    let mut seen = Vec::new();
    let mut failed = 0u64;
    for (i, net) in nets.iter().enumerate() {
        let wcs = net.a.send_wcs();
        prop_assert_eq!(wcs.len(), k as usize, "net {} did not finish", i);
        let ok = wcs
            .iter()
            .take_while(|c| c.status == WcStatus::Success)
            .count();
        for (j, wc) in wcs.iter().enumerate() {
            prop_assert_eq!(wc.wr_id, j as u64);
        }
        if ok < wcs.len() {
            prop_assert_eq!(wcs[ok].status, WcStatus::RetryExcErr);
            prop_assert!(wcs[ok + 1..]
                .iter()
                .all(|c| c.status == WcStatus::WrFlushErr));
            failed += (wcs.len() - ok) as u64;
        }
        let res = net.a.mem.0.borrow();
        let d = &res.region(RES).unwrap().data;
        for j in 0..ok {
            seen.push(u64::from_ne_bytes(d[8 * j..8 * j + 8].try_into().unwrap()));
        }
    }
    let t = target.borrow();
    let d = &t.region(TGT).unwrap().data;
    let ctr = u64::from_ne_bytes(d[16..24].try_into().unwrap());
    let done = seen.len() as u64;
    seen.sort_unstable();
    if failed == 0 {
        // The counter is the exact sum, the values exactly 0 .. n * k.
        prop_assert_eq!(ctr, n as u64 * k);
        prop_assert_eq!(seen, (0..n as u64 * k).collect::<Vec<_>>());
    } else {
        // Every success executed once, a failed one at most once: the
        // counter lies between, and the values are distinct and below it.
        prop_assert!(
            done <= ctr && ctr <= done + failed,
            "{} {} {}",
            done,
            ctr,
            failed
        );
        prop_assert!(seen.windows(2).all(|w| w[0] < w[1]), "a value twice");
        prop_assert!(seen.last().is_none_or(|&v| v < ctr));
    }
    prop_assert!(d[..16].iter().chain(&d[24..]).all(|&b| b == 0));
    // Requester and responder counters, summed over the nets.
    let mut req = Stats::default();
    let mut resp = Stats::default();
    for net in &nets {
        let (a, b) = (net.a.qp.stats(), net.b.qp.stats());
        req.tx_retransmits += a.tx_retransmits;
        req.rx_duplicate += a.rx_duplicate;
        resp.rx_duplicate += b.rx_duplicate;
        resp.tx_atomic_replays += b.tx_atomic_replays;
    }
    Ok((req, resp))
}

#[test]
fn many_requesters_clean_network() {
    let (req, resp) = many_requesters(4, 50, Faults::default(), 3).unwrap();
    assert_eq!((req.tx_retransmits, resp.tx_atomic_replays), (0, 0));
}

/// Heavy faults, fixed seeds: duplicated and retransmitted atomics do
/// reach the responders (and are answered from saved results), and the
/// sum is still exact.
#[test]
fn many_requesters_heavy_faults() {
    let f = Faults {
        loss: 0.2,
        dup: 0.2,
        reorder: 0.3,
        reorder_delay: Duration::from_micros(30),
        corrupt: 0.02,
    };
    for seed in 0..4 {
        let (req, resp) = many_requesters(4, 40, f, seed).unwrap();
        assert!(req.tx_retransmits > 0, "seed {seed}: {req:?}");
        assert!(
            resp.rx_duplicate > 0 && resp.tx_atomic_replays > 0,
            "seed {seed}: {resp:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Loss, duplication, reordering and corruption: still the exact sum,
    /// every returned value distinct (or, if a QP ran out of retries, no
    /// atomic executed twice).
    #[test]
    fn many_requesters_faulty_network(
        n in 2usize..5,
        k in 1u64..40,
        loss in 0.0f64..0.2,
        dup in 0.0f64..0.2,
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
        many_requesters(n, k, f, seed)?;
    }
}

/// A PSN sequence error NAK past an atomic whose answer was lost, then
/// silence until the retries are used up: the atomic, the oldest WR outstanding, fails
/// with IBV_WC_RETRY_EXC_ERR and the later ones flush (the NAK's own PSN
/// named a later WR, which used to fail while the atomic flushed before
/// it: completions out of IBTA's order).
#[test]
fn retries_exhausted_fail_the_oldest_outstanding_atomic() {
    let mut p = Pair::new(
        Conn {
            retry_cnt: 0,
            ..Conn::new(A, B)
        },
        0,
        &ALL_ACCESS,
    );
    for i in 0..3 {
        p.post(i, fetch_add(1));
    }
    let req = transmit_all(&mut p.a, now(), &p.ma, 10);
    assert_eq!(req.len(), 3);
    // B executes the first (its answer is lost) and sees the third
    // without the second: one NAK PSN sequence error naming the second.
    p.b.handle_frame(now(), &req[0], &mut p.mb).unwrap();
    p.b.handle_frame(now(), &req[2], &mut p.mb).unwrap();
    let out = transmit_all(&mut p.b, now(), &p.mb, 10);
    let nak = out
        .iter()
        .find(|f| parse(f).bth.opcode == Opcode::Acknowledge)
        .unwrap();
    assert_eq!(parse(nak).bth.psn, Psn::new(1));
    let _ = p.a.handle_frame(now(), nak, &mut p.ma);
    // A sequence NAK shows the peer alive: it uses up no retry by
    // itself. With no progress, the transport timer declares the peer
    // gone after retry_cnt + 1 = 1 timeout (4.096 us x 2^14 = 67 ms).
    assert!(completions(&mut p.a).is_empty());
    let later = p.a.poll_timeout().expect("the transport timer runs");
    assert!(later >= now() + Duration::from_millis(67));
    p.a.handle_timeout(later);
    let st: Vec<_> = completions(&mut p.a)
        .iter()
        .map(|c| (c.wr_id, c.status))
        .collect();
    assert_eq!(
        st,
        [
            (0, WcStatus::RetryExcErr),
            (1, WcStatus::WrFlushErr),
            (2, WcStatus::WrFlushErr)
        ]
    );
}

/// The result buffer cannot be written (an MR without local write): the
/// atomic (or a READ) completes with IBV_WC_LOC_PROT_ERR, and the SEND
/// posted before it, which its answer acknowledges, completes
/// successfully first (it used to be flushed before the error).
#[test]
fn unwritable_result_buffer_fails_the_atomic_after_the_send_before_it() {
    let mut p = Pair::plain(9);
    p.ma.add_canaried(0x300, 0x3_0000, 64, &[Access::LocalRead]);
    p.mb.add_canaried(0x400, 0x4_0000, 64, &[Access::LocalWrite]);
    p.b.post_recv(omx_engine::testing::recv_wr(1, 0x4_0000, 64, 0x400))
        .unwrap();
    p.a.post_send(send_wr(0, SendOp::Send, 0x3_0000, 16, 0x300))
        .unwrap();
    p.a.post_send(send_wr(1, fetch_add(1), 0x3_0000, 8, 0x300))
        .unwrap();
    p.run();
    let st: Vec<_> = completions(&mut p.a)
        .iter()
        .map(|c| (c.wr_id, c.status))
        .collect();
    assert_eq!(st, [(0, WcStatus::Success), (1, WcStatus::LocProtErr)]);
    assert_eq!(p.ma.damage_outside(0x300, 0..0), []);
    // The responder executed it once (the requester could not keep the
    // value, as hardware could not either).
    assert_eq!(p.counter(), 10);
    // The same for a READ into that buffer.
    let mut p = Pair::plain(9);
    p.ma.add_canaried(0x300, 0x3_0000, 64, &[Access::LocalRead]);
    p.mb.add_canaried(0x400, 0x4_0000, 64, &[Access::LocalWrite]);
    p.b.post_recv(omx_engine::testing::recv_wr(1, 0x4_0000, 64, 0x400))
        .unwrap();
    p.a.post_send(send_wr(0, SendOp::Send, 0x3_0000, 16, 0x300))
        .unwrap();
    let read = SendOp::RdmaRead {
        remote_addr: TGT_VA,
        rkey: TGT,
    };
    p.a.post_send(send_wr(1, read, 0x3_0000, 32, 0x300))
        .unwrap();
    p.run();
    let st: Vec<_> = completions(&mut p.a)
        .iter()
        .map(|c| (c.wr_id, c.status))
        .collect();
    assert_eq!(st, [(0, WcStatus::Success), (1, WcStatus::LocProtErr)]);
}
