//! The receive-path harness shared by the `engine_rx` and `rx_real_mem`
//! fuzz targets (fuzz/) and the `rx_garbage` property test: a connected
//! QP with send and receive WRs posted, a way to turn arbitrary bytes
//! into frames aimed at it, the checks run after every frame, and the
//! seed frames the fuzz corpus is generated from. The connected QP
//! exists twice, RC and UC (docs/wire.md §14): a frame whose transport
//! byte (abs 19) says UC goes to the UC twin, any other to the RC QP.
//!
//! Memory layout (the same keys and addresses in every memory model):
//! [`LOCAL_KEY`] at [`LOCAL_VA`] (receive buffers, send sources, READ
//! destinations; local access only), [`REMOTE_KEY`] at [`REMOTE_VA`]
//! (what the peer may read and write), [`ODP_KEY`] at [`ODP_VA`] (the
//! same, registered on demand where the memory model has that), each
//! [`REGION_LEN`] bytes.

use omx_wire::{Aeth, AtomicEth, Ext, Frame, NakCode, Opcode, Paeth, Position, Reth, Syndrome};

use super::{rts_qp, Conn, FakeMemory};
use crate::mem::{Access, MemoryAccess};
use crate::qp::{QpConfig, RcQp, READ_BURST};
use crate::state::{PathMtu, QpType};
use crate::time::{Duration, Instant};
use crate::wr::{RecvWr, SendOp, SendWr, SgList, WcQueue};

/// The QP under test.
pub const QPN: u32 = 0x2001;
/// Its peer, whose identity the frames carry.
pub const PEER: u32 = 0x1001;
/// Local buffers.
pub const LOCAL_KEY: u32 = 0x101;
/// Address of the local buffers.
pub const LOCAL_VA: u64 = 0x1000;
/// What the peer may read and write.
pub const REMOTE_KEY: u32 = 0x207;
/// Its address.
pub const REMOTE_VA: u64 = 0x9000;
/// The same rights, registered on demand.
pub const ODP_KEY: u32 = 0x30a;
/// Its address.
pub const ODP_VA: u64 = 0x2_0000;
/// Length of each region.
pub const REGION_LEN: usize = 4096;
/// The peer's rkey our own RDMA requests use.
pub const PEER_RKEY: u32 = 0x407;
/// A memory window on the remote region (a harness over real memory
/// binds it through [`QPN`]; the test memories have none).
pub const WINDOW_KEY: u32 = 0x5107;
/// Its start (non-zero-based).
pub const WINDOW_VA: u64 = REMOTE_VA + 1024;
/// Its length.
pub const WINDOW_LEN: u64 = 1024;

/// Most bytes of one frame taken from the fuzzer's input.
const MAX_FRAME: usize = 400;
/// BTH flag bits 4..0 are reserved (ignored by the decoder): the
/// harness reads its own directives from them.
const KEEP_QPNS: u8 = 1;
const KEEP_MAC: u8 = 2;
const DEREG: u8 = 8;

/// The connection of the QP under test: MTU 256, expected PSN just
/// before the wrap, short timers (transport timer 65 µs) and retry
/// budgets.
pub fn conn() -> Conn {
    Conn {
        mtu: PathMtu::Mtu256,
        rq_psn: 0xFF_FFF0,
        sq_psn: 10,
        timeout: 4,
        retry_cnt: 3,
        rnr_retry: 2,
        max_dest_rd_atomic: 4,
        ..Conn::new(QPN, PEER)
    }
}

/// The regions as a [`FakeMemory`].
pub fn fake_memory() -> FakeMemory {
    let mut m = FakeMemory::default();
    m.add(
        LOCAL_KEY,
        LOCAL_VA,
        vec![0x5a; REGION_LEN],
        &[Access::LocalRead, Access::LocalWrite],
    );
    let remote = [
        Access::LocalRead,
        Access::LocalWrite,
        Access::RemoteRead,
        Access::RemoteWrite,
        Access::RemoteAtomic,
    ];
    m.add(REMOTE_KEY, REMOTE_VA, vec![0; REGION_LEN], &remote);
    m.add(ODP_KEY, ODP_VA, vec![0; REGION_LEN], &remote);
    // Its second half faults, as the fuzz target over real memory has it
    // in a PROT_NONE page.
    let half = REGION_LEN as u64 / 2;
    m.set_fault(ODP_KEY, ODP_VA + half..ODP_VA + 2 * half);
    m
}

/// Turns fuzzer bytes into frames: each is a 2-byte big-endian length
/// (modulo 400) and that many bytes. A frame long enough to have a BTH is
/// made an omx-verbs frame of the current version, from the peer (QPNs
/// and source MAC, unless its reserved flag bits say to keep the
/// fuzzer's), with a fresh CRC. Byte 14 (the high byte of the peer
/// index, which the engine ignores and the CRC does not cover) is how
/// many microseconds pass after the frame ([`Harness::input`]).
pub fn frames(data: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    let mut rest = data;
    core::iter::from_fn(move || {
        let (len, tail) = rest.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes(*len)) % MAX_FRAME;
        let take = len.min(tail.len());
        let mut frame = tail[..take].to_vec();
        rest = &tail[take..];
        aim(&mut frame);
        Some(frame)
    })
}

/// The inverse of [`frames`] for frames of fewer than 400 bytes.
pub fn encode(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        out.extend_from_slice(&(f.len() as u16).to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// Whether the fuzzer asks for the remote region to be deregistered
/// before this frame is handled.
pub fn wants_dereg(frame: &[u8]) -> bool {
    frame.get(18).is_some_and(|f| f & DEREG != 0)
}

fn aim(frame: &mut [u8]) {
    if frame.len() < omx_wire::EXT_OFFSET {
        return;
    }
    let c = conn();
    frame[12..14].copy_from_slice(&omx_wire::ETHERTYPE.to_be_bytes());
    frame[17] = omx_wire::VERSION;
    let flags = frame[18];
    if flags & KEEP_QPNS == 0 {
        frame[21..24].copy_from_slice(&c.qpn.to_be_bytes()[1..]);
        frame[25..28].copy_from_slice(&c.dest_qpn.to_be_bytes()[1..]);
    }
    if flags & KEEP_MAC == 0 {
        frame[6..12].copy_from_slice(&super::mac_of(c.dest_qpn));
    }
    if let Ok(f) = Frame::new_checked(&*frame) {
        let (o, crc) = (f.crc_offset(), f.compute_crc());
        frame[o..o + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// The QP under test with its traffic, and what the checks remember.
#[derive(Debug)]
pub struct Harness {
    /// The QP (RC).
    pub qp: RcQp,
    /// Its UC twin: same QPN and connection, the frames with transport
    /// UC.
    pub uc: RcQp,
    now: Instant,
    buf: Vec<u8>,
    seen: Vec<(bool, WcQueue, u64)>,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// The QP in RTS with four receive WRs and four send WRs (SEND,
    /// READ, WRITE, SEND with immediate) posted, and its UC twin alike
    /// (WRITE with immediate instead of the READ UC does not have).
    pub fn new() -> Self {
        Harness {
            qp: Self::qp(QpType::Rc),
            uc: Self::qp(QpType::Uc),
            now: Instant::from_micros(1),
            buf: vec![0; omx_wire::max_frame_len(256)],
            seen: Vec::new(),
        }
    }

    fn qp(t: QpType) -> RcQp {
        let mut cfg = QpConfig::new(omx_wire::Qpn::new(QPN));
        cfg.sq_depth = 16;
        cfg.rq_depth = 16;
        cfg.qp_type = t;
        let mut qp = rts_qp(cfg, &conn());
        for i in 0..4u64 {
            let at = LOCAL_VA + i * 1024;
            let sg = SgList::single(at, 1024, LOCAL_KEY);
            qp.post_recv(RecvWr { wr_id: i, sg }).expect("room for 4");
            let mut sg = SgList::single(at, 512, LOCAL_KEY);
            let op = match i {
                0 => SendOp::Send,
                1 if t == QpType::Uc => SendOp::RdmaWriteWithImm {
                    remote_addr: 0,
                    rkey: PEER_RKEY,
                    imm: 6,
                },
                1 => SendOp::RdmaRead {
                    remote_addr: 0,
                    rkey: PEER_RKEY,
                },
                2 => SendOp::RdmaWrite {
                    remote_addr: 0,
                    rkey: PEER_RKEY,
                },
                3 if t == QpType::Rc => {
                    sg = SgList::single(at, 8, LOCAL_KEY);
                    SendOp::AtomicFetchAdd {
                        remote_addr: 0,
                        rkey: PEER_RKEY,
                        add: 3,
                    }
                }
                _ => SendOp::SendWithImm(5),
            };
            let wr = SendWr {
                wr_id: 100 + i,
                op,
                sg,
                signaled: true,
                solicited: false,
            };
            qp.post_send(wr).expect("room for 4");
        }
        qp
    }

    /// Hands `frame` to the QP, then drains its output, runs its timers
    /// (time moves on by byte 14 of the frame, in microseconds) and its
    /// completions. Panics if the QP sends without bound (more than a
    /// READ burst plus its window per input) or completes a WR twice.
    pub fn input<M: MemoryAccess + ?Sized>(&mut self, frame: &[u8], mem: &mut M) {
        // What the posts left to send goes first (the provider drives
        // after every post).
        self.drain(mem);
        let uc = frame.get(19) == Some(&u8::from(omx_wire::Transport::Uc));
        let qp = if uc { &mut self.uc } else { &mut self.qp };
        let _ = qp.handle_frame(self.now, frame, mem);
        self.drain(mem);
        let dt = frame.get(14).map_or(1, |b| u64::from(*b));
        self.now = self.now + Duration::from_micros(dt);
        self.qp.handle_timeout(self.now);
        self.uc.handle_timeout(self.now);
        self.drain(mem);
    }

    fn drain<M: MemoryAccess + ?Sized>(&mut self, mem: &M) {
        for uc in [false, true] {
            let qp = if uc { &mut self.uc } else { &mut self.qp };
            let mut sent = 0;
            while qp.poll_transmit(self.now, &mut self.buf, mem).is_some() {
                sent += 1;
                assert!(sent <= READ_BURST + 256, "poll_transmit never ends");
            }
            while let Some(wc) = qp.poll_completion() {
                let id = (uc, wc.queue, wc.wr_id);
                assert!(!self.seen.contains(&id), "completed twice: {wc:?}");
                self.seen.push(id);
            }
            let _ = qp.poll_event();
        }
    }
}

/// Extension headers an `op` frame of the seed corpus carries.
fn seed_ext(op: Opcode, paeth: bool) -> Ext {
    let layout = op.layout().unwrap_or_default();
    let c = conn();
    Ext {
        ack: paeth.then_some(Paeth {
            psn: omx_wire::Psn::new(c.sq_psn),
            credits: 64,
        }),
        reth: layout.reth.then_some(Reth {
            va: REMOTE_VA,
            rkey: REMOTE_KEY,
            dma_len: 600,
        }),
        atomic: layout.atomic_eth.then_some(AtomicEth {
            va: REMOTE_VA,
            rkey: REMOTE_KEY,
            swap_add: 1,
            compare: 0,
        }),
        aeth: layout.aeth.then_some(Aeth {
            syndrome: Syndrome::Ack,
            msn: 1,
            credits: 64,
        }),
        imm: layout.imm.then_some(0x0102_0304),
        ieth: layout.ieth.then_some(REMOTE_KEY),
        atomic_ack: layout.atomic_ack.then_some(7),
    }
}

/// Makes `frame` advance the harness's time by 1 µs (byte 14).
fn quick(mut frame: Vec<u8>) -> Vec<u8> {
    frame[14] = 1;
    frame
}

/// Named seed inputs (each a sequence of frames from the peer): every
/// known opcode alone, with and without a piggybacked ACK (on anything
/// but a request, flag P makes the frame malformed: a seed for that
/// check), each ACK/NAK syndrome, and whole SEND, WRITE and READ
/// exchanges.
pub fn seeds() -> Vec<(String, Vec<Vec<u8>>)> {
    let c = conn();
    let peer = c.from_peer();
    let mtu = 256;
    let mut out = Vec::new();
    for code in 0x80u8..0xa0 {
        let op = Opcode::from(code);
        if op.layout().is_none() {
            continue;
        }
        let len = if !op.may_have_payload() {
            0
        } else if matches!(op.position(), Position::First | Position::Middle) {
            mtu
        } else {
            100
        };
        let psn = if op.is_request() { c.rq_psn } else { c.sq_psn };
        for paeth in [false, true] {
            let mut f = peer.frame(op, psn, seed_ext(op, false), &vec![0x42; len]);
            if paeth {
                if op.is_request() {
                    f = peer.frame(op, psn, seed_ext(op, true), &vec![0x42; len]);
                } else {
                    // The flag alone: 8 bytes short, or malformed.
                    f[18] |= 0x20;
                }
            }
            let name = format!("{op:?}{}", if paeth { "-paeth" } else { "" });
            out.push((name.to_lowercase(), vec![f]));
        }
    }
    let syndromes = [
        ("ack", Syndrome::Ack),
        ("rnr-nak", Syndrome::RnrNak(3)),
        ("nak-seq", Syndrome::Nak(NakCode::PsnSequenceError)),
        ("nak-invalid", Syndrome::Nak(NakCode::InvalidRequest)),
        ("nak-access", Syndrome::Nak(NakCode::RemoteAccessError)),
        ("nak-op", Syndrome::Nak(NakCode::RemoteOperationalError)),
    ];
    for (name, s) in syndromes {
        out.push((format!("syndrome-{name}"), vec![peer.ack(c.sq_psn, s, 64)]));
    }
    let e = c.rq_psn;
    let data = vec![0x33; 2 * mtu + 50];
    let send = vec![
        peer.frame(Opcode::SendFirst, e, Ext::default(), &data[..mtu]),
        peer.frame(
            Opcode::SendMiddle,
            e + 1,
            Ext::default(),
            &data[mtu..2 * mtu],
        ),
        peer.frame(Opcode::SendLast, e + 2, Ext::default(), &data[2 * mtu..]),
    ];
    out.push(("exchange-send".into(), send));
    // UC (docs/wire.md §14), to the UC twin: every opcode UC carries
    // alone, a whole SEND and WRITE, and a SEND cut by a gap then
    // resynchronised by a First.
    let uc = peer.uc();
    for code in 0x80u8..0xa0 {
        let op = Opcode::from(code);
        if !omx_wire::uc_opcode(op) {
            continue;
        }
        let len = if matches!(op.position(), Position::First | Position::Middle) {
            mtu
        } else {
            100
        };
        let f = uc.frame(op, e, seed_ext(op, false), &vec![0x42; len]);
        out.push((format!("uc-{op:?}").to_lowercase(), vec![f]));
    }
    let uc_send = vec![
        uc.frame(Opcode::SendFirst, e, Ext::default(), &data[..mtu]),
        uc.frame(
            Opcode::SendMiddle,
            e + 1,
            Ext::default(),
            &data[mtu..2 * mtu],
        ),
        uc.frame(Opcode::SendLast, e + 2, Ext::default(), &data[2 * mtu..]),
    ];
    out.push(("uc-exchange-send".into(), uc_send));
    let uc_gap = vec![
        uc.frame(Opcode::SendFirst, e, Ext::default(), &data[..mtu]),
        uc.frame(Opcode::SendLast, e + 2, Ext::default(), &data[..50]),
        uc.frame(Opcode::SendFirst, e + 5, Ext::default(), &data[..mtu]),
        uc.frame(
            Opcode::SendLastImm,
            e + 6,
            seed_ext(Opcode::SendLastImm, false),
            &data[..50],
        ),
    ];
    out.push(("uc-gap-resync".into(), uc_gap));
    // UD datagrams (docs/wire.md §13) aimed at the RC QP: dropped as
    // unsupported there, and seeds of the DETH layout for wire_decode.
    for imm in [None, Some(0x0102_0304)] {
        let repr = omx_wire::UdRepr {
            dst_mac: peer.dst_mac,
            src_mac: peer.src_mac,
            peer_index: omx_wire::PEER_INDEX_UNKNOWN,
            dst_qpn: omx_wire::Qpn::new(peer.dst_qpn),
            src_qpn: omx_wire::Qpn::new(peer.src_qpn),
            psn: omx_wire::Psn::new(e),
            solicited: false,
            deth: omx_wire::Deth {
                qkey: 0x1111_1111,
                traffic_class: 0,
                hop_limit: 64,
                sgid: [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            },
            imm,
            payload_len: 100,
        };
        let mut f = vec![0; repr.buffer_len()];
        let n = repr
            .emit(&mut Frame::new_unchecked(&mut f[..]), |p| p.fill(0x55))
            .expect("sized");
        f.truncate(n);
        let name = if imm.is_some() {
            "ud-send-imm"
        } else {
            "ud-send"
        };
        out.push((name.into(), vec![f]));
    }
    let wext = |len: u32| Ext {
        reth: Some(Reth {
            va: REMOTE_VA,
            rkey: REMOTE_KEY,
            dma_len: len,
        }),
        ..Ext::default()
    };
    let write = vec![
        peer.frame(Opcode::WriteFirst, e, wext(562), &data[..mtu]),
        peer.frame(
            Opcode::WriteMiddle,
            e + 1,
            Ext::default(),
            &data[mtu..2 * mtu],
        ),
        peer.frame(
            Opcode::WriteLastImm,
            e + 2,
            seed_ext(Opcode::WriteLastImm, false),
            &data[2 * mtu..],
        ),
    ];
    let uc_write = write
        .iter()
        .map(|f| {
            let mut f = f.clone();
            f[18] &= 0x7f; // no AckReq on UC
            f[19] = omx_wire::Transport::Uc.into();
            aim(&mut f);
            f
        })
        .collect();
    out.push(("exchange-write".into(), write));
    out.push(("uc-exchange-write".into(), uc_write));
    let odp = Ext {
        reth: Some(Reth {
            va: ODP_VA,
            rkey: ODP_KEY,
            dma_len: 600,
        }),
        ..Ext::default()
    };
    let tail = Ext {
        reth: Some(Reth {
            va: REMOTE_VA + 256,
            rkey: REMOTE_KEY,
            dma_len: 344,
        }),
        ..Ext::default()
    };
    // A READ of 3 responses, the same again, its tail again, then a READ
    // of the on-demand region.
    let read = vec![
        peer.frame(Opcode::ReadRequest, e, wext(600), &[]),
        peer.frame(Opcode::ReadRequest, e, wext(600), &[]),
        peer.frame(Opcode::ReadRequest, e + 1, tail, &[]),
        peer.frame(Opcode::ReadRequest, e + 3, odp, &[]),
    ];
    out.push(("exchange-read".into(), read));
    // Through the window: a WRITE, a READ, then a SEND with invalidate
    // of it and a WRITE through it again.
    let wwin = |len: u32| Ext {
        reth: Some(Reth {
            va: WINDOW_VA,
            rkey: WINDOW_KEY,
            dma_len: len,
        }),
        ..Ext::default()
    };
    let inv = Ext {
        ieth: Some(WINDOW_KEY),
        ..Ext::default()
    };
    let window = vec![
        peer.frame(Opcode::WriteOnly, e, wwin(100), &data[..100]),
        peer.frame(Opcode::ReadRequest, e + 1, wwin(200), &[]),
        peer.frame(Opcode::SendOnlyInv, e + 2, inv, &data[..10]),
        peer.frame(Opcode::WriteOnly, e + 3, wwin(8), &data[..8]),
    ];
    out.push(("exchange-window".into(), window));
    // Our own requests answered: the ACK of the SEND (two packets), the
    // READ's two responses, the ACK of the WRITE (two packets) and the
    // FETCH_ADD's atomic acknowledge (one PSN).
    let s = c.sq_psn;
    let resp = |op, psn, len: usize| peer.frame(op, psn, seed_ext(op, false), &vec![0x77; len]);
    let answers = vec![
        peer.ack(s + 1, Syndrome::Ack, 64),
        resp(Opcode::ReadResponseFirst, s + 2, mtu),
        resp(Opcode::ReadResponseLast, s + 3, mtu),
        peer.ack(s + 5, Syndrome::Ack, 64),
        resp(Opcode::AtomicAcknowledge, s + 6, 0),
    ];
    out.push(("exchange-answers".into(), answers));
    out.into_iter()
        .map(|(n, fs)| (n, fs.into_iter().map(quick).collect()))
        .collect()
}
