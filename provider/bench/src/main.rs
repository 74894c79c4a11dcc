//! `omx-bench`: native host benchmark of the omx-verbs data path.
//!
//! As root, creates two network namespaces joined by a veth pair (one run
//! per MTU), and in one process runs two threads, each `setns()`'d into
//! its namespace (the network namespace is per thread), that measure:
//!
//! 1. two floors, plain AF_PACKET: with one syscall per frame (the
//!    send() floor), and with a PACKET_MMAP receive ring and batched
//!    transmit (the ring floor, the best a program gets through the same
//!    kernel path): each a ping-pong of 2-byte-payload frames and a
//!    stream of MTU-size frames;
//! 2. our stack (omx-engine + omx-verbs-objects + omx-pktio, no
//!    libibverbs, no kernel module): 2-byte SEND and RDMA WRITE
//!    ping-pongs (ib_send_lat / ib_write_lat) and a 64 KiB RDMA WRITE
//!    stream (ib_write_bw);
//!
//! and prints a table with the ratios ours / floor for both floors. Latencies are one way
//! (half the round trip, as perftest reports them): median and p99.
//!
//! Usage: `omx-bench [--mtu 1500,9000] [--iters N] [--warmup N]
//! [--secs S] [--bw-msgs N] [--rx v2|v3[:RETIRE_MS]|copy]` (`--rx` picks
//! our stack's receive path: the default TPACKET_V2 ring, a TPACKET_V3
//! ring, or one `recv()` per frame).

mod floor;
mod stack;
mod stats;

use std::sync::atomic::AtomicBool;
use std::sync::{Barrier, Mutex};

use omx_pktio::{netns, RingConfig, RxMode};

use floor::{Peer, RawSock, Stream, StreamEnd};
use stack::{Addr, Node};
use stats::Latency;

struct Opts {
    mtus: Vec<u32>,
    iters: usize,
    warmup: usize,
    secs: f64,
    bw_msgs: usize,
    rx: RxMode,
}

fn parse_rx(v: &str) -> Option<RxMode> {
    let mut it = v.split(':');
    let mode = match it.next()? {
        "copy" => RxMode::Copy,
        "v2" => RxMode::Ring(RingConfig::DEFAULT),
        "v3" => RxMode::Ring(RingConfig {
            retire_ms: it
                .next()
                .map_or(Some(RingConfig::V3.retire_ms), |m| m.parse().ok())?,
            ..RingConfig::V3
        }),
        _ => return None,
    };
    it.next().is_none().then_some(mode)
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        mtus: vec![1500, 9000],
        iters: 100_000,
        warmup: 10_000,
        secs: 2.0,
        bw_msgs: 2_000,
        rx: RxMode::Ring(RingConfig::DEFAULT),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().ok_or(format!("{a} needs a value"))?;
        let bad = || format!("bad value for {a}: {v}");
        match a.as_str() {
            "--mtu" => {
                o.mtus = v
                    .split(',')
                    .map(|m| m.parse().map_err(|_| bad()))
                    .collect::<Result<_, _>>()?
            }
            "--iters" => o.iters = v.parse().map_err(|_| bad())?,
            "--warmup" => o.warmup = v.parse().map_err(|_| bad())?,
            "--secs" => o.secs = v.parse().map_err(|_| bad())?,
            "--bw-msgs" => o.bw_msgs = v.parse().map_err(|_| bad())?,
            "--rx" => o.rx = parse_rx(&v).ok_or_else(bad)?,
            _ => return Err(format!("unknown option {a}")),
        }
    }
    Ok(o)
}

/// Everything one MTU's run measured.
struct Results {
    mtu: u32,
    floor_lat: Latency,
    floor_bw: Stream,
    ring_lat: Latency,
    ring_bw: Stream,
    send_lat: Latency,
    write_lat: Latency,
    write_bw: stack::Bw,
}

/// What one thread measured: the client the latencies and our bandwidth,
/// the server (receiver of the floor stream) the floor bandwidth.
#[derive(Default)]
struct SideOut {
    floor_lat: Option<Latency>,
    floor_bw: Option<Stream>,
    ring_lat: Option<Latency>,
    ring_bw: Option<Stream>,
    send_lat: Option<Latency>,
    write_lat: Option<Latency>,
    write_bw: Option<stack::Bw>,
}

/// What both threads share.
struct Shared<'a> {
    topo: &'a netns::Topology,
    bufs: [u64; 2],
    barrier: Barrier,
    end: StreamEnd,
    stop: AtomicBool,
}

/// One thread's part of the run: `client` is side a.
fn side(o: &Opts, mtu: u32, sh: &Shared<'_>, client: bool) -> Result<SideOut, String> {
    let (me, peer) = if client { (0, 1) } else { (1, 0) };
    let t = sh.topo;
    let s = &t.sides[me];
    let ifindex = netns::enter(s).map_err(|e| format!("setns {}: {e}", s.ns))?;
    let p = Peer {
        sock: RawSock::open(ifindex).map_err(|e| format!("AF_PACKET: {e}"))?,
        mac: s.mac,
        peer: t.sides[peer].mac,
        barrier: &sh.barrier,
    };
    let b = &sh.barrier;
    let mut out = SideOut {
        floor_lat: floor::pingpong(&p, client, o.warmup, o.iters),
        floor_bw: floor::stream(&p, client, mtu as usize + 14, o.secs, &sh.end),
        ..Default::default()
    };
    {
        let rs = floor::ring_socket(ifindex, o.rx).map_err(|e| format!("ring floor: {e}"))?;
        out.ring_lat = floor::ring_pingpong(&p, &rs, client, o.warmup, o.iters);
        out.ring_bw = floor::ring_stream(&p, &rs, client, mtu as usize + 14, o.secs, &sh.end);
    }
    let addr = |i: usize| Addr {
        endpoint: i as u32 + 1,
        mac: t.sides[i].mac,
        buf: sh.bufs[i],
    };
    let mut n = Node::new(
        ifindex,
        addr(me),
        addr(peer),
        stack::path_mtu_for(mtu),
        o.rx,
    )?;
    b.wait();
    out.send_lat = n.send_lat(client, o.warmup, o.iters, b);
    out.write_lat = n.write_lat(client, o.warmup, o.iters, b);
    out.write_bw = n.write_bw(client, o.bw_msgs, b, &sh.stop);
    Ok(out)
}

/// Namespaces to delete if a thread panics (the release profile aborts,
/// so `Topology`'s drop would not run).
static LIVE_NS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Deletes the namespaces of the current run.
fn remove_live_ns() {
    let live = std::mem::take(&mut *LIVE_NS.lock().unwrap_or_else(|p| p.into_inner()));
    for ns in live {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &ns])
            .status();
    }
}

/// Reports `e`, removes the namespaces and exits.
fn fatal(e: &str) -> ! {
    eprintln!("omx-bench: {e}");
    remove_live_ns();
    std::process::exit(1);
}

fn run(o: &Opts, mtu: u32) -> Result<Results, String> {
    let topo = netns::Topology::new("b", mtu).map_err(|e| format!("topology: {e}"))?;
    *LIVE_NS.lock().unwrap_or_else(|p| p.into_inner()) =
        topo.sides.iter().map(|s| s.ns.clone()).collect();
    let bufs: Vec<Vec<u8>> = (0..2).map(|_| vec![0u8; stack::MR_LEN]).collect();
    let sh = Shared {
        topo: &topo,
        bufs: [bufs[0].as_ptr() as u64, bufs[1].as_ptr() as u64],
        barrier: Barrier::new(2),
        end: StreamEnd::default(),
        stop: AtomicBool::new(false),
    };
    // A side that fails ends the process: its peer would wait at the
    // next barrier for ever.
    let side = |client| side(o, mtu, &sh, client).unwrap_or_else(|e| fatal(&e));
    let (a, z) = std::thread::scope(|sc| {
        let ha = sc.spawn(|| side(true));
        let hz = sc.spawn(|| side(false));
        (ha.join(), hz.join())
    });
    // The threads are joined: nobody writes the buffers any more.
    drop(bufs);
    let a = a.map_err(|_| "client thread panicked".to_string())?;
    let z = z.map_err(|_| "server thread panicked".to_string())?;
    let missing = || format!("MTU {mtu}: a measurement is missing");
    Ok(Results {
        mtu,
        floor_lat: a.floor_lat.ok_or_else(missing)?,
        floor_bw: z.floor_bw.ok_or_else(missing)?,
        ring_lat: a.ring_lat.ok_or_else(missing)?,
        ring_bw: z.ring_bw.ok_or_else(missing)?,
        send_lat: a.send_lat.ok_or_else(missing)?,
        write_lat: a.write_lat.ok_or_else(missing)?,
        write_bw: a.write_bw.ok_or_else(missing)?,
    })
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("omx-bench: {e}");
            std::process::exit(2);
        }
    };
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        remove_live_ns();
        default_hook(info);
    }));
    // SAFETY: plain syscall.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("omx-bench: needs root (network namespaces, veth, AF_PACKET)");
        std::process::exit(1);
    }
    let mut all = Vec::new();
    for &mtu in &o.mtus {
        eprintln!("omx-bench: MTU {mtu} ...");
        match run(&o, mtu) {
            Ok(r) => all.push(r),
            Err(e) => {
                eprintln!("omx-bench: MTU {mtu}: {e}");
                std::process::exit(1);
            }
        }
    }
    print_table(&o, &all);
}

fn print_table(o: &Opts, all: &[Results]) {
    println!(
        "one-way latency = RTT/2, median (p99) over {} iterations after {} warm-up; \
         floor stream {} s, ours {} x {} KiB WRITEs, {} outstanding; our receive path: {:?}",
        o.iters,
        o.warmup,
        o.secs,
        o.bw_msgs,
        stack::BW_MSG >> 10,
        stack::BW_WINDOW,
        o.rx
    );
    println!(
        "| MTU | test | send() floor | ring floor | ours | ours / send() floor | ours / ring floor |"
    );
    println!("|---|---|---|---|---|---|---|");
    let lat = |l: &Latency| format!("{:.2} us ({:.2})", l.median_us, l.p99_us);
    let bw = |s: &Stream| format!("{:.0} MB/s ({:.1} % lost)", s.mb_s, s.loss * 100.0);
    for r in all {
        for (name, l) in [
            ("2 B SEND lat", &r.send_lat),
            ("2 B WRITE lat", &r.write_lat),
        ] {
            println!(
                "| {} | {name} | {} | {} | {} | {:.2} | {:.2} |",
                r.mtu,
                lat(&r.floor_lat),
                lat(&r.ring_lat),
                lat(l),
                l.median_us / r.floor_lat.median_us,
                l.median_us / r.ring_lat.median_us
            );
        }
        println!(
            "| {} | 64 KiB WRITE bw | {} | {} | {:.0} MB/s ({} retransmitted, {} timeouts; blocked by the receiver {}, by cwnd {}) | {:.2} | {:.2} |",
            r.mtu,
            bw(&r.floor_bw),
            bw(&r.ring_bw),
            r.write_bw.mb_s,
            r.write_bw.retransmits,
            r.write_bw.timeouts,
            r.write_bw.blocked_peer,
            r.write_bw.blocked_cwnd,
            r.write_bw.mb_s / r.floor_bw.mb_s,
            r.write_bw.mb_s / r.ring_bw.mb_s
        );
    }
}
