//! Deterministic two-node network for engine tests (quinn-proto's `Pair`,
//! smoltcp's `FaultInjector`): virtual time, latency, per-direction seeded
//! loss / duplication / reordering / corruption, and a bounded receive
//! ring per node drained at a fixed rate.

#![allow(dead_code)]

use std::collections::VecDeque;

use omx_engine::testing::{rts_qp, Conn, FakeMemory, ALL_ACCESS};
use omx_engine::*;
use omx_wire::{Frame, Opcode, Qpn};

/// SplitMix64: tiny, seeded, good enough for fault injection.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Faults applied to one direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    pub loss: f64,
    pub dup: f64,
    pub reorder: f64,
    pub reorder_delay: Duration,
    pub corrupt: f64,
}

/// Connection parameters for both QPs.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub mtu: PathMtu,
    pub psn_a: u32,
    pub psn_b: u32,
    pub timeout: u8,
    pub retry_cnt: u8,
    pub rnr_retry: u8,
    pub min_rnr_timer: u8,
    pub rx_window: u16,
    pub depth: u32,
    /// RC or UC (docs/wire.md §14) for both QPs.
    pub qp_type: QpType,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            mtu: PathMtu::Mtu1024,
            psn_a: 100,
            psn_b: 5000,
            timeout: 8, // 1.05 ms
            retry_cnt: 7,
            rnr_retry: 7,
            min_rnr_timer: 1, // 10 µs
            rx_window: 64,
            depth: 256,
            qp_type: QpType::Rc,
        }
    }
}

pub const QPN_A: u32 = 0x1001;
pub const QPN_B: u32 = 0x2001;

pub struct Node<M = FakeMemory> {
    pub qp: RcQp,
    pub mem: M,
    pub ring: VecDeque<Vec<u8>>,
    pub ring_cap: usize,
    pub rx_per_tick: usize,
    pub overruns: u64,
    /// Most request frames ever waiting in the ring at once.
    pub max_ring_requests: usize,
    pub completions: Vec<WorkCompletion>,
}

/// A's side of the connection `p` describes.
pub fn conn(p: &Params) -> Conn {
    Conn {
        mtu: p.mtu,
        sq_psn: p.psn_a,
        rq_psn: p.psn_b,
        timeout: p.timeout,
        retry_cnt: p.retry_cnt,
        rnr_retry: p.rnr_retry,
        min_rnr_timer: p.min_rnr_timer,
        ..Conn::new(QPN_A, QPN_B)
    }
}

impl<M> Node<M> {
    fn new(c: &Conn, p: &Params, mem: M) -> Self {
        let mut cfg = QpConfig::new(Qpn::new(c.qpn));
        cfg.rx_window = p.rx_window;
        cfg.sq_depth = p.depth;
        cfg.rq_depth = p.depth;
        cfg.qp_type = p.qp_type;
        Node {
            qp: rts_qp(cfg, c),
            mem,
            ring: VecDeque::new(),
            ring_cap: 4096,
            rx_per_tick: 8,
            overruns: 0,
            max_ring_requests: 0,
            completions: Vec::new(),
        }
    }

    pub fn send_wcs(&self) -> Vec<WorkCompletion> {
        self.completions
            .iter()
            .filter(|c| c.queue == WcQueue::Send)
            .copied()
            .collect()
    }

    pub fn recv_wcs(&self) -> Vec<WorkCompletion> {
        self.completions
            .iter()
            .filter(|c| c.queue == WcQueue::Recv)
            .copied()
            .collect()
    }
}

impl Node<FakeMemory> {
    pub fn add_region(&mut self, key: u32, addr: u64, data: Vec<u8>) {
        self.mem.add(key, addr, data, &ALL_ACCESS);
    }
}

struct InFlight {
    at: Instant,
    seq: u64,
    to_b: bool,
    frame: Vec<u8>,
}

pub struct Net<M = FakeMemory> {
    pub a: Node<M>,
    pub b: Node<M>,
    pub now: Instant,
    pub latency: Duration,
    pub tick: Duration,
    pub ab: Faults,
    pub ba: Faults,
    pub rng: Rng,
    /// Every frame put on the wire (before faults): (a_to_b, bytes).
    pub capture: Option<Vec<(bool, Vec<u8>)>>,
    /// Indexes (0-based, counting A→B frames) of frames to drop.
    pub drop_ab: Vec<usize>,
    /// A→B frames handed to the wire so far (dropped ones included).
    pub sent_ab: usize,
    flights: Vec<InFlight>,
    seq: u64,
    buf: Vec<u8>,
}

impl Net<FakeMemory> {
    pub fn new(p: Params, seed: u64) -> Self {
        Net::with_memories(p, seed, FakeMemory::default(), FakeMemory::default())
    }

    /// As [`Net::new`], but B takes its receive WQEs from `srq`.
    pub fn with_b_srq(p: Params, seed: u64, srq: std::sync::Arc<dyn SharedRecv>) -> Self {
        let mut net = Net::new(p, seed);
        let mut cfg = QpConfig::new(Qpn::new(QPN_B));
        cfg.rx_window = p.rx_window;
        cfg.sq_depth = p.depth;
        cfg.rq_depth = 1;
        cfg.qp_type = p.qp_type;
        let mut qp = RcQp::new(cfg).with_srq(srq);
        conn(&p).peer().connect(&mut qp);
        net.b.qp = qp;
        net
    }
}

impl<M: MemoryAccess> Net<M> {
    /// A's and B's QPs connected as `p` says, over memories `ma` and `mb`
    /// (memories that share state, e.g. one counter several nets' B
    /// nodes update, are how several QPs meet in one memory).
    pub fn with_memories(p: Params, seed: u64, ma: M, mb: M) -> Self {
        let c = conn(&p);
        let a = Node::new(&c, &p, ma);
        let b = Node::new(&c.peer(), &p, mb);
        Net {
            a,
            b,
            now: Instant::from_micros(1_000),
            latency: Duration::from_micros(5),
            tick: Duration::from_micros(1),
            ab: Faults::default(),
            ba: Faults::default(),
            rng: Rng::new(seed),
            capture: None,
            drop_ab: Vec::new(),
            sent_ab: 0,
            flights: Vec::new(),
            seq: 0,
            buf: vec![0; omx_wire::max_frame_len(4096)],
        }
    }

    pub fn set_faults(&mut self, f: Faults) {
        self.ab = f;
        self.ba = f;
    }

    fn put_on_wire(&mut self, to_b: bool, len: usize) {
        let frame = self.buf[..len].to_vec();
        if let Some(c) = &mut self.capture {
            c.push((to_b, frame.clone()));
        }
        if to_b {
            self.sent_ab += 1;
            if self.drop_ab.contains(&(self.sent_ab - 1)) {
                return;
            }
        }
        let f = if to_b { self.ab } else { self.ba };
        if self.rng.chance(f.loss) {
            return;
        }
        let copies = if self.rng.chance(f.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let mut frame = frame.clone();
            if self.rng.chance(f.corrupt) {
                let i = self.rng.below(frame.len() as u64) as usize;
                frame[i] ^= 1 << self.rng.below(8);
            }
            let mut at = self.now + self.latency;
            if self.rng.chance(f.reorder) {
                at = at + Duration::from_nanos(self.rng.below(f.reorder_delay.as_nanos() + 1));
            }
            self.seq += 1;
            self.flights.push(InFlight {
                at,
                seq: self.seq,
                to_b,
                frame,
            });
        }
    }

    fn transmit(&mut self, to_b: bool) {
        for _ in 0..100_000 {
            let node = if to_b { &mut self.a } else { &mut self.b };
            match node.qp.poll_transmit(self.now, &mut self.buf, &node.mem) {
                Some(t) => self.put_on_wire(to_b, t.len),
                None => break,
            }
        }
    }

    fn drain_completions(&mut self) {
        for n in [&mut self.a, &mut self.b] {
            while let Some(wc) = n.qp.poll_completion() {
                n.completions.push(wc);
            }
        }
    }

    /// One step at `now`: timers, arrivals, receive processing, transmit,
    /// then time advances. Returns false when nothing will ever happen
    /// again.
    pub fn step(&mut self) -> bool {
        self.process();
        self.advance()
    }

    /// Timers, arrivals, receive processing and transmit at `now`.
    fn process(&mut self) {
        let now = self.now;
        self.a.qp.handle_timeout(now);
        self.b.qp.handle_timeout(now);
        // Arrivals, in (time, seq) order.
        self.flights.sort_by_key(|f| (f.at, f.seq));
        let due = self.flights.iter().take_while(|f| f.at <= now).count();
        for f in self.flights.drain(..due) {
            let node = if f.to_b { &mut self.b } else { &mut self.a };
            if node.ring.len() >= node.ring_cap {
                node.overruns += 1;
                continue;
            }
            node.ring.push_back(f.frame);
            let reqs = node
                .ring
                .iter()
                .filter(|fr| Frame::new_checked(&fr[..]).is_ok_and(|x| x.opcode().is_request()))
                .count();
            node.max_ring_requests = node.max_ring_requests.max(reqs);
        }
        for n in [&mut self.a, &mut self.b] {
            for _ in 0..n.rx_per_tick {
                let Some(fr) = n.ring.pop_front() else { break };
                let _ = n.qp.handle_frame(now, &fr, &mut n.mem);
            }
        }
        self.transmit(true);
        self.transmit(false);
        self.drain_completions();
    }

    /// Moves time to the next event; false if there is none.
    fn advance(&mut self) -> bool {
        let now = self.now;
        if !self.a.ring.is_empty() || !self.b.ring.is_empty() {
            self.now = now + self.tick;
            return true;
        }
        let next = [
            self.flights.iter().map(|f| f.at).min(),
            self.a.qp.poll_timeout(),
            self.b.qp.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        match next {
            Some(t) => {
                self.now = t.max(now + Duration::from_nanos(1));
                true
            }
            None => false,
        }
    }

    /// Steps until `done` holds, the network is idle, or `max` virtual
    /// time passed. Returns whether `done` held.
    pub fn run_until(&mut self, max: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
        let end = self.now + max;
        loop {
            if done(self) {
                return true;
            }
            if self.now > end {
                return false;
            }
            // `done` is checked before time moves on, so a test reacting
            // to it acts at the instant the condition arose (an
            // application answering a message at once).
            self.process();
            if done(self) {
                return true;
            }
            if !self.advance() {
                return done(self);
            }
        }
    }

    /// Runs until both sides are idle (or `max`).
    pub fn run(&mut self, max: Duration) {
        let end = self.now + max;
        while self.now <= end && self.step() {}
    }
}

/// Opcode of a captured frame.
pub fn opcode_of(frame: &[u8]) -> Opcode {
    Frame::new_checked(frame)
        .map(|f| f.opcode())
        .unwrap_or(Opcode::Unknown(0))
}

#[allow(unused_imports)]
pub use omx_engine::testing::{recv_wr, send_wr};
