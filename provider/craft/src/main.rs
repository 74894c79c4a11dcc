//! `omx-craft`: forge, send and sniff omx frames (docs/wire.md) on an
//! interface, as a hostile peer on the segment would.
//!
//! ```text
//! omx-craft send  --iface IF --dst-mac MAC --opcode OP --dst-qpn Q --src-qpn Q --psn P [...]
//! omx-craft batch --iface IF < lines of send arguments
//! omx-craft sniff --iface IF [filters] [--timeout S] [--count N] [--format text|env|count|none]
//! omx-craft learn --iface IF --victim-mac MAC [--victim-qpn Q] [--timeout S] [--frames N]
//! omx-craft qp-table < cases of tests/progs/omx_modify_table
//! ```
//!
//! Exit status: 0 success; 1 `sniff --count N` saw fewer than N matching
//! frames before its timeout, or `learn` saw no frame of the connection;
//! 2 bad usage or an I/O error (e.g. no CAP_NET_RAW).

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use omx_craft::decode::{Decoded, Dir, Filter};
use omx_craft::learn::Learner;
use omx_craft::sock::{RawSocket, CAPTURE_LEN};
use omx_craft::spec::{self, FrameSpec, OpcodePattern, Payload, Sweep};
use omx_wire::{
    Aeth, AtomicEth, Bth, Ext, FrameRepr, Opcode, Paeth, Psn, Qpn, Reth, Syndrome, Transport,
};

#[derive(Parser)]
#[command(
    name = "omx-craft",
    about = "Forge, send and sniff omx frames (docs/wire.md) on an interface",
    after_help = "Numbers are decimal or 0x hex; PSNs are taken modulo 2^24. Exit status: 0 ok, \
                  1 `sniff --count` not reached or `learn` saw nothing, 2 usage or I/O error."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build frames from a spec and send them (a sweep with --count).
    Send(SendArgs),
    /// Read `send` arguments from stdin, one frame spec (or sweep) per
    /// line (without --iface; `#` comments), and send them all.
    Batch(BatchArgs),
    /// Print the omx frames crossing an interface.
    Sniff(SniffArgs),
    /// Watch one connection and print what an attacker learns, as
    /// KEY=VALUE lines for the shell.
    Learn(LearnArgs),
    /// Read `modify_qp` cases (`TYPE CUR NEXT MASK [VERDICT]`, the output
    /// of tests/progs/omx_modify_table) from stdin and print each with the
    /// verdict the kernel must give if it agrees with the engine.
    QpTable,
}

#[derive(Args)]
struct SendArgs {
    /// Interface to send on (not needed with --dry-run).
    #[arg(long, required_unless_present = "dry_run")]
    iface: Option<String>,
    /// Print each frame in hex instead of sending it.
    #[arg(long)]
    dry_run: bool,
    /// Print each frame decoded as it is sent.
    #[arg(long, short)]
    verbose: bool,
    /// Pause between frames, in microseconds.
    #[arg(long, default_value_t = 0)]
    interval_us: u64,
    #[command(flatten)]
    frame: FrameArgs,
    #[command(flatten)]
    sweep: SweepArgs,
}

#[derive(Args)]
struct BatchArgs {
    /// Interface to send on (not needed with --dry-run).
    #[arg(long, required_unless_present = "dry_run")]
    iface: Option<String>,
    /// Print each frame in hex instead of sending it.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
struct FrameArgs {
    /// Destination MAC.
    #[arg(long, value_parser = spec::parse_mac)]
    dst_mac: [u8; 6],
    /// Source MAC (default: the interface's; 00:00:00:00:00:00 with
    /// --dry-run).
    #[arg(long, value_parser = spec::parse_mac)]
    src_mac: Option<[u8; 6]>,
    /// Open-MX peer index (informational, not covered by the CRC).
    #[arg(long, value_parser = spec::parse_u16, default_value = "0xffff")]
    peer_index: u16,
    /// Opcode: SEND_ONLY, RDMA_WRITE_FIRST (WRITE_FIRST), RDMA_READ_REQUEST
    /// (READ_REQUEST), ACKNOWLEDGE (ACK), ... or the packet type byte.
    #[arg(long, value_parser = spec::parse_opcode)]
    opcode: Opcode,
    /// Transport: RC (default), UC, RD, UD or a number.
    #[arg(long, value_parser = spec::parse_transport, default_value = "RC")]
    transport: Transport,
    /// Destination QPN.
    #[arg(long, value_parser = spec::parse_qpn)]
    dst_qpn: Qpn,
    /// Source QPN.
    #[arg(long, value_parser = spec::parse_qpn)]
    src_qpn: Qpn,
    /// BTH PSN (of the first frame of a sweep).
    #[arg(long, value_parser = spec::parse_psn)]
    psn: Psn,
    /// Set the BTH AckReq flag.
    #[arg(long)]
    ack_req: bool,
    /// Set the BTH solicited-event flag.
    #[arg(long)]
    solicited: bool,
    /// Piggybacked ACK (flag P), request packets only: PSN[:CREDITS].
    #[arg(long, value_parser = spec::parse_paeth)]
    paeth: Option<Paeth>,
    /// RETH: VA:RKEY:LEN.
    #[arg(long, value_parser = spec::parse_reth)]
    reth: Option<Reth>,
    /// AETH: SYNDROME[:MSN[:CREDITS]]; SYNDROME is ACK, RNR-<code>,
    /// NAK-SEQ, NAK-INV, NAK-ACCESS, NAK-OP, NAK-<code> or a byte.
    #[arg(long, value_parser = spec::parse_aeth)]
    aeth: Option<Aeth>,
    /// AtomicETH: VA:RKEY:SWAP_ADD[:COMPARE].
    #[arg(long, value_parser = spec::parse_atomic)]
    atomic: Option<AtomicEth>,
    /// ImmDt value.
    #[arg(long, value_parser = spec::parse_u32)]
    imm: Option<u32>,
    /// IETH (rkey to invalidate).
    #[arg(long, value_parser = spec::parse_u32)]
    ieth: Option<u32>,
    /// AtomicAckETH original value.
    #[arg(long, value_parser = spec::parse_u64)]
    atomic_ack: Option<u64>,
    /// Payload length (filled with --payload-byte).
    #[arg(long, default_value_t = 0, conflicts_with = "payload_hex")]
    payload_len: usize,
    /// Payload fill byte.
    #[arg(long, value_parser = spec::parse_u8, default_value = "0xa5")]
    payload_byte: u8,
    /// Payload bytes in hex.
    #[arg(long, value_parser = spec::parse_hex_bytes)]
    payload_hex: Option<Vec<u8>>,
    /// Store a wrong CRC32C (every bit of the right one inverted).
    #[arg(long)]
    bad_crc: bool,
}

#[derive(Args)]
struct SweepArgs {
    /// Number of frames to send.
    #[arg(long, default_value_t = 1)]
    count: u32,
    /// Added to the BTH PSN from one frame to the next.
    #[arg(long, value_parser = spec::parse_u32, default_value = "0")]
    psn_step: u32,
    /// Added to the PAETH PSN from one frame to the next.
    #[arg(long, value_parser = spec::parse_u32, default_value = "0")]
    paeth_step: u32,
    /// Added to the destination QPN from one frame to the next.
    #[arg(long, value_parser = spec::parse_u32, default_value = "0")]
    dst_qpn_step: u32,
    /// Added to the source QPN from one frame to the next.
    #[arg(long, value_parser = spec::parse_u32, default_value = "0")]
    src_qpn_step: u32,
    /// Added to the RETH address from one frame to the next.
    #[arg(long, value_parser = spec::parse_u64, default_value = "0")]
    va_step: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// One line per matching frame.
    Text,
    /// At the end, the last matching frame as KEY=VALUE lines (with
    /// MATCHES=N).
    Env,
    /// At the end, the number of matching frames.
    Count,
    /// Nothing (the exit status says whether --count was reached).
    None,
}

#[derive(Clone, Copy, ValueEnum)]
enum DirArg {
    In,
    Out,
    Any,
}

#[derive(Args)]
struct SniffArgs {
    /// Interface to capture on.
    #[arg(long)]
    iface: String,
    /// Stop after this many seconds (default: run until --count).
    #[arg(long)]
    timeout: Option<f64>,
    /// Stop after this many matching frames; exit 1 if the timeout comes
    /// first.
    #[arg(long)]
    count: Option<u64>,
    /// Opcode names, aliases or PREFIX* patterns, comma-separated (any of).
    #[arg(long, value_delimiter = ',', value_parser = OpcodePattern::parse)]
    opcode: Vec<OpcodePattern>,
    /// Source MAC.
    #[arg(long, value_parser = spec::parse_mac)]
    src_mac: Option<[u8; 6]>,
    /// Destination MAC.
    #[arg(long, value_parser = spec::parse_mac)]
    dst_mac: Option<[u8; 6]>,
    /// Source QPN.
    #[arg(long, value_parser = spec::parse_qpn)]
    src_qpn: Option<Qpn>,
    /// Destination QPN.
    #[arg(long, value_parser = spec::parse_qpn)]
    dst_qpn: Option<Qpn>,
    /// AETH syndrome (ACK, NAK-INV, ...).
    #[arg(long, value_parser = spec::parse_syndrome)]
    syndrome: Option<Syndrome>,
    /// Direction on this interface.
    #[arg(long, value_enum, default_value_t = DirArg::Any)]
    dir: DirArg,
    /// Also frames that fail omx-wire's checks (bad CRC, unknown type).
    #[arg(long)]
    include_bad: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Prefix of the KEY=VALUE names (--format env).
    #[arg(long, default_value = "")]
    prefix: String,
    /// Create this file once the socket captures (for scripts that must
    /// start the sniffer before the traffic).
    #[arg(long)]
    ready: Option<String>,
}

#[derive(Args)]
struct LearnArgs {
    /// Interface to capture on.
    #[arg(long)]
    iface: String,
    /// MAC of the victim's port.
    #[arg(long, value_parser = spec::parse_mac)]
    victim_mac: [u8; 6],
    /// The victim's QPN (default: the first seen; needed when both ends
    /// are on one device).
    #[arg(long, value_parser = spec::parse_qpn)]
    victim_qpn: Option<Qpn>,
    /// Path MTU of the connection (READ lengths to PSN counts).
    #[arg(long, default_value_t = 1024)]
    mtu: u32,
    /// Watch for this many seconds.
    #[arg(long, default_value_t = 2.0)]
    timeout: f64,
    /// Stop earlier, after this many frames of the connection.
    #[arg(long)]
    frames: Option<u64>,
    /// Create this file once the socket captures.
    #[arg(long)]
    ready: Option<String>,
}

impl FrameArgs {
    fn spec(&self, default_src: [u8; 6]) -> FrameSpec {
        let payload = match &self.payload_hex {
            Some(b) => Payload::Bytes(b.clone()),
            None => Payload::Fill {
                len: self.payload_len,
                byte: self.payload_byte,
            },
        };
        FrameSpec {
            header: FrameRepr {
                dst_mac: self.dst_mac,
                src_mac: self.src_mac.unwrap_or(default_src),
                peer_index: self.peer_index,
                bth: Bth {
                    opcode: self.opcode,
                    transport: self.transport,
                    ack_req: self.ack_req,
                    solicited: self.solicited,
                    dst_qpn: self.dst_qpn,
                    src_qpn: self.src_qpn,
                    psn: self.psn,
                },
                ext: Ext {
                    ack: self.paeth,
                    reth: self.reth,
                    atomic: self.atomic,
                    aeth: self.aeth,
                    imm: self.imm,
                    ieth: self.ieth,
                    atomic_ack: self.atomic_ack,
                },
                payload_len: 0,
            },
            payload,
            bad_crc: self.bad_crc,
        }
    }
}

impl SweepArgs {
    fn sweep(&self) -> Sweep {
        Sweep {
            count: self.count,
            psn_step: self.psn_step,
            paeth_step: self.paeth_step,
            dst_qpn_step: self.dst_qpn_step,
            src_qpn_step: self.src_qpn_step,
            va_step: self.va_step,
        }
    }
}

fn ready(path: &Option<String>) -> Result<(), String> {
    match path {
        Some(p) => std::fs::File::create(p)
            .map(|_| ())
            .map_err(|e| format!("cannot create {p}: {e}")),
        None => Ok(()),
    }
}

fn deadline(secs: Option<f64>) -> Result<Option<Instant>, String> {
    match secs {
        Some(s) if !(0.0..=1e6).contains(&s) => Err(format!("timeout {s} out of range")),
        Some(s) => Ok(Some(Instant::now() + Duration::from_secs_f64(s))),
        None => Ok(None),
    }
}

/// Calls `f` with each captured frame until `f` returns false or the
/// deadline passes.
fn capture(
    sock: &RawSocket,
    until: Option<Instant>,
    mut f: impl FnMut(&Decoded, f64) -> bool,
) -> Result<(), String> {
    let t0 = Instant::now();
    let mut buf = vec![0u8; CAPTURE_LEN];
    loop {
        let wait = match until {
            Some(u) => match u.checked_duration_since(Instant::now()) {
                Some(d) if !d.is_zero() => d,
                _ => return Ok(()),
            },
            None => Duration::from_secs(3600),
        };
        let got = sock
            .recv(&mut buf, wait)
            .map_err(|e| format!("capture: {e}"))?;
        if let Some((n, dir)) = got {
            let d = Decoded::new(&buf[..n.min(buf.len())], dir);
            if !f(&d, t0.elapsed().as_secs_f64()) {
                return Ok(());
            }
        }
    }
}

/// Sends (or, without a socket, prints in hex) the frames of one `send`
/// spec; returns how many.
fn transmit(a: &SendArgs, sock: Option<&RawSocket>) -> Result<usize, String> {
    let spec = a.frame.spec(sock.map_or([0; 6], RawSocket::mac));
    let frames = spec.build_sweep(&a.sweep.sweep())?;
    let out = std::io::stdout();
    let mut out = out.lock();
    for (i, f) in frames.iter().enumerate() {
        if a.verbose {
            let _ = writeln!(out, "{}", Decoded::new(f, Dir::Out).text(0.0));
        }
        match sock {
            Some(s) => s.send(f).map_err(|e| format!("frame {i}: {e}"))?,
            None => {
                let hex: String = f.iter().map(|b| format!("{b:02x}")).collect();
                let _ = writeln!(out, "{hex}");
            }
        }
        if a.interval_us > 0 && i + 1 < frames.len() {
            std::thread::sleep(Duration::from_micros(a.interval_us));
        }
    }
    Ok(frames.len())
}

fn open_sender(iface: &Option<String>, dry_run: bool) -> Result<Option<RawSocket>, String> {
    match iface {
        Some(i) if !dry_run => RawSocket::open(i, false)
            .map(Some)
            .map_err(|e| format!("{i}: {e}")),
        _ => Ok(None),
    }
}

fn send(a: &SendArgs) -> Result<(), String> {
    let sock = open_sender(&a.iface, a.dry_run)?;
    let n = transmit(a, sock.as_ref())?;
    if sock.is_some() {
        println!("sent {n} frame(s)");
    }
    Ok(())
}

/// One `send` per line of stdin, on one socket: a scenario forges many
/// different frames without starting a process for each.
fn batch(a: &BatchArgs) -> Result<(), String> {
    let sock = open_sender(&a.iface, a.dry_run)?;
    let mut total = 0;
    for (n, line) in std::io::stdin().lines().enumerate() {
        let line = line.map_err(|e| format!("stdin: {e}"))?;
        let words = line.split_whitespace();
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        // Parsed as a dry run so that no line needs --iface; the batch's
        // socket sends (a line's own --iface is ignored).
        let argv = ["omx-craft", "send", "--dry-run"].into_iter().chain(words);
        let cmd = Cli::try_parse_from(argv).map_err(|e| format!("line {}: {e}", n + 1))?;
        let Cmd::Send(s) = cmd.cmd else {
            return Err(format!("line {}: not a send", n + 1));
        };
        total += transmit(&s, sock.as_ref()).map_err(|e| format!("line {}: {e}", n + 1))?;
    }
    if sock.is_some() {
        println!("sent {total} frame(s)");
    }
    Ok(())
}

/// Returns whether `--count` was reached (true without `--count`).
fn sniff(a: &SniffArgs) -> Result<bool, String> {
    let sock = RawSocket::open(&a.iface, true).map_err(|e| format!("{}: {e}", a.iface))?;
    let filter = Filter {
        opcodes: a.opcode.clone(),
        src_mac: a.src_mac,
        dst_mac: a.dst_mac,
        src_qpn: a.src_qpn,
        dst_qpn: a.dst_qpn,
        syndrome: a.syndrome,
        dir: match a.dir {
            DirArg::In => Some(Dir::In),
            DirArg::Out => Some(Dir::Out),
            DirArg::Any => None,
        },
        include_bad: a.include_bad,
    };
    let until = deadline(a.timeout)?;
    ready(&a.ready)?;
    let mut matches = 0u64;
    let mut last = None;
    let stdout = std::io::stdout();
    capture(&sock, until, |d, t| {
        if !filter.matches(d) {
            return true;
        }
        matches += 1;
        if let Format::Text = a.format {
            let mut o = stdout.lock();
            let _ = writeln!(o, "{}", d.text(t));
            let _ = o.flush();
        }
        last = Some(d.clone());
        a.count.is_none_or(|c| matches < c)
    })?;
    let mut o = stdout.lock();
    match a.format {
        Format::Env => {
            let _ = writeln!(o, "{}MATCHES={matches}", a.prefix);
            for l in last.iter().flat_map(|d| d.env(&a.prefix)) {
                let _ = writeln!(o, "{l}");
            }
        }
        Format::Count => {
            let _ = writeln!(o, "{matches}");
        }
        Format::Text | Format::None => {}
    }
    Ok(a.count.is_none_or(|c| matches >= c))
}

/// Returns whether any frame of the connection was seen.
fn learn(a: &LearnArgs) -> Result<bool, String> {
    let sock = RawSocket::open(&a.iface, true).map_err(|e| format!("{}: {e}", a.iface))?;
    let mut l = Learner::new(a.victim_mac, a.victim_qpn, a.mtu);
    let until = deadline(Some(a.timeout))?;
    ready(&a.ready)?;
    capture(&sock, until, |d, _| {
        l.observe(d);
        a.frames.is_none_or(|n| l.frames() < n)
    })?;
    for line in l.report() {
        println!("{line}");
    }
    Ok(l.frames() > 0)
}

fn qp_table() -> Result<bool, String> {
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lines() {
        let line = line.map_err(|e| format!("stdin: {e}"))?;
        let a = omx_craft::qp_table::answer(&line)
            .ok_or_else(|| format!("not a modify_qp case: {line:?}"))?;
        writeln!(out, "{a}").map_err(|e| format!("stdout: {e}"))?;
    }
    Ok(true)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match &cli.cmd {
        Cmd::Send(a) => send(a).map(|_| true),
        Cmd::Batch(a) => batch(a).map(|_| true),
        Cmd::Sniff(a) => sniff(a),
        Cmd::Learn(a) => learn(a),
        Cmd::QpTable => qp_table(),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("omx-craft: {e}");
            ExitCode::from(2)
        }
    }
}
