//! What an attacker on the segment learns by watching one RC connection:
//! the two ends' MACs and QPNs, the PSN the victim's responder expects
//! next, the victim requester's next PSN and oldest unacknowledged one,
//! and the last RETHs (a victim MR's address and rkey), so that frames can
//! be forged inside (or deliberately outside) the connection's windows.
//!
//! Every value is a lower bound taken as the modular maximum of what the
//! frames imply (retransmissions never move it back); a live connection
//! moves on while the attacker prepares, which a scenario covers by
//! sweeping PSNs from the learned value on.

use omx_wire::{Opcode, Psn, Qpn, Reth, Syndrome};

use crate::decode::{hex24, Decoded};
use crate::spec::fmt_mac;

/// The connection state seen so far.
#[derive(Debug, Clone)]
pub struct Learner {
    victim_mac: [u8; 6],
    victim_qpn: Option<Qpn>,
    mtu: u32,
    peer_mac: Option<[u8; 6]>,
    peer_qpn: Option<Qpn>,
    frames: u64,
    epsn: Option<Psn>,
    next_psn: Option<Psn>,
    una: Option<Psn>,
    peer_reth: Option<Reth>,
    victim_reth: Option<Reth>,
    peer_read: Option<(Psn, Reth)>,
    victim_read: Option<(Psn, Reth)>,
}

fn raise(v: &mut Option<Psn>, p: Psn) {
    *v = Some(v.map_or(p, |x| x.max(p)));
}

impl Learner {
    /// Watches the connection of the QP `victim_qpn` (the first one seen,
    /// if `None`) on the port whose MAC is `victim_mac`; READ lengths are
    /// turned into PSN counts with path MTU `mtu`.
    pub fn new(victim_mac: [u8; 6], victim_qpn: Option<Qpn>, mtu: u32) -> Self {
        Learner {
            victim_mac,
            victim_qpn,
            mtu: mtu.max(1),
            peer_mac: None,
            peer_qpn: None,
            frames: 0,
            epsn: None,
            next_psn: None,
            una: None,
            peer_reth: None,
            victim_reth: None,
            peer_read: None,
            victim_read: None,
        }
    }

    /// Frames of the connection seen so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// PSNs a request packet uses: a READ one per response packet.
    fn npsn(&self, op: Opcode, reth: Option<Reth>) -> u32 {
        match (op, reth) {
            (Opcode::ReadRequest, Some(r)) => r.dma_len.div_ceil(self.mtu).max(1),
            _ => 1,
        }
    }

    /// Takes one captured frame into account (frames of other
    /// connections, and frames that do not parse, are ignored).
    pub fn observe(&mut self, d: &Decoded) {
        let Some(r) = d.repr.filter(|_| d.is_good()) else {
            return;
        };
        let vq = self.victim_qpn;
        let from = d.src_mac == self.victim_mac && vq.is_none_or(|q| q == r.bth.src_qpn);
        let to = d.dst_mac == self.victim_mac && vq.is_none_or(|q| q == r.bth.dst_qpn);
        // Same device with an unknown QPN: no way to tell the ends apart.
        if from == to {
            return;
        }
        let (victim_qpn, peer_qpn, peer_mac) = if from {
            (r.bth.src_qpn, r.bth.dst_qpn, d.dst_mac)
        } else {
            (r.bth.dst_qpn, r.bth.src_qpn, d.src_mac)
        };
        if self.peer_qpn.is_some_and(|q| q != peer_qpn)
            || self.peer_mac.is_some_and(|m| m != peer_mac)
            || vq.is_some_and(|q| q != victim_qpn)
        {
            return;
        }
        self.victim_qpn = Some(victim_qpn);
        self.peer_qpn = Some(peer_qpn);
        self.peer_mac = Some(peer_mac);
        self.frames += 1;

        let op = r.bth.opcode;
        let psn = r.bth.psn;
        // A request moves its sender's next PSN and records its RETH; its
        // PAETH acknowledges the other side's requests: from the victim,
        // the peer's (the victim's responder is past them), from the
        // peer, the victim's.
        if op.is_request() {
            let end = psn.add(self.npsn(op, r.ext.reth));
            let (next, reth, read, acked) = if from {
                let s = &mut *self;
                (
                    &mut s.next_psn,
                    &mut s.victim_reth,
                    &mut s.victim_read,
                    &mut s.epsn,
                )
            } else {
                let s = &mut *self;
                (&mut s.epsn, &mut s.peer_reth, &mut s.peer_read, &mut s.una)
            };
            raise(next, end);
            *reth = r.ext.reth.or(*reth);
            if op == Opcode::ReadRequest {
                *read = r.ext.reth.map(|x| (psn, x));
            }
            if let Some(a) = r.ext.ack {
                raise(acked, a.psn.add(1));
            }
            return;
        }
        // Responses: from the victim they tell where its responder is,
        // to the victim how far its requests got.
        let done = match (op, r.ext.aeth.map(|a| a.syndrome)) {
            (Opcode::Acknowledge, Some(Syndrome::Ack)) => psn.add(1),
            (Opcode::Acknowledge, _) => psn,
            (o, _) if o.is_read_response() && o.position().is_last() => psn.add(1),
            _ => psn,
        };
        if from {
            raise(&mut self.epsn, done);
        } else {
            raise(&mut self.una, done);
        }
    }

    /// `KEY=VALUE` lines (unknown values are left out).
    pub fn report(&self) -> Vec<String> {
        let mut v = vec![
            format!("VICTIM_MAC={}", fmt_mac(&self.victim_mac)),
            format!("FRAMES={}", self.frames),
        ];
        let mut put = |k: &str, x: Option<String>| {
            if let Some(x) = x {
                v.push(format!("{k}={x}"));
            }
        };
        put("VICTIM_QPN", self.victim_qpn.map(|q| hex24(q.value())));
        put("PEER_MAC", self.peer_mac.map(|m| fmt_mac(&m)));
        put("PEER_QPN", self.peer_qpn.map(|q| hex24(q.value())));
        put("VICTIM_EPSN", self.epsn.map(|p| hex24(p.value())));
        put("VICTIM_NEXT_PSN", self.next_psn.map(|p| hex24(p.value())));
        put("VICTIM_UNA", self.una.map(|p| hex24(p.value())));
        for (who, reth, read) in [
            ("PEER", self.peer_reth, self.peer_read),
            ("VICTIM", self.victim_reth, self.victim_read),
        ] {
            put(
                &format!("{who}_RETH_VA"),
                reth.map(|r| format!("{:#x}", r.va)),
            );
            put(
                &format!("{who}_RETH_RKEY"),
                reth.map(|r| format!("{:#x}", r.rkey)),
            );
            put(
                &format!("{who}_RETH_LEN"),
                reth.map(|r| r.dma_len.to_string()),
            );
            put(
                &format!("{who}_READ_PSN"),
                read.map(|(p, _)| hex24(p.value())),
            );
            put(
                &format!("{who}_READ_VA"),
                read.map(|(_, r)| format!("{:#x}", r.va)),
            );
            put(
                &format!("{who}_READ_RKEY"),
                read.map(|(_, r)| format!("{:#x}", r.rkey)),
            );
            put(
                &format!("{who}_READ_LEN"),
                read.map(|(_, r)| r.dma_len.to_string()),
            );
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Dir;
    use crate::spec::tests::write_only;
    use crate::spec::{parse_aeth, parse_reth, FrameSpec, Payload};
    use omx_wire::{Ext, Paeth};

    const V: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const P: [u8; 6] = [2, 0, 0, 0, 0, 2];

    /// A frame from the peer (0x2001) to the victim (0x1001), or back.
    fn frame(to_victim: bool, op: Opcode, psn: u32, ext: Ext, len: usize) -> Decoded {
        let mut s: FrameSpec = write_only();
        if !to_victim {
            s.header.dst_mac = P;
            s.header.src_mac = V;
            std::mem::swap(&mut s.header.bth.dst_qpn, &mut s.header.bth.src_qpn);
        }
        s.header.bth.opcode = op;
        s.header.bth.psn = Psn::new(psn);
        s.header.ext = ext;
        s.payload = Payload::Fill { len, byte: 1 };
        Decoded::new(&s.build().unwrap(), Dir::In)
    }

    fn get(l: &Learner, k: &str) -> Option<String> {
        let p = format!("{k}=");
        l.report()
            .iter()
            .find_map(|x| x.strip_prefix(&p).map(str::to_owned))
    }

    #[test]
    fn learns_both_directions_of_a_pingpong() {
        let mut l = Learner::new(V, None, 1024);
        // Peer SENDs 2 packets at 0x10, 0x11; the victim acks 0x11 in a
        // PAETH on its own SEND at 0x500; the peer acks 0x500.
        l.observe(&frame(true, Opcode::SendFirst, 0x10, Ext::default(), 1024));
        l.observe(&frame(true, Opcode::SendLast, 0x11, Ext::default(), 10));
        let paeth = Ext {
            ack: Some(Paeth {
                psn: Psn::new(0x11),
                credits: 64,
            }),
            ..Ext::default()
        };
        l.observe(&frame(false, Opcode::SendOnly, 0x500, paeth, 10));
        let ack = Ext {
            aeth: Some(parse_aeth("ACK:1:64").unwrap()),
            ..Ext::default()
        };
        l.observe(&frame(true, Opcode::Acknowledge, 0x500, ack, 0));
        // A retransmission of an old packet moves nothing back.
        l.observe(&frame(true, Opcode::SendFirst, 0x10, Ext::default(), 1024));
        assert_eq!(get(&l, "VICTIM_QPN").unwrap(), "0x001001");
        assert_eq!(get(&l, "PEER_QPN").unwrap(), "0x002001");
        assert_eq!(get(&l, "PEER_MAC").unwrap(), "02:00:00:00:00:02");
        assert_eq!(get(&l, "VICTIM_EPSN").unwrap(), "0x000012");
        assert_eq!(get(&l, "VICTIM_NEXT_PSN").unwrap(), "0x000501");
        assert_eq!(get(&l, "VICTIM_UNA").unwrap(), "0x000501");
        assert_eq!(get(&l, "FRAMES").unwrap(), "5");
        assert_eq!(get(&l, "PEER_RETH_VA"), None);
    }

    #[test]
    fn a_read_moves_the_expected_psn_by_its_responses() {
        let mut l = Learner::new(V, Some(Qpn::new(0x1001)), 1024);
        let read = Ext {
            reth: Some(parse_reth("0x7000:0x99:4097").unwrap()),
            ..Ext::default()
        };
        l.observe(&frame(true, Opcode::ReadRequest, 0xff_fffe, read, 0));
        assert_eq!(get(&l, "VICTIM_EPSN").unwrap(), "0x000003");
        assert_eq!(get(&l, "PEER_READ_PSN").unwrap(), "0xfffffe");
        assert_eq!(get(&l, "PEER_READ_VA").unwrap(), "0x7000");
        assert_eq!(get(&l, "PEER_READ_RKEY").unwrap(), "0x99");
        assert_eq!(get(&l, "PEER_READ_LEN").unwrap(), "4097");
        assert_eq!(get(&l, "PEER_RETH_LEN").unwrap(), "4097");
    }

    #[test]
    fn other_connections_and_bad_frames_are_ignored() {
        let mut l = Learner::new(V, None, 1024);
        l.observe(&frame(true, Opcode::SendOnly, 5, Ext::default(), 1));
        // Another peer QPN on the same MACs.
        let mut s = write_only();
        s.header.bth.src_qpn = Qpn::new(0x3001);
        l.observe(&Decoded::new(&s.build().unwrap(), Dir::In));
        // A bad CRC.
        let mut s = write_only();
        s.bad_crc = true;
        l.observe(&Decoded::new(&s.build().unwrap(), Dir::In));
        assert_eq!(l.frames(), 1);
        assert_eq!(get(&l, "VICTIM_EPSN").unwrap(), "0x000006");
        // Same device (both MACs the victim's) with no QPN given: nothing.
        let mut l = Learner::new(V, None, 1024);
        let mut s = write_only();
        s.header.src_mac = V;
        l.observe(&Decoded::new(&s.build().unwrap(), Dir::In));
        assert_eq!(l.frames(), 0);
        // ... but with the victim's QPN, the direction is known.
        let mut l = Learner::new(V, Some(Qpn::new(0x1001)), 1024);
        l.observe(&Decoded::new(&s.build().unwrap(), Dir::In));
        assert_eq!(l.frames(), 1);
    }
}
