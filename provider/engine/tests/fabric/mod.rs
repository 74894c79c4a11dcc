//! A deterministic many-node fabric for flow-control tests: every node has
//! one receive ring (bounded, drained at a fixed rate: the shared
//! bottleneck of all QPs of that node, as the endpoint's packet ring is),
//! every node transmits at most a fixed number of frames per tick (its
//! link), and RC connections ("flows") run between QPs on any two nodes.
//! Each flow's sender keeps `depth` RDMA WRITEs of `msg` bytes posted.
//!
//! The receiver-driven credit grant of the provider's endpoint
//! ([`omx_engine::grant`]) runs here too: each node counts the QPs that
//! received a frame in the current and the previous epoch and grants
//! every QP its share of the ring.

#![allow(dead_code)]

use std::collections::VecDeque;

use omx_engine::grant::{ActiveSet, GrantPolicy};
use omx_engine::testing::{rts_qp, Conn, SparseMemory, ALL_ACCESS};
use omx_engine::*;
use omx_wire::Qpn;

#[path = "../sim/mod.rs"]
mod sim;
pub use sim::Rng;

const KEY: u32 = 0x700;
const VA: u64 = 0x10_0000;

/// Fabric parameters.
#[derive(Debug, Clone, Copy)]
pub struct FabricParams {
    /// Receive ring frames per node.
    pub ring_cap: usize,
    /// Frames a node's receiver takes from its ring per tick.
    pub rx_per_tick: usize,
    /// Frames a node may put on the wire per tick.
    pub tx_per_tick: usize,
    pub tick: Duration,
    pub latency: Duration,
    /// Loss on every frame into `lossy_node` (if any).
    pub loss: f64,
    pub lossy_node: Option<usize>,
    pub mtu: PathMtu,
    pub timeout: u8,
    pub retry_cnt: u8,
    /// Creation-time receive window of every QP.
    pub rx_window: u16,
    /// WRITEs each sender keeps posted, and their size.
    pub depth: u32,
    pub msg: u32,
    /// Receiver-driven grants on (the provider's policy) or off (every
    /// QP advertises its whole window, as before grants).
    pub grants: bool,
}

impl Default for FabricParams {
    fn default() -> Self {
        FabricParams {
            ring_cap: 768,
            rx_per_tick: 4,
            tx_per_tick: 4,
            tick: Duration::from_micros(4),
            latency: Duration::from_micros(10),
            loss: 0.0,
            lossy_node: None,
            mtu: PathMtu::Mtu1024,
            timeout: 14,
            retry_cnt: 7,
            rx_window: 256,
            depth: 16,
            msg: 65536,
            grants: true,
        }
    }
}

pub struct Port {
    pub qp: RcQp,
    pub mem: SparseMemory,
    pub node: usize,
}

pub struct Node {
    pub ring: VecDeque<(usize, Vec<u8>)>,
    pub overruns: u64,
    pub max_ring: usize,
    pub active: ActiveSet,
    /// Ports (QP indexes) on this node, for round-robin transmit.
    pub ports: Vec<usize>,
    rr: usize,
}

/// A flow: `tx` sends WRITEs to `rx`.
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    pub tx: usize,
    pub rx: usize,
}

struct InFlight {
    at: Instant,
    seq: u64,
    port: usize,
    frame: Vec<u8>,
}

pub struct Fabric {
    pub p: FabricParams,
    pub ports: Vec<Port>,
    pub nodes: Vec<Node>,
    pub flows: Vec<Flow>,
    /// Bytes of WRITEs completed (successfully) per flow since the last
    /// [`Fabric::reset_counts`].
    pub done: Vec<u64>,
    /// Every failed completion: (flow, status).
    pub errors: Vec<(usize, WcStatus)>,
    pub now: Instant,
    pub rng: Rng,
    policy: GrantPolicy,
    flights: VecDeque<InFlight>,
    /// Each port's last active epoch (the endpoint keeps it in the QP).
    seen: Vec<u64>,
    seq: u64,
    buf: Vec<u8>,
    wr_id: u64,
}

impl Fabric {
    /// `nodes` nodes and one flow per `(src, dst)` pair of `pairs`.
    pub fn new(p: FabricParams, nodes: usize, pairs: &[(usize, usize)], seed: u64) -> Self {
        let mut f = Fabric {
            p,
            ports: Vec::new(),
            nodes: (0..nodes)
                .map(|_| Node {
                    ring: VecDeque::new(),
                    overruns: 0,
                    max_ring: 0,
                    active: ActiveSet::default(),
                    ports: Vec::new(),
                    rr: 0,
                })
                .collect(),
            flows: Vec::new(),
            done: vec![0; pairs.len()],
            errors: Vec::new(),
            now: Instant::from_micros(1_000),
            rng: Rng::new(seed),
            policy: GrantPolicy::new(p.ring_cap as u32),
            flights: VecDeque::new(),
            seen: Vec::new(),
            seq: 0,
            buf: vec![0; omx_wire::max_frame_len(4096)],
            wr_id: 0,
        };
        for (i, &(s, d)) in pairs.iter().enumerate() {
            // QPNs: index + 1 in the low bits, distinct per port.
            let tq = 2 * i as u32 + 0x100;
            let rq = 2 * i as u32 + 0x101;
            let c = Conn {
                mtu: p.mtu,
                timeout: p.timeout,
                retry_cnt: p.retry_cnt,
                sq_psn: (i as u32).wrapping_mul(7919) & 0xff_ffff,
                rq_psn: (i as u32).wrapping_mul(104_729) & 0xff_ffff,
                ..Conn::new(tq, rq)
            };
            let mut cfg = QpConfig::new(Qpn::new(tq));
            cfg.rx_window = p.rx_window;
            cfg.sq_depth = p.depth.max(1);
            cfg.rq_depth = 1;
            let mut smem = SparseMemory::default();
            smem.add(KEY, VA, u64::from(p.msg), &ALL_ACCESS);
            let mut rmem = SparseMemory::default();
            rmem.add(KEY, VA, u64::from(p.msg), &ALL_ACCESS);
            let t = f.ports.len();
            f.ports.push(Port {
                qp: rts_qp(cfg, &c),
                mem: smem,
                node: s,
            });
            f.ports.push(Port {
                qp: rts_qp(cfg, &c.peer()),
                mem: rmem,
                node: d,
            });
            f.nodes[s].ports.push(t);
            f.nodes[d].ports.push(t + 1);
            f.flows.push(Flow { tx: t, rx: t + 1 });
        }
        f.seen = vec![0; f.ports.len()];
        for i in 0..f.flows.len() {
            f.refill(i);
        }
        f
    }

    fn port_of_qpn(&self, qpn: Qpn) -> Option<usize> {
        let v = qpn.value();
        (0x100..0x100 + self.ports.len() as u32)
            .contains(&v)
            .then(|| (v - 0x100) as usize)
    }

    fn refill(&mut self, flow: usize) {
        let t = self.flows[flow].tx;
        let msg = self.p.msg;
        let port = &mut self.ports[t];
        while port.qp.sq_free() > 0 && port.qp.state() == QpState::Rts {
            self.wr_id += 1;
            let wr = SendWr {
                wr_id: self.wr_id,
                op: SendOp::RdmaWrite {
                    remote_addr: VA,
                    rkey: KEY,
                },
                sg: SgList::single(VA, msg, KEY),
                signaled: true,
                solicited: false,
            };
            if port.qp.post_send(wr).is_err() {
                break;
            }
        }
    }

    fn put_on_wire(&mut self, len: usize) {
        let frame = self.buf[..len].to_vec();
        let Some(dst) = omx_engine::peek_dst_qpn(&frame).and_then(|q| self.port_of_qpn(q)) else {
            return;
        };
        if self.p.lossy_node == Some(self.ports[dst].node) && self.rng.chance(self.p.loss) {
            return;
        }
        self.seq += 1;
        self.flights.push_back(InFlight {
            at: self.now + self.p.latency,
            seq: self.seq,
            port: dst,
            frame,
        });
    }

    /// One tick: timers, arrivals into the rings, each node's receiver
    /// drains its ring, each node transmits, senders refill.
    pub fn step(&mut self) {
        let now = self.now;
        for port in &mut self.ports {
            if port.qp.poll_timeout().is_some_and(|t| t <= now) {
                port.qp.handle_timeout(now);
            }
        }
        while self.flights.front().is_some_and(|f| f.at <= now) {
            let f = self.flights.pop_front().expect("front");
            let node = &mut self.nodes[self.ports[f.port].node];
            if node.ring.len() >= self.p.ring_cap {
                node.overruns += 1;
                continue;
            }
            node.ring.push_back((f.port, f.frame));
            node.max_ring = node.max_ring.max(node.ring.len());
        }
        for n in 0..self.nodes.len() {
            for _ in 0..self.p.rx_per_tick {
                let Some((port, frame)) = self.nodes[n].ring.pop_front() else {
                    break;
                };
                let p = &mut self.ports[port];
                // Only request frames take credits (ACKs are bounded by
                // the requests that caused them).
                if self.p.grants && omx_engine::grant::takes_credit(&frame) {
                    let active = self.nodes[n]
                        .active
                        .note(&self.policy, &mut self.seen[port], now);
                    p.qp.set_credit_grant(self.policy.share(active));
                }
                let _ = p.qp.handle_frame(now, &frame, &mut p.mem);
            }
        }
        for n in 0..self.nodes.len() {
            let nports = self.nodes[n].ports.len();
            let mut sent = 0;
            let mut idle = 0;
            // Round robin over the node's QPs, one frame each, until the
            // link's budget is used or nobody has anything.
            while sent < self.p.tx_per_tick && idle < nports {
                let i = self.nodes[n].ports[self.nodes[n].rr % nports];
                self.nodes[n].rr = self.nodes[n].rr.wrapping_add(1);
                let port = &mut self.ports[i];
                match port.qp.poll_transmit(now, &mut self.buf, &port.mem) {
                    Some(t) => {
                        self.put_on_wire(t.len);
                        sent += 1;
                        idle = 0;
                    }
                    None => idle += 1,
                }
            }
        }
        for i in 0..self.flows.len() {
            let Flow { tx, rx } = self.flows[i];
            while let Some(wc) = self.ports[tx].qp.poll_completion() {
                if wc.status == WcStatus::Success {
                    self.done[i] += u64::from(wc.byte_len);
                } else {
                    self.errors.push((i, wc.status));
                }
            }
            while self.ports[rx].qp.poll_completion().is_some() {}
            self.refill(i);
        }
        self.now = now + self.p.tick;
    }

    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    /// Zeroes the per-flow bytes and the ring overruns (the end of a
    /// warm-up).
    pub fn reset_counts(&mut self) {
        self.done.iter_mut().for_each(|d| *d = 0);
        for n in &mut self.nodes {
            n.overruns = 0;
        }
    }

    /// Payload bytes the bottleneck could carry in `d`: `rx_per_tick`
    /// full frames per tick into `bottlenecks` nodes.
    pub fn capacity(&self, d: Duration, bottlenecks: usize) -> u64 {
        let ticks = d.as_nanos() / self.p.tick.as_nanos();
        ticks * (self.p.rx_per_tick * bottlenecks) as u64 * u64::from(self.p.mtu.bytes())
    }

    /// Jain's fairness index of the per-flow bytes.
    pub fn jain(&self) -> f64 {
        let n = self.done.len() as f64;
        let s: f64 = self.done.iter().map(|&d| d as f64).sum();
        let s2: f64 = self.done.iter().map(|&d| (d as f64) * (d as f64)).sum();
        if s2 == 0.0 {
            0.0
        } else {
            s * s / (n * s2)
        }
    }

    pub fn total(&self) -> u64 {
        self.done.iter().sum()
    }

    pub fn retries_exhausted(&self) -> usize {
        self.errors
            .iter()
            .filter(|(_, s)| *s == WcStatus::RetryExcErr)
            .count()
    }

    pub fn stat(&self, f: impl Fn(&Stats) -> u64) -> u64 {
        self.ports.iter().map(|p| f(p.qp.stats())).sum()
    }
}
