//! The frame decoder must never panic, and whatever it accepts (as an
//! RC frame or as a UD datagram) must re-emit to a frame that parses to
//! the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omx_wire::{Frame, FrameRepr, UdRepr};

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = Frame::new_checked(data) else {
        return;
    };
    let _ = frame.check_crc();
    let _ = FrameRepr::parse(&frame);
    let _ = UdRepr::parse(&frame);
    if let Ok(ud) = UdRepr::parse_ignoring_crc(&frame) {
        let mut buf = vec![0u8; ud.buffer_len()];
        let n = ud
            .emit(&mut Frame::new_unchecked(&mut buf[..]), |p| {
                p.copy_from_slice(frame.payload())
            })
            .expect("a parsed UD repr re-emits");
        let again = Frame::new_checked(&buf[..n]).expect("re-emitted frame is valid");
        assert_eq!(UdRepr::parse(&again).expect("CRC is fresh"), ud);
        assert_eq!(again.payload(), frame.payload());
        return;
    }
    let Ok(repr) = FrameRepr::parse_ignoring_crc(&frame) else {
        return;
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    let n = repr
        .emit(&mut Frame::new_unchecked(&mut buf[..]), |p| {
            p.copy_from_slice(frame.payload())
        })
        .expect("a parsed repr re-emits");
    let again = Frame::new_checked(&buf[..n]).expect("re-emitted frame is valid");
    assert_eq!(FrameRepr::parse(&again).expect("CRC is fresh"), repr);
    assert_eq!(again.payload(), frame.payload());
});
