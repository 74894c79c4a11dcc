//! Writes the seed corpus: `corpus/<target>/<name>` for every seed of
//! omx_engine::testing::rx::seeds() (every opcode with and without a
//! piggybacked ACK, every ACK/NAK syndrome, whole exchanges). The
//! receive-path targets get each seed as one input (length-prefixed
//! frames), wire_decode each frame alone. Run with
//! `cargo run --manifest-path fuzz/Cargo.toml --bin gen_corpus`; the
//! files are committed.

use std::fs;
use std::path::Path;

use omx_engine::testing::rx;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let targets = ["wire_decode", "engine_rx", "rx_real_mem"];
    for t in targets {
        let dir = root.join(t);
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&dir)?;
    }
    let seeds = rx::seeds();
    for (name, frames) in &seeds {
        let input = rx::encode(frames);
        fs::write(root.join("engine_rx").join(name), &input)?;
        fs::write(root.join("rx_real_mem").join(name), &input)?;
        for (i, f) in frames.iter().enumerate() {
            let n = if frames.len() == 1 {
                name.clone()
            } else {
                format!("{name}-{i}")
            };
            fs::write(root.join("wire_decode").join(n), f)?;
        }
    }
    println!("{} seeds in {}", seeds.len(), root.display());
    Ok(())
}
