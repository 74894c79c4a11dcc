//! Shared receive queues: WQEs several QPs take from. Each WQE is consumed
//! exactly once across the QPs, under loss, duplication and reordering; an
//! empty SRQ is an RNR condition; a QP that fails flushes only the WQE it
//! had taken, and the rest stay in the SRQ for the other QPs.

mod sim;

use std::sync::Arc;

use omx_engine::testing::{completions, TestSrq};
use omx_engine::*;
use proptest::prelude::*;
use sim::*;

const A_SRC: u32 = 1;
const B_RECV: u32 = 2;
/// Bytes of one receive buffer (and the largest message).
const SLOT: u64 = 8 * 1024;

/// Two connections A1→B1 and A2→B2 whose B sides share `srq`; each A
/// sends `lens[i]` as SENDs. Every message must land in exactly one WQE,
/// every WQE must be used at most once, and each B must receive its A's
/// messages in order, byte for byte.
fn two_qps_one_srq(
    lens: [Vec<u32>; 2],
    spare: u64,
    faults: Faults,
    seed: u64,
) -> Result<(), TestCaseError> {
    let total: u64 = lens.iter().map(|l| l.len() as u64).sum::<u64>() + spare;
    let srq = Arc::new(TestSrq::default());
    for w in 0..total {
        srq.post(recv_wr(w, w * SLOT, SLOT as u32, B_RECV));
    }
    let mut nets: Vec<Net> = (0..2)
        .map(|i| {
            let mut net = Net::with_b_srq(Params::default(), seed ^ i, srq.clone());
            net.set_faults(faults);
            net
        })
        .collect();
    let mut sent: Vec<Vec<Vec<u8>>> = vec![Vec::new(), Vec::new()];
    for (i, net) in nets.iter_mut().enumerate() {
        let n = lens[i].len() as u64;
        let src = net.rng.bytes((n * SLOT) as usize);
        net.a.add_region(A_SRC, 0, src.clone());
        net.b
            .add_region(B_RECV, 0, vec![0; (total * SLOT) as usize]);
        for (k, &len) in lens[i].iter().enumerate() {
            let at = k as u64 * SLOT;
            sent[i].push(src[at as usize..(at + u64::from(len)) as usize].to_vec());
            net.a
                .qp
                .post_send(send_wr(k as u64, SendOp::Send, at, len, A_SRC))
                .unwrap();
        }
    }
    // Both connections advance in turns until every send completed.
    let want = [lens[0].len(), lens[1].len()];
    let done = |nets: &[Net]| (0..2).all(|i| nets[i].a.send_wcs().len() == want[i]);
    let mut rounds = 0u32;
    while !done(&nets) && rounds < 2_000_000 {
        let mut moved = false;
        for net in nets.iter_mut() {
            moved |= net.step();
        }
        rounds += 1;
        if !moved {
            break;
        }
    }
    prop_assert!(done(&nets), "sends did not all complete");
    let mut used = std::collections::BTreeSet::new();
    for (i, net) in nets.iter().enumerate() {
        for wc in net.a.send_wcs() {
            prop_assert_eq!(wc.status, WcStatus::Success);
        }
        let rwcs = net.b.recv_wcs();
        prop_assert_eq!(rwcs.len(), want[i], "B{} receives", i);
        let mut last = None;
        for (k, wc) in rwcs.iter().enumerate() {
            prop_assert_eq!(wc.status, WcStatus::Success);
            prop_assert!(used.insert(wc.wr_id), "WQE {} consumed twice", wc.wr_id);
            // The SRQ hands out WQEs oldest first: a QP sees them in order.
            prop_assert!(last < Some(wc.wr_id));
            last = Some(wc.wr_id);
            prop_assert_eq!(wc.byte_len as usize, sent[i][k].len());
            let r = net.b.mem.region(B_RECV).unwrap();
            let at = (wc.wr_id * SLOT) as usize;
            prop_assert!(
                r.data[at..at + sent[i][k].len()] == sent[i][k][..],
                "B{} message {} corrupt",
                i,
                k
            );
        }
    }
    prop_assert_eq!(srq.taken(), used.len() as u64);
    prop_assert_eq!(srq.len() as u64, spare);
    Ok(())
}

fn lens() -> impl Strategy<Value = Vec<u32>> {
    proptest::collection::vec(prop_oneof![0u32..64, 64u32..(SLOT as u32)], 1..12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn srq_wqes_are_consumed_exactly_once_across_qps(
        l0 in lens(),
        l1 in lens(),
        spare in 0u64..3,
        loss in prop_oneof![Just(0.0), 0.0f64..0.1],
        dup in prop_oneof![Just(0.0), 0.0f64..0.1],
        reorder in prop_oneof![Just(0.0), 0.0f64..0.2],
        seed in any::<u64>(),
    ) {
        let faults = Faults {
            loss,
            dup,
            reorder,
            reorder_delay: Duration::from_micros(40),
            corrupt: 0.0,
        };
        two_qps_one_srq([l0, l1], spare, faults, seed)?;
    }
}

/// B with an SRQ in RTS, connected to A (Conn defaults), and A.
fn pair_with_srq(srq: Arc<TestSrq>) -> Net {
    Net::with_b_srq(Params::default(), 7, srq)
}

#[test]
fn an_empty_srq_answers_rnr_and_a_later_post_is_used() {
    let srq = Arc::new(TestSrq::default());
    let mut net = pair_with_srq(srq.clone());
    net.a.add_region(A_SRC, 0, vec![0x5A; 64]);
    net.b.add_region(B_RECV, 0, vec![0; 64]);
    net.a
        .qp
        .post_send(send_wr(1, SendOp::Send, 0, 64, A_SRC))
        .unwrap();
    net.run_until(Duration::from_micros(200), |n| {
        n.b.qp.stats().tx_rnr_naks > 0
    });
    assert!(
        net.b.qp.stats().tx_rnr_naks > 0,
        "no RNR NAK with an empty SRQ"
    );
    assert!(net.a.send_wcs().is_empty());
    srq.post(recv_wr(9, 0, 64, B_RECV));
    assert!(net.run_until(Duration::from_millis(50), |n| !n.a.send_wcs().is_empty()));
    assert_eq!(net.a.send_wcs()[0].status, WcStatus::Success);
    let r = net.b.recv_wcs();
    assert_eq!((r.len(), r[0].wr_id, r[0].byte_len), (1, 9, 64));
    assert_eq!(net.b.mem.region(B_RECV).unwrap().data, vec![0x5A; 64]);
}

#[test]
fn a_failing_qp_flushes_only_the_wqe_it_took() {
    let srq = Arc::new(TestSrq::default());
    for w in 0..3 {
        srq.post(recv_wr(w, w * SLOT, SLOT as u32, B_RECV));
    }
    let mut net = pair_with_srq(srq.clone());
    net.a.add_region(A_SRC, 0, vec![1; 4096]);
    net.b.add_region(B_RECV, 0, vec![0; 3 * SLOT as usize]);
    // A 4-packet SEND whose first packet only reaches B: B takes WQE 0.
    net.a
        .qp
        .post_send(send_wr(1, SendOp::Send, 0, 4096, A_SRC))
        .unwrap();
    net.drop_ab = vec![1, 2, 3];
    net.run_until(Duration::from_micros(100), |n| n.b.qp.stats().rx_frames > 0);
    assert_eq!(srq.taken(), 1);
    assert!(net.b.qp.work_pending(), "a taken WQE is work in progress");
    net.b
        .qp
        .modify(&QpAttr {
            state: Some(QpState::Err),
            ..QpAttr::default()
        })
        .unwrap();
    let wcs = completions(&mut net.b.qp);
    assert_eq!(wcs.len(), 1);
    assert_eq!((wcs[0].wr_id, wcs[0].status), (0, WcStatus::WrFlushErr));
    assert_eq!(srq.len(), 2, "the other WQEs stay in the SRQ");
    assert!(!net.b.qp.work_pending());
}

#[test]
fn post_recv_on_a_qp_with_an_srq_is_refused() {
    let srq = Arc::new(TestSrq::default());
    let mut net = pair_with_srq(srq.clone());
    assert_eq!(
        net.b.qp.post_recv(recv_wr(1, 0, 64, B_RECV)),
        Err(PostError::InvalidState)
    );
    assert!(srq.is_empty());
}
