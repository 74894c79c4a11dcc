//! The per-context data-path runtime: the verbs endpoint, the packet
//! socket and the progress thread.
//!
//! The packet socket, the waker and the progress thread are created
//! lazily by the first QP that moves to RTR ([`Runtime::io`]): contexts
//! that never connect a QP (ibv_devinfo, resource tests, processes outside
//! the netdev's network namespace) need neither CAP_NET_RAW nor the
//! netdev.
//!
//! Who holds references: the [`crate::context::OmxContext`] (`Arc`, from
//! open to close), every QP/CQ/MR object of the context (`Arc`, so a verb
//! on an object never touches freed memory even if the application closed
//! the device first), and the progress thread (`Arc`, until it is joined
//! in `free_context`).
//!
//! Same device: a context that connects a QP to its own MAC address also
//! opens a loopback tap ([`PacketSocket::open_loopback`]), which sees the frames this host sends to
//! itself (from other contexts, or from this context's own QPs, whose
//! frames go out through the packet socket like any other); the receive
//! pass and the progress thread watch it beside the packet socket. Where
//! they can, same-device frames skip the netdev altogether: every context
//! has a shared-memory inbox (created with its first QP), a QP connected
//! to an endpoint of this device opens that endpoint's inbox, and the
//! context's [`Sink`] writes the peer's frames there ([`omx_pktio::local`],
//! docs/wire.md §11); the receive pass reads our inbox under the same
//! guard, and the progress thread marks it before it sleeps, so that a
//! local sender wakes it with a frame through the tap.
//!
//! Threads: application threads run post_send/post_recv/poll_cq; they
//! transmit with non-blocking `send`, and poll_cq also receives (busy-poll)
//! and runs due timers. The progress thread sleeps in `ppoll()` on the
//! packet socket and the waker eventfd with a timeout = the nearest engine
//! deadline, then receives, runs timers, and issues OMX_METHOD_CQ_NOTIFY
//! for every CQ with a pending event (only it ever issues that ioctl).
//! While an application thread busy-polls (a run of empty `poll_cq`) for
//! WRs still pending, the progress thread stops watching the socket for
//! short windows and leaves reception to it; the thread that completes the
//! context's last pending WR wakes it back to the socket.
//!
//! Locks: the packet socket's receive side (a TPACKET ring, single
//! consumer) is only ever taken with a try-lock
//! ([`PacketSocket::receiver`]), so exactly one thread at a time receives
//! and frames are processed in arrival order; nobody waits for it. The
//! tap's and the inbox's receive sides are try-locked by the thread that
//! holds that guard, never otherwise. Writing into a peer's inbox
//! try-locks our lane (`Outbox::push`; contended: the frame takes the
//! netdev). `inbox` and `outboxes` are set once (`OnceLock`) on the
//! control path, and an outbox, once handed out, stays mapped until the
//! runtime drops. `thread` is taken by open/close only. Everything else
//! is atomics. Verbs locks are described in omx-verbs-objects.
//!
//! Waking the progress thread (the one system call an application thread
//! may make besides transmit: a non-blocking eventfd write, only when the
//! progress thread sleeps past a deadline that just appeared or a CQ event
//! is due): an application thread stores its new deadline into `hint`
//! (`fetch_min`), then reads `sleep_until`; the progress thread stores
//! `sleep_until` (the latest time it will wake), then takes `hint`. With
//! SeqCst on both sides one of them sees the other, so no deadline or event
//! is missed. While the context is active (frames or new deadlines within
//! [`IDLE_AFTER_NS`]) the progress thread never sleeps longer than
//! [`TICK_NS`], so the retransmission deadline every post_send sets (tens
//! of milliseconds away) does not cost a wake-up per message; only an idle
//! thread sleeps up to [`MAX_SLEEP_NS`], and the first post after the idle
//! period wakes it.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use omx_engine::Instant;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use omx_pktio::local::{self, Inbox, Outboxes, Push};
use omx_pktio::{PacketSocket, Waker};
use omx_verbs::{Drive, Endpoint, FrameSink, KernelCall, RxBy};

use crate::errno::Errno;
use crate::kcmd;
use crate::log;

/// Frames one receive pass handles before it lets others run.
const RX_BUDGET: usize = 256;
/// Consecutive empty `poll_cq` calls after which an application thread
/// counts as busy-polling.
const SPIN_STREAK: u32 = 16;
/// While an application thread busy-polls, the progress thread leaves the
/// socket to it and checks again after a window (real time, not the
/// coarse engine clock): if the application busy-polled during the last
/// window it keeps away for another one, twice as long up to
/// [`MAX_SPIN_WINDOW_NS`], else it receives and watches the socket again
/// and the next window is this short again. A process that stops polling
/// with WRs still pending has its frames handled up to two windows late
/// (the last completion wakes this thread at once); every window costs
/// the busy-poller a wake-up of this thread, and with two busy-pollers on
/// two vCPUs those wake-ups are the latency tail: under TCG 10 ms windows
/// halved `ib_send_lat`'s average and `ibv_rc_pingpong`'s time per
/// iteration against 1 ms ones (docs/benchmarks.md).
const SPIN_WINDOW_NS: u64 = 1_000_000;
/// Longest window (see [`SPIN_WINDOW_NS`]).
const MAX_SPIN_WINDOW_NS: u64 = 8 * SPIN_WINDOW_NS;
/// An application that busy-polled within this long (engine clock, so up
/// to one tick more) counts as one that answers from its own thread:
/// frames the progress thread takes for it may have their ACKs held
/// (`RxBy::ProgressForPoller`). Longer than the longest window, since the
/// progress thread notices the spinning only once per window.
const SPUN_LATELY_NS: u64 = 4 * MAX_SPIN_WINDOW_NS;
// Frames of a recent busy-poller still count as such at the end of the
// longest window.
const _: () = assert!(SPUN_LATELY_NS >= 2 * MAX_SPIN_WINDOW_NS);
/// How long the progress thread leaves the socket alone after it found
/// another thread receiving.
const CONTENDED_RETRY_NS: u64 = 100_000;
/// After the progress thread itself received frames, it keeps receiving
/// (yielding the CPU between passes) for this long before it sleeps: a
/// passive target, whose application does not poll (the responder of
/// RDMA READs and atomics, a WRITE target), then answers a latency-bound
/// peer's next request without a wake-up, which under TCG costs more than
/// the round trip itself (docs/benchmarks.md). It costs CPU only while
/// frames keep coming: an idle context sleeps. `OMX_PASSIVE_SPIN_US`
/// changes it (0 turns it off).
const PASSIVE_SPIN_NS: u64 = 200_000;
/// Longest sleep of an idle progress thread (a safety net only).
const MAX_SLEEP_NS: u64 = 1_000_000_000;
/// Longest sleep of the progress thread while the context is active.
const TICK_NS: u64 = 10_000_000;
// A QP holding an ACK for the application's answer publishes a deadline
// at most ACK_HOLD and at least MIN_RTO / 2 away (the engine's caps), and
// every post a retransmission deadline at least MIN_RTO away (unless the
// QP's transport timer is shorter): beyond the active sleep, so neither
// wakes this thread.
const _: () = assert!(omx_verbs::ACK_HOLD.as_nanos() > TICK_NS);
const _: () = assert!(omx_engine::MIN_RTO.as_nanos() / 2 > TICK_NS);
/// The context counts as idle after this long without frames or new
/// deadlines.
const IDLE_AFTER_NS: u64 = 200_000_000;

/// Packet I/O of a context, once a QP connects.
pub struct Io {
    pub sock: PacketSocket,
    waker: Waker,
    /// Signalled by the kernel module when the device is removed under
    /// this context (OMX_METHOD_CTX_FATAL_FD); `None` if the module could
    /// not take it (then a removal is noticed only by failing commands).
    fatal: Option<Waker>,
}

/// Endpoints of this device that frames of ours reached through the
/// netdev because we had no outbox to them: UD peers, which no connect
/// step names (an RC QP opens its outbox in `modify_qp`). The [`Sink`]
/// marks them (an atomic load, and an OR the first time); the progress
/// thread opens their outboxes ([`Runtime::connect_wanted`]), so the
/// frames that follow take shared memory. An endpoint whose inbox could
/// not be opened (another user's, `OMX_LOCAL=0`, no free lane) is not
/// asked for again by this context: its frames keep the netdev.
#[derive(Debug)]
pub struct Wanted {
    bits: [AtomicU64; WANTED_WORDS],
    tried: [AtomicU64; WANTED_WORDS],
    any: AtomicBool,
}

/// 64-bit words for one bit per endpoint number.
const WANTED_WORDS: usize = (omx_rdma_sys::OMX_ENDPOINT_MAX as usize + 1).div_ceil(64);

impl Default for Wanted {
    fn default() -> Self {
        Wanted {
            bits: core::array::from_fn(|_| AtomicU64::new(0)),
            tried: core::array::from_fn(|_| AtomicU64::new(0)),
            any: AtomicBool::new(false),
        }
    }
}

impl Wanted {
    fn word_bit(ep: u32) -> (usize, u64) {
        ((ep as usize / 64) % WANTED_WORDS, 1 << (ep % 64))
    }

    /// A frame went to `ep` through the netdev.
    pub fn mark(&self, ep: u32) {
        let (w, b) = Self::word_bit(ep);
        if (self.bits[w].load(Relaxed) | self.tried[w].load(Relaxed)) & b != 0 {
            return;
        }
        self.bits[w].fetch_or(b, Relaxed);
        self.any.store(true, SeqCst);
    }

    /// Calls `f` with every endpoint marked since the last call and not
    /// given up on; `f` says whether its outbox is open now.
    pub fn take(&self, mut f: impl FnMut(u32) -> bool) {
        if !self.any.swap(false, SeqCst) {
            return;
        }
        for (w, word) in self.bits.iter().enumerate() {
            let mut x = word.swap(0, Relaxed);
            while x != 0 {
                let ep = (w * 64) as u32 + x.trailing_zeros();
                x &= x - 1;
                if !f(ep) {
                    let (tw, b) = Self::word_bit(ep);
                    self.tried[tw].fetch_or(b, Relaxed);
                }
            }
        }
    }
}

/// The context's [`FrameSink`]: a frame for an endpoint on this device
/// whose inbox we opened goes into that inbox (same-host delivery,
/// [`omx_pktio::local`]), every other frame through the packet socket;
/// one for an endpoint on this device without an outbox is marked in
/// `wanted`. Drops frames while there is no socket (nothing is sent
/// before RTR anyway). `N` is the netdev side: the packet socket (tests
/// put a recorder there).
pub struct Sink<'a, N: FrameSink = PacketSocket> {
    sock: Option<&'a N>,
    local: Option<&'a Outboxes>,
    wanted: Option<&'a Wanted>,
    mac: [u8; 6],
}

impl<N: FrameSink> Sink<'_, N> {
    /// Queues `frame` in a local inbox if it is for one we opened (and
    /// wakes its owner if it sleeps). False: it must go out the netdev.
    fn deliver_locally(&self, frame: &[u8]) -> bool {
        let Some(ep) = local::local_destination(frame, &self.mac) else {
            return false;
        };
        let Some(outbox) = self.local.and_then(|l| l.get(ep)) else {
            if let Some(w) = self.wanted {
                w.mark(ep);
            }
            return false;
        };
        match outbox.push(frame) {
            Push::Queued { wake } => {
                if wake {
                    if let Some(s) = self.sock {
                        s.send(&local::wake_frame(self.mac, ep));
                    }
                }
                true
            }
            Push::Refused => false,
        }
    }
}

impl<N: FrameSink> FrameSink for Sink<'_, N> {
    fn send(&self, frame: &[u8]) {
        if self.deliver_locally(frame) {
            return;
        }
        if let Some(s) = self.sock {
            s.send(frame);
        }
    }

    fn send_batch(&self, frames: &[&[u8]]) {
        let out = |wire: &[&[u8]]| {
            if let Some(s) = self.sock {
                s.send_batch(wire);
            }
        };
        if self.local.is_none() && self.wanted.is_none() {
            return out(frames);
        }
        // The frames that stay on the netdev, in order, a batch at a time.
        let mut wire: [&[u8]; omx_pktio::SEND_BATCH] = [&[]; omx_pktio::SEND_BATCH];
        let mut n = 0;
        for f in frames {
            if self.deliver_locally(f) {
                continue;
            }
            wire[n] = f;
            n += 1;
            if n == wire.len() {
                out(&wire);
                n = 0;
            }
        }
        if n != 0 {
            out(&wire[..n]);
        }
    }
}

/// Where the context's netdev is.
#[derive(Debug, Clone, Copy)]
pub struct NetdevInfo {
    pub ifindex: u32,
    pub mac: [u8; 6],
    /// Its MTU when the context was opened (GET_CONTEXT).
    pub mtu: u32,
    pub in_caller_ns: bool,
}

/// The data path of one context.
pub struct Runtime {
    pub ep: Endpoint,
    pub netdev: NetdevInfo,
    io: OnceLock<Io>,
    io_init: Mutex<()>,
    /// Opened by the first QP connected to our own MAC address.
    tap: OnceLock<PacketSocket>,
    /// Our inbox for frames from endpoints on this device, created with
    /// the first QP (`None`: no usable /dev/shm; local senders then use
    /// the netdev).
    inbox: OnceLock<Option<Inbox>>,
    /// Outboxes to the inboxes of endpoints on this device our QPs
    /// connected to (created with the first such QP).
    outboxes: OnceLock<Outboxes>,
    /// Endpoints of this device our frames reached through the netdev.
    wanted: Wanted,
    /// Whether this context sends same-device frames through shared
    /// memory (`OMX_LOCAL=0` turns it off: everything takes the netdev).
    local_tx: bool,
    /// [`PASSIVE_SPIN_NS`], or `OMX_PASSIVE_SPIN_US` (0: never spin).
    passive_spin_ns: u64,
    cmd_fd: i32,
    stop: AtomicBool,
    /// The device went away under this context ([`Runtime::device_fatal`]).
    dead: AtomicBool,
    /// Deadline (ns) the progress thread sleeps until; 0 while it runs.
    sleep_until: AtomicU64,
    /// Earliest deadline (ns) published by application threads.
    hint: AtomicU64,
    /// [`crate::clock::engine_ns`] when the runtime started.
    base: u64,
    /// [`crate::clock::engine_resolution_ns`].
    resolution: u64,
    rx_frames: AtomicU64,
    /// Address handles of this context ([`crate::ah`], at most
    /// `OMX_MAX_AH`).
    pub ahs: AtomicU32,
    /// Diagnostics: progress-thread loop passes and the frames it took.
    progress_passes: AtomicU64,
    progress_frames: AtomicU64,
    spin_streak: AtomicU32,
    /// An application thread busy-polled since the progress thread last
    /// looked (set by `app_polled`, taken by the progress thread).
    spinning: AtomicBool,
    /// The progress thread sleeps without watching the socket because an
    /// application thread busy-polls for pending work; an application
    /// thread whose drive completed the endpoint's last pending WR wakes it
    /// (see `after_drive`).
    blind: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Runtimes alive, for the `OMX_STATS` lines printed at process exit
/// (an application that exits without closing its context, as perftest
/// does after an error, would otherwise print nothing).
static LIVE: Mutex<Vec<std::sync::Weak<Runtime>>> = Mutex::new(Vec::new());

/// The `atexit` handler: prints the counters of every context still open.
extern "C" fn stats_at_exit() {
    let live = LIVE.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for rt in live.iter().filter_map(std::sync::Weak::upgrade) {
        if !rt.stop.load(SeqCst) {
            log::stats("ctx", &format!("{}-at-exit", rt.ep.endpoint), rt.counters());
            for (qpn, r) in rt.ep.gone_reports() {
                log::gone(qpn.value(), &r);
            }
        }
    }
}

impl Runtime {
    pub fn new(endpoint: u32, netdev: NetdevInfo, cmd_fd: i32) -> Arc<Self> {
        let rt = Self::build(endpoint, netdev, cmd_fd);
        if log::stats_enabled() {
            static AT_EXIT: std::sync::Once = std::sync::Once::new();
            // SAFETY: registers a plain function taking nothing, once; it
            // may run at any exit, with or without open contexts.
            AT_EXIT.call_once(|| unsafe {
                libc::atexit(stats_at_exit);
            });
            let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
            live.retain(|w| w.strong_count() > 0);
            live.push(Arc::downgrade(&rt));
        }
        rt
    }

    fn build(endpoint: u32, netdev: NetdevInfo, cmd_fd: i32) -> Arc<Self> {
        Arc::new(Runtime {
            ep: Endpoint::new(endpoint),
            netdev,
            io: OnceLock::new(),
            io_init: Mutex::new(()),
            tap: OnceLock::new(),
            inbox: OnceLock::new(),
            outboxes: OnceLock::new(),
            wanted: Wanted::default(),
            local_tx: std::env::var_os("OMX_LOCAL").is_none_or(|v| v != "0"),
            passive_spin_ns: passive_spin_setting(std::env::var("OMX_PASSIVE_SPIN_US").ok()),
            cmd_fd,
            stop: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            sleep_until: AtomicU64::new(0),
            hint: AtomicU64::new(u64::MAX),
            base: crate::clock::engine_ns(),
            resolution: crate::clock::engine_resolution_ns(),
            rx_frames: AtomicU64::new(0),
            ahs: AtomicU32::new(0),
            progress_passes: AtomicU64::new(0),
            progress_frames: AtomicU64::new(0),
            spin_streak: AtomicU32::new(0),
            spinning: AtomicBool::new(false),
            blind: AtomicBool::new(false),
            thread: Mutex::new(None),
        })
    }

    /// The frame sink of the data path.
    pub fn sink(&self) -> Sink<'_> {
        Sink {
            sock: self.io.get().map(|io| &io.sock),
            local: self.outboxes.get(),
            wanted: self.local_tx.then_some(&self.wanted),
            mac: self.netdev.mac,
        }
    }

    /// Our inbox, if it is open.
    fn inbox(&self) -> Option<&Inbox> {
        self.inbox.get().and_then(Option::as_ref)
    }

    /// Creates our inbox (once), so that endpoints on this device can
    /// deliver frames to us through shared memory. Called when a QP is
    /// created: a peer learns our QPN, and so our endpoint, only after
    /// that. Failure is not an error: local peers then use the netdev.
    pub fn open_inbox(&self) {
        if !self.netdev.in_caller_ns {
            return;
        }
        self.inbox.get_or_init(|| {
            let dir = local::InboxDir::system(self.netdev.ifindex)?;
            match Inbox::create(&dir, self.ep.endpoint, &mut report_squat) {
                Ok(ib) => Some(ib),
                Err(e @ local::CreateError::NamesTaken) => {
                    log::notice(format_args!(
                        "endpoint {}: no same-host inbox ({e}); processes on this \
                         device reach it through the netdev",
                        self.ep.endpoint
                    ));
                    None
                }
                Err(e) => {
                    log::debug(format_args!(
                        "endpoint {}: no same-host inbox ({e}); local peers use the netdev",
                        self.ep.endpoint
                    ));
                    None
                }
            }
        });
    }

    /// A QP connects to the endpoint `peer` on this very device: open (or
    /// refresh) our outbox to its inbox. Control path. Failure is not an
    /// error: frames then go through the netdev and the peer's loopback
    /// tap. Returns whether frames to `peer` now take shared memory.
    pub fn connect_local(&self, peer: u32) -> bool {
        if !self.local_tx {
            log::debug(format_args!(
                "endpoint {} -> local endpoint {peer}: netdev (OMX_LOCAL=0)",
                self.ep.endpoint
            ));
            return false;
        }
        let Some(dir) = local::InboxDir::system(self.netdev.ifindex) else {
            return false;
        };
        let outboxes = self.outboxes.get_or_init(Outboxes::default);
        let ok = outboxes.connect(peer, &dir, self.ep.endpoint, &mut report_squat);
        log::debug(format_args!(
            "endpoint {} -> local endpoint {peer}: {}",
            self.ep.endpoint,
            if ok { "shared memory" } else { "netdev" }
        ));
        ok
    }

    /// Opens the outboxes the sink asked for ([`Wanted`]). Progress
    /// thread only (it opens files; never a post or poll call).
    fn connect_wanted(&self) {
        self.wanted.take(|ep| self.connect_local(ep));
    }

    /// Packet I/O, opened (and the progress thread started) on first use.
    pub fn io(self: &Arc<Self>) -> Result<&Io, Errno> {
        if let Some(io) = self.io.get() {
            return Ok(io);
        }
        let _g = self.io_init.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(io) = self.io.get() {
            return Ok(io);
        }
        if !self.netdev.in_caller_ns {
            log::notice(format_args!(
                "the device's netdev (ifindex {}) is not in this process's network \
                 namespace: run the program in that namespace (ip netns exec NS ...)",
                self.netdev.ifindex
            ));
            return Err(Errno::ENODEV);
        }
        let sock = match PacketSocket::open(self.netdev.ifindex, self.ep.endpoint) {
            Ok(s) => s,
            Err(e) => {
                log::notice(format_args!("{e}"));
                return Err(match e {
                    omx_pktio::OpenError::NoCapNetRaw => Errno::EPERM,
                    omx_pktio::OpenError::Io(_, e) => Errno(e.raw_os_error().unwrap_or(libc::EIO)),
                });
            }
        };
        if let omx_pktio::RxKind::Fallback(what, errno) = sock.rx_kind() {
            log::notice(format_args!(
                "no TPACKET receive ring ({what}: {}); receiving with one recv() per frame",
                std::io::Error::from_raw_os_error(errno)
            ));
        }
        if self.ep.mcast_attached() {
            self.steer(&sock, true);
        }
        let waker = Waker::new().map_err(|e| Errno(e.raw_os_error().unwrap_or(libc::EIO)))?;
        let fatal = self.register_fatal_fd();
        let _ = self.io.set(Io { sock, waker, fatal });
        let me = self.clone();
        let h = std::thread::Builder::new()
            .name("omx-progress".into())
            .spawn(move || me.progress())
            .map_err(|_| Errno::ENOMEM)?;
        *self.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(h);
        self.io.get().ok_or(Errno::EIO)
    }

    /// Lets multicast frames through the packet socket while a QP of the
    /// context is attached to a group, and only then (docs/wire.md
    /// §13.5). Called after the endpoint's first attach and last detach;
    /// a socket opened later starts with the right filter ([`Runtime::io`]).
    pub fn update_mcast_steering(&self) {
        let _g = self.io_init.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(io) = self.io.get() {
            self.steer(&io.sock, self.ep.mcast_attached());
        }
    }

    fn steer(&self, sock: &PacketSocket, multicast: bool) {
        if let Err(e) = sock.steer_multicast(self.ep.endpoint, multicast) {
            log::notice(format_args!(
                "endpoint {}: steering filter (multicast {multicast}): {e}",
                self.ep.endpoint
            ));
        }
    }

    /// An eventfd the kernel signals when the device goes away under this
    /// context. A context that was disassociated already (the device went
    /// away before its first QP connected) is marked dead at once.
    fn register_fatal_fd(&self) -> Option<Waker> {
        let fatal = Waker::new().ok()?;
        match kcmd::fatal_fd(fatal.as_fd().as_raw_fd()).call(self.cmd_fd) {
            Ok(()) => Some(fatal),
            Err(e) => {
                if e.0 == libc::EIO {
                    // The kernel revoked our methods: the device is gone.
                    self.dead.store(true, SeqCst);
                }
                log::debug(format_args!(
                    "endpoint {}: CTX_FATAL_FD refused (errno {})",
                    self.ep.endpoint, e.0
                ));
                None
            }
        }
    }

    /// The device was removed under this context (netdev unregistered,
    /// `rdma link delete`, `rmmod`; the application gets
    /// IBV_EVENT_DEVICE_FATAL from libibverbs): stop packet I/O at once,
    /// so that nothing more is sent for this endpoint and frames meant
    /// for a newer context with the same endpoint number never reach this
    /// one, and fail every QP, so that threads waiting for completions get
    /// IBV_WC_WR_FLUSH_ERR instead of waiting forever. Idempotent.
    pub fn device_fatal(&self) {
        if self.dead.swap(true, SeqCst) && self.io.get().is_some_and(|io| io.sock.is_shut()) {
            return;
        }
        if let Some(io) = self.io.get() {
            io.sock.shut();
        }
        if let Some(tap) = self.tap.get() {
            tap.shut();
        }
        if let Some(ib) = self.inbox() {
            ib.close();
        }
        let d = self.ep.fail_all(self.now(), &self.sink());
        log::notice(format_args!(
            "endpoint {}: the device was removed; packet I/O stopped, QPs moved to ERROR",
            self.ep.endpoint
        ));
        self.after_drive(d);
        // The counters as they stand now: nothing may reach this context
        // any more, which the ones printed at close then show.
        if log::stats_enabled() {
            log::stats("ctx", &self.ep.endpoint.to_string(), self.counters());
        }
    }

    /// Whether the device went away under this context.
    pub fn is_dead(&self) -> bool {
        self.dead.load(Relaxed)
    }

    /// Opens the loopback tap (once) so frames other contexts on this
    /// device, or our own QPs, send to our MAC address reach us. Called
    /// when a QP moves to RTR with our own MAC as its destination; [`io`]
    /// must have succeeded first.
    pub fn enable_loopback(&self) -> Result<(), Errno> {
        if self.tap.get().is_some() {
            return Ok(());
        }
        let _g = self.io_init.lock().unwrap_or_else(|p| p.into_inner());
        if self.tap.get().is_some() {
            return Ok(());
        }
        let tap =
            PacketSocket::open_loopback(self.netdev.ifindex, self.ep.endpoint).map_err(|e| {
                log::notice(format_args!("same-device loopback: {e}"));
                match e {
                    omx_pktio::OpenError::NoCapNetRaw => Errno::EPERM,
                    omx_pktio::OpenError::Io(_, e) => Errno(e.raw_os_error().unwrap_or(libc::EIO)),
                }
            })?;
        let _ = self.tap.set(tap);
        // The progress thread may sleep on the old set of descriptors.
        if let Some(io) = self.io.get() {
            io.waker.wake();
        }
        Ok(())
    }

    /// Engine time: nanoseconds since the runtime started, on the coarse
    /// engine clock ([`crate::clock::engine_ns`]).
    pub fn now(&self) -> Instant {
        Instant::from_nanos(crate::clock::engine_ns().saturating_sub(self.base) + 1)
    }

    /// Sends the ACKs QPs still hold, then stops and joins the progress
    /// thread (free_context).
    pub fn shutdown(&self) {
        self.ep.flush_acks(self.now(), &self.sink());
        self.stop.store(true, SeqCst);
        if let Some(io) = self.io.get() {
            io.waker.wake();
        }
        let h = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = h {
            let _ = h.join();
        }
        // Local senders go back to the netdev (where nobody listens for
        // us any more either).
        if let Some(ib) = self.inbox() {
            ib.close();
        }
        if log::stats_enabled() {
            log::stats("ctx", &self.ep.endpoint.to_string(), self.counters());
        }
    }

    /// The context's counters by name (OMX_STATS): see [`ctx_counters`].
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let io = self.io.get();
        ctx_counters(
            self.rx_frames(),
            self.ep.qp_totals(),
            self.ep.counters(),
            [
                io.map_or(0, |io| io.sock.ring_drops()),
                self.tap.get().map_or(0, PacketSocket::ring_drops),
            ],
            io.map_or(0, |io| io.sock.tx_drops()),
            self.is_dead(),
        )
    }

    /// Called by application threads after they drove a QP.
    pub fn after_drive(&self, d: Drive) {
        // The last pending WR completed: this thread has nothing left to
        // busy-poll for, so frames that still come (a passive RDMA
        // target's) need the progress thread, which may be sleeping away
        // from the socket. SeqCst: pairs with the progress thread's store
        // of `blind` before it reads `work_pending`.
        if d.idle && self.blind.load(SeqCst) {
            if let Some(io) = self.io.get() {
                io.waker.wake();
            }
        }
        let t = if d.notify { 0 } else { d.deadline_ns };
        if t == u64::MAX {
            return;
        }
        self.hint.fetch_min(t, SeqCst);
        let s = self.sleep_until.load(SeqCst);
        if s != 0 && t < s {
            if let Some(io) = self.io.get() {
                io.waker.wake();
            }
        }
    }

    /// Receives and handles about [`RX_BUDGET`] frames (straight from the
    /// ring, no copy), unless another thread is receiving right now.
    pub fn poll_rx(&self) -> Drive {
        self.try_rx(RxBy::Poller).0
    }

    /// [`Runtime::poll_rx`], and whether this thread got the receive ring
    /// (false: another thread was receiving). A pair rather than an
    /// `Option<Drive>`: memcheck flags the optimised code that selects on
    /// the uninitialised payload of a `None`.
    fn try_rx(&self, by: RxBy) -> (Drive, bool) {
        let Some(io) = self.io.get() else {
            return (Drive::default(), true);
        };
        if self.is_dead() {
            return (Drive::default(), true);
        }
        // An empty busy poll takes no lock (and costs about half the
        // instructions: 183 instead of 394 under callgrind).
        if by == RxBy::Poller
            && !io.sock.may_have_frames()
            && !self.inbox().is_some_and(|ib| ib.may_have_frames())
            && !self.tap.get().is_some_and(|t| t.may_have_frames())
        {
            return (Drive::default(), true);
        }
        let Some(mut rx) = io.sock.receiver() else {
            return (Drive::default(), false);
        };
        let mut d = Drive::default();
        let sink = self.sink();
        let mut handle = |frame: &[u8]| {
            let now = self.now();
            d = d.merge(self.ep.handle_frame_by(by, now, frame, &sink));
        };
        let n = rx.recv_batch(RX_BUDGET, &mut handle);
        // Same-device frames, under the same receiver guard (one thread
        // receives at a time, frames in arrival order per source): first
        // the inbox, then what local senders sent through the netdev
        // (wake frames, which only wake the progress thread, are dropped
        // unread).
        let l = self
            .inbox()
            .filter(|ib| ib.may_have_frames())
            .and_then(Inbox::receiver)
            .map_or(0, |mut ib| ib.recv_batch(RX_BUDGET, &mut handle));
        let m = self
            .tap
            .get()
            .and_then(|tap| tap.receiver())
            .map_or(0, |mut tap| {
                tap.recv_batch(RX_BUDGET, |frame| {
                    if !local::is_wake_frame(frame) {
                        handle(frame);
                    }
                })
            });
        if n + l + m != 0 {
            self.rx_frames.fetch_add((n + l + m) as u64, Relaxed);
        }
        (d, true)
    }

    /// `poll_cq` reports whether it found completions: a run of empty polls
    /// marks the application as busy-polling (see [`SPIN_WINDOW_NS`]).
    pub fn app_polled(&self, found: bool) {
        if found {
            if self.spin_streak.load(Relaxed) != 0 {
                self.spin_streak.store(0, Relaxed);
            }
        } else if self.spin_streak.fetch_add(1, Relaxed) + 1 >= SPIN_STREAK
            && !self.spinning.load(Relaxed)
        {
            self.spinning.store(true, Relaxed);
        }
    }

    /// Frames received so far (diagnostics).
    pub fn rx_frames(&self) -> u64 {
        self.rx_frames.load(Relaxed)
    }

    /// Runs due timers (all QPs).
    pub fn run_timers(&self) -> Drive {
        self.ep.handle_timeouts(self.now(), &self.sink())
    }

    /// Makes the kernel calls the endpoint's objects wait for (completion
    /// events, CQ errors, QPs the engine moved to ERROR).
    fn notify_pass(&self) {
        self.ep.kernel_pass(|call| {
            let (what, mut cmd) = match call {
                KernelCall::CqNotify(h) => ("CQ_NOTIFY", kcmd::cq_notify(h)),
                KernelCall::CqError(h) => ("CQ_ERROR", kcmd::cq_error(h)),
                KernelCall::QpEvent { handle, event } => (
                    "QP_EVENT",
                    kcmd::qp_event(handle, event.kind as u32, event.epoch),
                ),
                KernelCall::SrqLimit(h) => ("SRQ_LIMIT", kcmd::srq_limit(h)),
            };
            // cmd_fd is the context's uverbs fd, open until free_context,
            // which joins this thread first.
            if let Err(e) = cmd.call(self.cmd_fd) {
                log::debug(format_args!("{what} ({call:?}): errno {}", e.0));
            }
        });
    }

    fn progress(&self) {
        let Some(io) = self.io.get() else { return };
        let mut last_active = 0u64;
        let mut seen_frames = 0u64;
        // Engine time of the application's last busy poll, 0 = never (a
        // plain integer: memcheck flags the optimised code that selects on
        // the uninitialised payload of a `None`).
        let mut last_spun = 0u64;
        let mut window = 0;
        // When this thread last received frames itself.
        let mut last_rx: Option<std::time::Instant> = None;
        while !self.stop.load(SeqCst) {
            if self.is_dead() {
                // The device was gone before the eventfd could be
                // registered (register_fatal_fd).
                self.device_fatal();
                break;
            }
            // While an application thread busy-polls, it receives: this
            // thread keeps away from the socket (and from the QP locks a
            // receive pass takes), so it is never the one that holds the
            // frames while the scheduler runs someone else, and a frame
            // the application is about to take does not wake it.
            //
            // Only while it has WRs pending, though: once they completed it
            // has nothing to poll for (a passive RDMA target spins on
            // memory), and frames must not wait for the window. `blind` is
            // stored before `work_pending` is read, and an application
            // thread reads `blind` after it made the endpoint idle, so one
            // of the two sees the other (`after_drive`).
            let spun = self.spinning.swap(false, Relaxed);
            self.blind.store(spun, SeqCst);
            let pass = self.now().as_nanos();
            if spun {
                last_spun = pass;
            }
            let app_receives = spun && self.ep.work_pending();
            window = spin_window(window, app_receives);
            if spun && !app_receives {
                self.blind.store(false, SeqCst);
            }
            // Frames first, then timers: a timer pass must not take a peer
            // for silent while its answer waits unread in our ring. Frames
            // that wait although an application thread busy-polls (it is
            // posting, or was descheduled) are taken too: otherwise a
            // client posting thousands of WRs at once (perftest -q 256)
            // overflowed its ring with ACKs and its QPs ended in
            // RETRY_EXC_ERR with the answers unread.
            let mut d = Drive::default();
            let mut contended = false;
            let backlog = app_receives
                && (io.sock.may_have_frames()
                    || self.inbox().is_some_and(|ib| ib.may_have_frames())
                    || self.tap.get().is_some_and(|t| t.may_have_frames()));
            if !app_receives || backlog {
                let before = self.rx_frames.load(Relaxed);
                let by = progress_rx_by(last_spun, pass);
                let (r, got) = self.try_rx(by);
                d = d.merge(r);
                contended = !got;
                let took = self.rx_frames.load(Relaxed) - before;
                self.progress_frames.fetch_add(took, Relaxed);
                if took > 0 {
                    last_rx = Some(std::time::Instant::now());
                }
            }
            d = d.merge(self.run_timers());
            self.progress_passes.fetch_add(1, Relaxed);
            self.notify_pass();
            self.connect_wanted();
            let now = self.now().as_nanos();
            let frames = self.rx_frames.load(Relaxed);
            if frames != seen_frames || app_receives {
                seen_frames = frames;
                last_active = now;
            }
            let cap = if now.saturating_sub(last_active) < IDLE_AFTER_NS {
                TICK_NS
            } else {
                MAX_SLEEP_NS
            };
            let mut until = d.deadline_ns;
            until = until.min(now.saturating_add(cap));
            self.sleep_until.store(until.max(1), SeqCst);
            let hint = self.hint.swap(u64::MAX, SeqCst);
            if hint != u64::MAX {
                last_active = now;
            }
            until = until.min(hint);
            if self.stop.load(SeqCst) {
                break;
            }
            if until > now {
                // The deadline is on the coarse engine clock: it is seen as
                // due only once the clock ticked past it.
                let ns = (until - now).max(self.resolution);
                // What to watch besides the waker: the packet socket and
                // the tap unless an application thread receives, and
                // always the device-removal eventfd (the last one).
                let mut fds: [Option<BorrowedFd<'_>>; 3] = [None; 3];
                let mut timeout = ns;
                let sleep = if app_receives {
                    // Check again when the window ends.
                    timeout = ns.min(window);
                    true
                } else if contended {
                    // An application thread is receiving right now: the
                    // frames are its; the socket stays readable until it
                    // took them, so watching it would spin.
                    timeout = ns.min(CONTENDED_RETRY_NS);
                    true
                } else if self.inbox().is_some_and(|ib| !ib.prepare_sleep()) {
                    // A local sender published frames since the last pass:
                    // receive them instead of sleeping.
                    false
                } else if passive_spin(last_rx.map(|t| t.elapsed()), self.passive_spin_ns) {
                    // Frames came lately: look again instead of sleeping.
                    std::thread::yield_now();
                    false
                } else {
                    fds[0] = Some(io.sock.fd());
                    fds[1] = self.tap.get().map(PacketSocket::fd);
                    true
                };
                if sleep {
                    fds[2] = io.fatal.as_ref().map(Waker::as_fd);
                    let (set, n) = compact(fds, io.waker.as_fd());
                    let ready = io.waker.wait_on(&set[..n], timeout);
                    if io.fatal.is_some() && ready & (1 << (n - 1)) != 0 {
                        self.device_fatal();
                        break;
                    }
                }
                if let Some(ib) = self.inbox() {
                    ib.awake();
                }
            }
            self.sleep_until.store(0, SeqCst);
            self.blind.store(false, SeqCst);
        }
        // A last pass so events of completions made during shutdown are
        // not lost.
        self.notify_pass();
        log::debug(format_args!(
            "endpoint {}: {} frames received, {} of them by the progress thread in {} passes",
            self.ep.endpoint,
            self.rx_frames.load(Relaxed),
            self.progress_frames.load(Relaxed),
            self.progress_passes.load(Relaxed)
        ));
    }
}

/// The descriptors present in `fds`, in order, and how many there are
/// (`filler` pads the rest of the array): a watch list built without
/// allocating.
fn compact<'a, const N: usize>(
    fds: [Option<BorrowedFd<'a>>; N],
    filler: BorrowedFd<'a>,
) -> ([BorrowedFd<'a>; N], usize) {
    let mut out = [filler; N];
    let mut n = 0;
    for fd in fds.into_iter().flatten() {
        out[n] = fd;
        n += 1;
    }
    (out, n)
}

/// A same-host inbox name someone else holds (omx-pktio reports each once
/// per process): always printed, it costs the fast path.
fn report_squat(s: &local::Squat) {
    log::notice(format_args!("{s}"));
}

/// Whether the progress thread, which last received frames itself
/// `since` ago (`None`: never), keeps receiving instead of sleeping, for
/// a spin of `spin_ns` ([`PASSIVE_SPIN_NS`]).
fn passive_spin(since: Option<std::time::Duration>, spin_ns: u64) -> bool {
    since.is_some_and(|d| d.as_nanos() < u128::from(spin_ns))
}

/// The passive spin in ns from `OMX_PASSIVE_SPIN_US` (microseconds, at
/// most one second; 0 turns it off); [`PASSIVE_SPIN_NS`] if unset or not
/// a number.
fn passive_spin_setting(v: Option<String>) -> u64 {
    v.and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(PASSIVE_SPIN_NS, |us| us.min(1_000_000) * 1000)
}

/// The progress thread's window away from the socket while the
/// application busy-polls for pending work (`app_receives`), after the
/// previous one (`window`, 0: it did not): [`SPIN_WINDOW_NS`] first, then
/// twice the previous up to [`MAX_SPIN_WINDOW_NS`]; 0 once it stops.
fn spin_window(window: u64, app_receives: bool) -> u64 {
    if app_receives {
        (window * 2).clamp(SPIN_WINDOW_NS, MAX_SPIN_WINDOW_NS)
    } else {
        0
    }
}

/// Who the progress thread receives for, at `now` (engine clock), when
/// the application last busy-polled at `last_spun` (0: never; the engine
/// clock starts at 1): one that busy-polled lately answers from its own
/// thread (it spins on memory between polls), so its QPs may hold ACKs
/// for the answer (see [`RxBy`]).
fn progress_rx_by(last_spun: u64, now: u64) -> RxBy {
    if last_spun != 0 && now.saturating_sub(last_spun) <= SPUN_LATELY_NS {
        RxBy::ProgressForPoller
    } else {
        RxBy::Progress
    }
}

/// A context's counters by name, each name once: frames received, the
/// engine counters of all its QPs (destroyed and live) summed (their
/// `rx_frames`, frames handed to a QP, as `rx_qp_frames`), the endpoint's
/// own drops, what the kernel dropped for want of ring space (socket,
/// loopback tap), the frames it refused to send, and whether the device
/// went away.
fn ctx_counters(
    rx_frames: u64,
    qp_totals: Vec<(&'static str, u64)>,
    endpoint: [(&'static str, u64); 3],
    ring_drops: [u64; 2],
    tx_drops: u64,
    dead: bool,
) -> Vec<(&'static str, u64)> {
    let mut c = vec![("rx_frames", rx_frames)];
    c.extend(
        qp_totals
            .into_iter()
            .map(|(n, v)| (if n == "rx_frames" { "rx_qp_frames" } else { n }, v)),
    );
    c.extend(endpoint);
    c.push(("rx_ring_drops", ring_drops[0]));
    c.push(("rx_tap_ring_drops", ring_drops[1]));
    c.push(("tx_socket_drops", tx_drops));
    c.push(("device_fatal", u64::from(dead)));
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_dump_names_each_counter_once() {
        let qps: Vec<_> = omx_engine::Stats::default().fields().collect();
        let c = ctx_counters(
            7,
            qps,
            [
                ("rx_unparsable", 1),
                ("rx_unknown_qp", 2),
                ("rx_mcast_unjoined", 5),
            ],
            [3, 4],
            6,
            true,
        );
        let mut names: Vec<_> = c.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "a counter name appears twice: {c:?}");
        let get = |k: &str| c.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        assert_eq!(get("rx_frames"), Some(7));
        assert_eq!(get("rx_qp_frames"), Some(0));
        assert_eq!(get("rx_tap_ring_drops"), Some(4));
        assert_eq!(get("tx_socket_drops"), Some(6));
        assert_eq!(get("device_fatal"), Some(1));
    }

    #[test]
    fn progress_frames_of_a_recent_busy_poller_may_hold_their_ack() {
        let now = 50 * SPUN_LATELY_NS;
        // Never busy-polled (completion events): ACKs go at once.
        assert_eq!(progress_rx_by(0, now), RxBy::Progress);
        assert!(!RxBy::Progress.may_hold_ack());
        // Busy-polled within the last SPUN_LATELY_NS: held for the answer.
        for t in [now, now - SPUN_LATELY_NS] {
            assert_eq!(progress_rx_by(t, now), RxBy::ProgressForPoller);
        }
        assert!(RxBy::ProgressForPoller.may_hold_ack());
        assert!(RxBy::Poller.may_hold_ack());
        // Longer ago: the application may sleep now.
        assert_eq!(
            progress_rx_by(now - SPUN_LATELY_NS - 1, now),
            RxBy::Progress
        );
    }

    #[test]
    fn watch_lists_keep_the_present_descriptors_in_order() {
        let a = Waker::new().unwrap();
        let b = Waker::new().unwrap();
        let f = Waker::new().unwrap();
        let raw = |fds: &[BorrowedFd<'_>]| fds.iter().map(|d| d.as_raw_fd()).collect::<Vec<_>>();
        let (set, n) = compact([Some(a.as_fd()), None, Some(f.as_fd())], b.as_fd());
        assert_eq!(
            raw(&set[..n]),
            [a.as_fd().as_raw_fd(), f.as_fd().as_raw_fd()]
        );
        let (set, n) = compact([None, None, Some(f.as_fd())], b.as_fd());
        assert_eq!(raw(&set[..n]), [f.as_fd().as_raw_fd()]);
        let (_, n) = compact::<3>([None, None, None], b.as_fd());
        assert_eq!(n, 0);
    }

    #[test]
    fn a_passive_target_keeps_receiving_only_shortly_after_frames() {
        use std::time::Duration;
        let spin = PASSIVE_SPIN_NS;
        assert!(!passive_spin(None, spin), "never received: sleep");
        assert!(passive_spin(Some(Duration::ZERO), spin));
        assert!(passive_spin(Some(Duration::from_nanos(spin - 1)), spin));
        assert!(!passive_spin(Some(Duration::from_nanos(spin)), spin));
        assert!(!passive_spin(Some(Duration::from_secs(5)), spin));
        assert!(!passive_spin(Some(Duration::ZERO), 0), "turned off");
        assert_eq!(passive_spin_setting(None), PASSIVE_SPIN_NS);
        assert_eq!(passive_spin_setting(Some("x".into())), PASSIVE_SPIN_NS);
        assert_eq!(passive_spin_setting(Some("0".into())), 0);
        assert_eq!(passive_spin_setting(Some(" 50".into())), 50_000);
        assert_eq!(passive_spin_setting(Some("99999999".into())), 1_000_000_000);
    }

    #[test]
    fn spin_windows_grow_while_the_application_busy_polls_and_reset_when_it_stops() {
        let mut w = 0;
        let mut seen = Vec::new();
        for _ in 0..6 {
            w = spin_window(w, true);
            seen.push(w / 1_000_000);
        }
        assert_eq!(seen, [1, 2, 4, 8, 8, 8], "ms");
        w = spin_window(w, false);
        assert_eq!(
            spin_window(w, true),
            SPIN_WINDOW_NS,
            "a new spin starts short"
        );
    }

    #[test]
    fn the_sink_routes_frames_for_opened_local_endpoints_into_their_inbox() {
        let dir = std::env::temp_dir().join(format!("omx-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mac = [2, 0, 0, 0, 0, 1];
        let inboxes = local::InboxDir::new(dir.clone(), 1, 3);
        let inbox = Inbox::create(&inboxes, 7, &mut no_squat).unwrap();
        let outboxes = Outboxes::default();
        assert!(outboxes.connect(7, &inboxes, 9, &mut no_squat));
        let sink: Sink<'_> = Sink {
            sock: None,
            local: Some(&outboxes),
            wanted: None,
            mac,
        };
        // dst MAC, src MAC, EtherType, peer index, ptype, 3 bytes, then
        // the reserved byte and the 24-bit dst QPN at abs 20..24.
        let frame = |dmac: [u8; 6], qpn: u32, tag: u8| {
            let mut f = vec![tag; 64];
            f[0..6].copy_from_slice(&dmac);
            f[20..24].copy_from_slice(&qpn.to_be_bytes());
            f
        };
        let to7 = frame(mac, 7 << 12 | 5, 1);
        let to7b = frame(mac, 7 << 12 | 6, 2);
        let to8 = frame(mac, 8 << 12 | 5, 3);
        let remote = frame([2, 0, 0, 0, 0, 2], 7 << 12 | 5, 4);
        let batch: Vec<&[u8]> = (0..40)
            .flat_map(|_| [&to7[..], &to8, &remote, &to7b])
            .collect();
        sink.send_batch(&batch);
        sink.send(&to8);
        sink.send(&to7);
        let mut got = Vec::new();
        inbox
            .receiver()
            .unwrap()
            .recv_batch(usize::MAX, |f| got.push(f[0..24].to_vec()));
        let mut want: Vec<Vec<u8>> = (0..40)
            .flat_map(|_| [to7[0..24].to_vec(), to7b[0..24].to_vec()])
            .collect();
        want.push(to7[0..24].to_vec());
        assert_eq!(got, want, "only frames for endpoint 7 on our MAC, in order");
        // A sleeping receiver is woken (here: no socket to send the wake
        // frame through, which must not matter either).
        assert!(inbox.prepare_sleep());
        sink.send(&to7);
        assert!(!inbox.prepare_sleep(), "the frame is waiting");
        drop(inbox);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Frames to an endpoint of our MAC without an outbox go out the
    /// netdev and mark it once; the progress thread's pass then connects
    /// it, and an endpoint that could not be connected is not asked for
    /// again.
    #[test]
    fn frames_to_local_endpoints_without_an_outbox_ask_for_one() {
        let netdev = Netdev::default();
        let wanted = Wanted::default();
        let mac = [2, 0, 0, 0, 0, 1];
        let sink = Sink {
            sock: Some(&netdev),
            local: None,
            wanted: Some(&wanted),
            mac,
        };
        let frame = |dmac: [u8; 6], ep: u32| {
            let mut f = vec![0u8; 64];
            f[0..6].copy_from_slice(&dmac);
            f[20..24].copy_from_slice(&(ep << 12 | 5).to_be_bytes());
            f
        };
        let (to7, to4095, remote) = (
            frame(mac, 7),
            frame(mac, 4095),
            frame([2, 0, 0, 0, 0, 2], 9),
        );
        sink.send_batch(&[&to7, &remote, &to4095, &to7]);
        sink.send(&to7);
        assert_eq!(netdev.0.borrow().len(), 5, "every frame took the netdev");
        let mut asked = Vec::new();
        wanted.take(|ep| {
            asked.push(ep);
            ep == 7
        });
        assert_eq!(asked, [7, 4095]);
        wanted.take(|_| panic!("nothing new"));
        // 4095 could not be connected: not asked for again; 7 can be
        // asked again (its outbox may go stale).
        sink.send_batch(&[&to4095, &to7]);
        let mut asked = Vec::new();
        wanted.take(|ep| {
            asked.push(ep);
            true
        });
        assert_eq!(asked, [7]);
    }

    fn no_squat(s: &local::Squat) {
        panic!("unexpected: {s}");
    }

    /// The netdev side of a [`Sink`] in tests: records what it is given.
    #[derive(Default)]
    struct Netdev(std::cell::RefCell<Vec<Vec<u8>>>);
    impl FrameSink for Netdev {
        fn send(&self, f: &[u8]) {
            self.0.borrow_mut().push(f.to_vec());
        }
    }

    /// Every inbox name of endpoint 7 is squatted: it gets no inbox (with
    /// a notice), a sender no outbox, and the frames for it go through the
    /// netdev, where the loopback tap delivers them as before.
    #[test]
    fn with_every_inbox_name_squatted_frames_take_the_netdev() {
        let dir = std::env::temp_dir().join(format!("omx-squat-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let inboxes = local::InboxDir::new(dir.clone(), 1, 3);
        for n in inboxes.names(7) {
            std::fs::create_dir(n).unwrap();
        }
        let mut seen = 0;
        assert!(matches!(
            Inbox::create(&inboxes, 7, &mut |_| seen += 1),
            Err(local::CreateError::NamesTaken)
        ));
        assert_eq!(seen, local::NAMES);
        let outboxes = Outboxes::default();
        assert!(!outboxes.connect(7, &inboxes, 9, &mut no_squat));
        let netdev = Netdev::default();
        let mac = [2, 0, 0, 0, 0, 1];
        let sink = Sink {
            sock: Some(&netdev),
            local: Some(&outboxes),
            wanted: None,
            mac,
        };
        let mut f = vec![0u8; 64];
        f[0..6].copy_from_slice(&mac);
        f[20..24].copy_from_slice(&(7u32 << 12 | 5).to_be_bytes());
        sink.send(&f);
        sink.send_batch(&[&f, &f]);
        assert_eq!(netdev.0.borrow().len(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
