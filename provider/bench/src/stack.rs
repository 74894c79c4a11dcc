//! Our stack: an RC QP pair built directly on omx-verbs-objects
//! ([`Endpoint`], [`Qp`], [`Cq`], [`MrTable`](omx_verbs::MrTable)) and an
//! omx-pktio [`PacketSocket`], driven the way the provider's `poll_cq`
//! drives it (receive when the CQ is empty, run timers when due), without
//! libibverbs or the kernel module. Each thread busy-polls, as perftest
//! does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Instant as StdInstant;

use omx_engine::{
    access, attr_mask, Instant, PathInfo, PathMtu, PostError, QpAttr, QpState, RecvWr, SendOp,
    SendWr, SgList, WcOpcode, WcQueue, WcStatus, WorkCompletion,
};
use omx_pktio::{PacketSocket, RxMode};
use omx_verbs::mr::{ACCESS_LOCAL_WRITE, ACCESS_REMOTE_WRITE};
use omx_verbs::{Cq, Drive, Endpoint, MrEntry, Qp, QpCaps};
use omx_wire::{Psn, Qpn};

use crate::stats::{Latency, Samples};

/// Bytes of each side's registered buffer.
pub const MR_LEN: usize = 256 << 10;
/// Size of the bandwidth test's messages (ib_write_bw's default is 64 KiB).
pub const BW_MSG: usize = 64 << 10;
/// Outstanding RDMA WRITEs in the bandwidth test.
pub const BW_WINDOW: usize = 16;
/// Receive WRs kept posted in the SEND test.
const RQ_DEPTH: u32 = 64;
/// Frames one receive pass handles (as the provider's RX_BUDGET).
const RX_BUDGET: usize = 256;
const PD: u32 = 1;

/// What one side knows about itself and its peer.
#[derive(Debug, Clone, Copy)]
pub struct Addr {
    /// Endpoint number (QPN = endpoint << 12 | 1).
    pub endpoint: u32,
    /// MAC.
    pub mac: [u8; 6],
    /// Registered buffer (both sides know both, as after a perftest
    /// exchange).
    pub buf: u64,
}

impl Addr {
    fn qpn(&self) -> Qpn {
        Qpn::new(self.endpoint << 12 | 1)
    }
    fn key(&self) -> u32 {
        0x100 + self.endpoint
    }
}

const ZERO: WorkCompletion = WorkCompletion {
    wr_id: 0,
    status: WcStatus::Success,
    opcode: WcOpcode::Send,
    queue: WcQueue::Send,
    byte_len: 0,
    imm: None,
    inv: None,
    qp_num: Qpn::new(0),
    src_qp: Qpn::new(0),
    solicited: false,
    grh: false,
    sl: 0,
};

/// What the bandwidth test's sender saw.
#[derive(Debug, Clone, Copy)]
pub struct Bw {
    /// Payload MB/s (10^6).
    pub mb_s: f64,
    /// Request packets the engine sent again.
    pub retransmits: u64,
    /// Transport timer expiries.
    pub timeouts: u64,
    /// Times the sender found its next packet blocked by the receiver's
    /// credits or window (the receiver is the bottleneck), and by its
    /// congestion window.
    pub blocked_peer: u64,
    /// See [`Bw::blocked_peer`].
    pub blocked_cwnd: u64,
}

/// One side: endpoint, socket, one RC QP with one CQ.
pub struct Node {
    ep: Endpoint,
    sock: PacketSocket,
    qp: Arc<Qp>,
    cq: Arc<Cq>,
    me: Addr,
    peer: Addr,
    next_timer: Option<Instant>,
}

/// The largest path MTU a netdev MTU carries (docs/wire.md §5).
pub fn path_mtu_for(netdev_mtu: u32) -> PathMtu {
    [
        (4096, PathMtu::Mtu4096),
        (2048, PathMtu::Mtu2048),
        (1024, PathMtu::Mtu1024),
        (512, PathMtu::Mtu512),
    ]
    .into_iter()
    .find(|&(m, _)| netdev_mtu as usize >= omx_wire::max_l2_len(m))
    .map_or(PathMtu::Mtu256, |(_, p)| p)
}

impl Node {
    /// Opens the socket on `ifindex` and brings a QP to RTS towards `peer`.
    pub fn new(
        ifindex: u32,
        me: Addr,
        peer: Addr,
        mtu: PathMtu,
        rx: RxMode,
    ) -> Result<Self, String> {
        let sock = PacketSocket::open_with(ifindex, me.endpoint, rx).map_err(|e| e.to_string())?;
        if let omx_pktio::RxKind::Fallback(what, errno) = sock.rx_kind() {
            return Err(format!("no receive ring: {what}: errno {errno}"));
        }
        let ep = Endpoint::new(me.endpoint);
        let cq = Arc::new(Cq::new(1, 4096));
        ep.insert_cq(cq.clone());
        ep.mrs.insert(MrEntry {
            lkey: me.key(),
            rkey: me.key(),
            pd: PD,
            addr: me.buf,
            va: me.buf,
            len: MR_LEN as u64,
            access: ACCESS_LOCAL_WRITE | ACCESS_REMOTE_WRITE,
        });
        let caps = QpCaps {
            sq_depth: 256,
            rq_depth: RQ_DEPTH,
            window: ep.reserve_window(),
            uc: false,
        };
        let qp = Arc::new(Qp::new(me.qpn(), PD, caps, cq.clone(), cq.clone(), false));
        ep.insert_qp(qp.clone());
        {
            let mut g = qp.lock();
            let steps = [
                QpAttr {
                    state: Some(QpState::Init),
                    access_flags: Some(access::REMOTE_WRITE),
                    extra_mask: attr_mask::PKEY_INDEX | attr_mask::PORT,
                    ..Default::default()
                },
                QpAttr {
                    state: Some(QpState::Rtr),
                    path_mtu: Some(mtu),
                    dest_qpn: Some(peer.qpn().value()),
                    rq_psn: Some(Psn::new(0)),
                    min_rnr_timer: Some(1),
                    max_dest_rd_atomic: Some(0),
                    path: Some(PathInfo {
                        dmac: peer.mac,
                        smac: me.mac,
                        peer_index: omx_wire::PEER_INDEX_UNKNOWN,
                    }),
                    ..Default::default()
                },
                QpAttr {
                    state: Some(QpState::Rts),
                    sq_psn: Some(Psn::new(0)),
                    timeout: Some(14),
                    retry_cnt: Some(7),
                    rnr_retry: Some(7),
                    max_rd_atomic: Some(1),
                    ..Default::default()
                },
            ];
            for a in &steps {
                g.modify(a).map_err(|e| format!("modify: {e:?}"))?;
            }
        }
        Ok(Node {
            ep,
            sock,
            qp,
            cq,
            me,
            peer,
            next_timer: None,
        })
    }

    fn now(&self) -> Instant {
        // The provider's engine clock (ffi/src/clock.rs): the vDSO answers
        // CLOCK_MONOTONIC_COARSE from the last tick, without reading the
        // TSC; reading CLOCK_MONOTONIC on every pass cost this loop 17% of
        // its samples (perf, 2026-12-07).
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: ts is a live, writable timespec; the clock exists on
        // every Linux this runs on, so the call cannot fail.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        Instant::from_nanos(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
    }

    fn note(&mut self, d: Drive) {
        self.next_timer = match self.next_timer {
            Some(t) => Drive::at(t).merge(d),
            None => d,
        }
        .deadline();
    }

    /// One receive pass and the timers that are due: what `poll_cq` and
    /// the progress thread do.
    /// One receive pass, then due timers; how many frames it received.
    fn progress(&mut self) -> usize {
        let mut d = Drive::default();
        let mut got = 0;
        if let Some(mut rx) = self.sock.receiver() {
            // One clock read per pass, as the provider's receive pass.
            let now = self.now();
            let (ep, sock) = (&self.ep, &self.sock);
            got = rx.recv_batch(RX_BUDGET, |frame| {
                d = d.merge(ep.handle_frame(now, frame, sock));
            });
        }
        self.note(d);
        let now = self.now();
        if self.next_timer.is_some_and(|t| t <= now) {
            self.next_timer = self.ep.handle_timeouts(now, &self.sock).deadline();
        }
        got
    }

    /// `ibv_poll_cq` as the provider does it: completions if any, else a
    /// receive pass and a second look.
    fn poll(&mut self, out: &mut [WorkCompletion]) -> usize {
        let n = self.cq.poll(out);
        if n > 0 {
            return n;
        }
        let _ = self.progress();
        self.cq.poll(out)
    }

    fn post_send(&mut self, wr: SendWr, inline: Option<&[u8]>) -> Result<(), PostError> {
        let now = self.now();
        let mut g = self.qp.lock();
        let r = match inline {
            Some(d) => g.post_send_inline(wr, None, d.len(), |dst| dst.copy_from_slice(d)),
            None => g.post_send(wr, None),
        };
        let d = self.ep.drive(&self.qp, &mut g, now, &self.sock);
        drop(g);
        self.note(d);
        r
    }

    fn post_recv(&mut self, id: u64) {
        let now = self.now();
        let mut g = self.qp.lock();
        let sg = SgList::single(self.me.buf + MR_LEN as u64 - 64, 64, self.me.key());
        g.post_recv(RecvWr { wr_id: id, sg }).expect("post_recv");
        let d = self.ep.drive(&self.qp, &mut g, now, &self.sock);
        drop(g);
        self.note(d);
    }

    fn write_wr(&self, id: u64, off: u64, len: u32) -> SendWr {
        SendWr {
            wr_id: id,
            op: SendOp::RdmaWrite {
                remote_addr: self.peer.buf + off,
                rkey: self.peer.key(),
            },
            sg: SgList::single(self.me.buf + off, len, self.me.key()),
            signaled: true,
            solicited: false,
        }
    }

    /// Polls until a completion from `queue` arrives (others are
    /// consumed); panics on an error completion.
    fn wait(&mut self, queue: WcQueue) -> WorkCompletion {
        let mut out = [ZERO; 16];
        let mut found = None;
        while found.is_none() {
            let n = self.poll(&mut out);
            for w in &out[..n] {
                assert_eq!(w.status, WcStatus::Success, "{w:?}");
                if w.queue == queue && found.is_none() {
                    found = Some(*w);
                }
            }
        }
        found.unwrap_or(ZERO)
    }

    /// 2-byte SEND ping-pong (ib_send_lat): the client returns the latency.
    pub fn send_lat(
        &mut self,
        client: bool,
        warmup: usize,
        iters: usize,
        b: &Barrier,
    ) -> Option<Latency> {
        for id in 0..u64::from(RQ_DEPTH) {
            self.post_recv(id);
        }
        b.wait();
        let mut s = Samples::with_capacity(iters);
        let send = |i: usize| SendWr {
            wr_id: i as u64,
            op: SendOp::Send,
            sg: SgList::default(),
            signaled: true,
            solicited: false,
        };
        for i in 0..warmup + iters {
            let msg = (i as u16).to_le_bytes();
            let t = StdInstant::now();
            if client {
                self.post_send(send(i), Some(&msg)).expect("post_send");
            }
            let w = self.wait(WcQueue::Recv);
            self.post_recv(w.wr_id);
            if client {
                if i >= warmup {
                    s.0.push(t.elapsed().as_nanos() as u64);
                }
            } else {
                self.post_send(send(i), Some(&msg)).expect("post_send");
            }
        }
        self.drain(b);
        client.then(|| s.one_way())
    }

    /// 2-byte RDMA WRITE ping-pong (ib_write_lat): each side waits for the
    /// peer's write to change its memory, then writes back.
    pub fn write_lat(
        &mut self,
        client: bool,
        warmup: usize,
        iters: usize,
        b: &Barrier,
    ) -> Option<Latency> {
        b.wait();
        let mut s = Samples::with_capacity(iters);
        let flag = self.me.buf as *const u16;
        let mut out = [ZERO; 16];
        for i in 0..warmup + iters {
            // Never 0 (the buffer's initial value), never equal to the last.
            let v = (i % 0xffff) as u16 + 1;
            let t = StdInstant::now();
            if client {
                self.post_send(self.write_wr(i as u64, 0, 2), Some(&v.to_le_bytes()))
                    .expect("post_send");
            }
            // SAFETY: `flag` points into this side's registered buffer,
            // alive for the whole run; the engine writes it from this very
            // thread (inside poll), volatile keeps the re-read.
            while unsafe { flag.read_volatile() } != v.to_le() {
                let n = self.poll(&mut out);
                assert!(out[..n].iter().all(|w| w.status == WcStatus::Success));
            }
            if client {
                if i >= warmup {
                    s.0.push(t.elapsed().as_nanos() as u64);
                }
            } else {
                self.post_send(self.write_wr(i as u64, 0, 2), Some(&v.to_le_bytes()))
                    .expect("post_send");
            }
        }
        self.drain(b);
        client.then(|| s.one_way())
    }

    /// 64 KiB RDMA WRITE stream with [`BW_WINDOW`] outstanding (ib_write_bw);
    /// the client returns MB/s and its retransmissions during the test.
    pub fn write_bw(
        &mut self,
        client: bool,
        msgs: usize,
        b: &Barrier,
        stop: &AtomicBool,
    ) -> Option<Bw> {
        b.wait();
        if !client {
            let (mut passes, mut idle) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                passes += 1;
                idle += u64::from(self.progress() == 0);
            }
            if std::env::var_os("OMX_BENCH_DEBUG").is_some() {
                eprintln!(
                    "write_bw receiver: {passes} passes, {:.1} % found no frame",
                    idle as f64 * 100.0 / passes.max(1) as f64
                );
            }
            self.drain(b);
            return None;
        }
        let mut out = [ZERO; 16];
        let stats0 = *self.qp.lock().eng.stats();
        let (mut posted, mut done) = (0usize, 0usize);
        let t = StdInstant::now();
        while done < msgs {
            while posted < msgs && posted - done < BW_WINDOW {
                let wr = self.write_wr(posted as u64, 0, BW_MSG as u32);
                match self.post_send(wr, None) {
                    Ok(()) => posted += 1,
                    Err(PostError::Full) => break,
                    Err(e) => panic!("post_send: {e:?}"),
                }
            }
            let n = self.poll(&mut out);
            for w in &out[..n] {
                assert_eq!(w.status, WcStatus::Success, "{w:?}");
                done += 1;
            }
        }
        let secs = t.elapsed().as_secs_f64();
        let stats = *self.qp.lock().eng.stats();
        stop.store(true, Ordering::Relaxed);
        self.drain(b);
        Some(Bw {
            mb_s: (msgs * BW_MSG) as f64 / secs / 1e6,
            retransmits: stats.tx_retransmits - stats0.tx_retransmits,
            timeouts: stats.timeouts - stats0.timeouts,
            blocked_peer: stats.tx_blocked_credits + stats.tx_blocked_window
                - stats0.tx_blocked_credits
                - stats0.tx_blocked_window,
            blocked_cwnd: stats.tx_blocked_cwnd - stats0.tx_blocked_cwnd,
        })
    }

    /// Keeps both sides progressing for a moment so the last ACKs land,
    /// then meets the peer.
    fn drain(&mut self, b: &Barrier) {
        let t = StdInstant::now();
        let mut out = [ZERO; 16];
        while t.elapsed().as_millis() < 20 {
            self.poll(&mut out);
        }
        b.wait();
    }
}
