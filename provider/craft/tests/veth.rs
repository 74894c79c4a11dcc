//! The omx-craft command line end to end: `send --dry-run` and `batch
//! --dry-run` anywhere, and (root only) `send` in one network namespace
//! with `sniff` / `learn` in the other, over a veth pair (omx-pktio's test
//! topology). Without root the veth tests print why and pass.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use omx_pktio::netns::{Side, Topology};
use omx_wire::{Frame, FrameRepr, Opcode, Psn};

const BIN: &str = env!("CARGO_BIN_EXE_omx-craft");
const FOREIGN: &str = "02:66:66:66:66:66";

fn mac(s: &Side) -> String {
    omx_craft::spec::fmt_mac(&s.mac)
}

/// `omx-craft ARGS` (words separated by spaces) inside `side`'s
/// namespace.
fn craft(side: &Side, args: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &side.ns, BIN])
        .args(args.split_whitespace());
    c
}

/// `omx-craft ARGS` in this namespace.
fn craft_here(args: &str) -> Command {
    let mut c = Command::new(BIN);
    c.args(args.split_whitespace());
    c
}

fn run(mut c: Command) -> Output {
    c.output().expect("run omx-craft")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Starts a capture (`sniff` or `learn`) with `--ready` and waits until it
/// captures.
fn start_capture(side: &Side, args: &str, dir: &Path, name: &str) -> Child {
    let ready: PathBuf = dir.join(name);
    let _ = std::fs::remove_file(&ready);
    let child = craft(side, &format!("{args} --ready {}", ready.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn capture");
    let t0 = Instant::now();
    while !ready.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{name} never got ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// The namespaces, or `None` (with the reason printed) when this is not
/// root or namespaces cannot be made here.
fn topology(tag: &str) -> Option<Topology> {
    // SAFETY: plain syscall.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root for network namespaces, a veth pair and AF_PACKET");
        return None;
    }
    match Topology::new(tag, 1500) {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("skipped: cannot create namespaces and a veth pair here: {e}");
            None
        }
    }
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("omx-craft-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The frames `send --dry-run` prints are good omx frames: structure,
/// CRC32C, PAETH and the sweep's PSNs.
#[test]
fn dry_run_frames_parse_back() {
    let o = run(craft_here(&format!(
        "send --dry-run --dst-mac 02:00:00:00:00:01 --src-mac {FOREIGN} --opcode WRITE_ONLY \
         --dst-qpn 0x1001 --src-qpn 0x2001 --psn 0xfffffe --reth 0x1000:0x42:8 \
         --paeth 0x10:64 --payload-len 8 --count 3 --psn-step 1 --ack-req"
    )));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<String> = text(&o).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3);
    for (i, l) in lines.iter().enumerate() {
        let b = omx_craft::spec::parse_hex_bytes(l).unwrap();
        let f = Frame::new_checked(&b[..]).unwrap();
        assert!(f.check_crc());
        let r = FrameRepr::parse(&f).unwrap();
        assert_eq!(r.bth.opcode, Opcode::WriteOnly);
        assert_eq!(r.bth.psn, Psn::new(0xff_fffe).add(i as u32));
        assert_eq!(r.ext.ack.unwrap().psn, Psn::new(0x10));
        assert_eq!(r.ext.reth.unwrap().rkey, 0x42);
        assert_eq!(f.payload(), &[0xa5; 8]);
        assert_eq!(r.src_mac, [2, 0x66, 0x66, 0x66, 0x66, 0x66]);
        assert!(r.bth.ack_req);
    }
    // A spec the opcode cannot carry is refused with a message, status 2.
    let o = run(craft_here(
        "send --dry-run --dst-mac 02:00:00:00:00:01 --opcode WRITE_FIRST --dst-qpn 1 \
         --src-qpn 2 --psn 3",
    ));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs RETH"));
}

/// `batch` sends the frames of every line of its input, comments and
/// blank lines skipped; a bad line is refused with its number.
#[test]
fn batch_reads_one_send_per_line() {
    let run_batch = |input: &str| {
        let mut c = craft_here("batch --dry-run");
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let base = "--dst-mac 02:00:00:00:00:01 --dst-qpn 0x1001 --src-qpn 0x2001";
    let o = run_batch(&format!(
        "# in-window ACK, then a NAK sweep\n\n{base} --opcode ACK --psn 5 --aeth ACK\n\
         {base} --opcode ACK --psn 6 --psn-step 2 --count 3 --aeth NAK-ACCESS\n"
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let psns: Vec<(u32, String)> = text(&o)
        .lines()
        .map(|l| {
            let b = omx_craft::spec::parse_hex_bytes(l).unwrap();
            let r = FrameRepr::parse(&Frame::new_checked(&b[..]).unwrap()).unwrap();
            let syn = omx_craft::spec::syndrome_name(r.ext.aeth.unwrap().syndrome);
            (r.bth.psn.value(), syn)
        })
        .collect();
    let want: Vec<(u32, String)> = [
        (5, "ACK"),
        (6, "NAK-ACCESS"),
        (8, "NAK-ACCESS"),
        (10, "NAK-ACCESS"),
    ]
    .iter()
    .map(|(p, s)| (*p, (*s).to_owned()))
    .collect();
    assert_eq!(psns, want);
    let o = run_batch(&format!(
        "{base} --opcode ACK --psn 5 --aeth ACK\n{base} --psn 1\n"
    ));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 2"));
}

/// A sweep with a foreign source MAC and a frame with a bad CRC, sent in
/// one namespace, arrive in the other and decode to what was sent.
#[test]
fn send_and_sniff_over_veth() {
    let Some(t) = topology("cs") else { return };
    let (a, b) = (&t.sides[0], &t.sides[1]);
    let dir = tmpdir("cs");
    let sniffer = start_capture(
        b,
        &format!(
            "sniff --iface {} --count 6 --timeout 20 --include-bad --dir in --src-mac {FOREIGN}",
            b.ifname
        ),
        &dir,
        "sniff-ready",
    );
    let to_b = format!(
        "send --iface {} --dst-mac {} --src-mac {FOREIGN} --dst-qpn 0x5001 --src-qpn 0x6001",
        a.ifname,
        mac(b)
    );
    let o = run(craft(
        a,
        &format!(
            "{to_b} --opcode SEND_ONLY --psn 0xfffffd --psn-step 1 --count 5 \
             --paeth 0x123:32 --payload-len 3"
        ),
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(text(&o).trim(), "sent 5 frame(s)");
    let o = run(craft(
        a,
        &format!("{to_b} --opcode ACK --psn 7 --aeth NAK-ACCESS:1:64 --bad-crc"),
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = sniffer.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sniff: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = text(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 6, "{lines:?}");
    let foreign_to_b = format!(" in 60B {FOREIGN}>{} ", mac(b));
    for (i, psn) in ["0xfffffd", "0xfffffe", "0xffffff", "0x000000", "0x000001"]
        .iter()
        .enumerate()
    {
        let l = &lines[i];
        assert!(l.contains(&foreign_to_b), "{l}");
        assert!(
            l.contains(" SEND_ONLY dst_qpn=0x005001 src_qpn=0x006001 "),
            "{l}"
        );
        assert!(l.contains(&format!(" psn={psn} ")), "{l}");
        assert!(l.contains(" paeth=0x000123:32 pay_len=3"), "{l}");
        assert!(!l.contains("error="), "{l}");
    }
    assert!(lines[5].contains(" ACKNOWLEDGE "), "{}", lines[5]);
    assert!(lines[5].contains(" aeth=NAK-ACCESS:1:64 "), "{}", lines[5]);
    assert!(lines[5].ends_with(" error=bad-crc"), "{}", lines[5]);
    let _ = std::fs::remove_dir_all(dir);
}

/// Whether every line of `want` is a line of `got`.
fn has_lines(got: &str, want: &[&str]) {
    for w in want {
        assert!(got.lines().any(|l| l == *w), "{w} in:\n{got}");
    }
}

/// `learn` on the victim's side reports the READ a peer sent it and the
/// PSN it expects next; `sniff --format env` reports the last match; a
/// `--count` not reached is exit status 1; `--dir out` sees our own.
#[test]
fn learn_env_and_count_over_veth() {
    let Some(t) = topology("cl") else { return };
    let (a, b) = (&t.sides[0], &t.sides[1]);
    let dir = tmpdir("cl");
    let learner = start_capture(
        b,
        &format!(
            "learn --iface {} --victim-mac {} --frames 1 --timeout 20",
            b.ifname,
            mac(b)
        ),
        &dir,
        "learn-ready",
    );
    let env = start_capture(
        a,
        &format!(
            "sniff --iface {} --dir out --opcode READ_* --count 1 --timeout 20 --format env \
             --prefix X_",
            a.ifname
        ),
        &dir,
        "env-ready",
    );
    let o = run(craft(
        a,
        &format!(
            "send --iface {} --dst-mac {} --opcode READ_REQUEST --dst-qpn 0x5001 \
             --src-qpn 0x6001 --psn 0x100 --reth 0x7f0000001000:0x4321:4097",
            a.ifname,
            mac(b)
        ),
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let out = learner.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "learn: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (vm, pm) = (
        format!("VICTIM_MAC={}", mac(b)),
        format!("PEER_MAC={}", mac(a)),
    );
    has_lines(
        &text(&out),
        &[
            &vm,
            &pm,
            "VICTIM_QPN=0x005001",
            "PEER_QPN=0x006001",
            "VICTIM_EPSN=0x000105",
            "PEER_READ_PSN=0x000100",
            "PEER_READ_VA=0x7f0000001000",
            "PEER_READ_RKEY=0x4321",
            "PEER_READ_LEN=4097",
            "FRAMES=1",
        ],
    );
    let out = env.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sniff env: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    has_lines(
        &text(&out),
        &[
            "X_MATCHES=1",
            "X_DIR=out",
            "X_OPCODE=RDMA_READ_REQUEST",
            "X_RETH_RKEY=0x4321",
            "X_PSN=0x000100",
        ],
    );

    // Nothing matching: --count 1 is not reached, status 1, count 0.
    let o = run(craft(
        b,
        &format!(
            "sniff --iface {} --count 1 --timeout 0.3 --format count --opcode ACK",
            b.ifname
        ),
    ));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(text(&o).trim(), "0");
    // No such interface: status 2 and a message.
    let o = run(craft(b, "sniff --iface nonexistent0 --timeout 0.1"));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no interface"));
    let _ = std::fs::remove_dir_all(dir);
}
