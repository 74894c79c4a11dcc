//! Host smoke tests: libibverbs loads the built provider.
//!
//! No RDMA hardware or kernel module is needed. `tests/smoke/omx_smoke.c`
//! is compiled with `$CC` (default `cc`) against libibverbs-dev and run in a
//! child process, so the provider is loaded by the real Debian libibverbs.
//!
//! * `dlopen_registers_provider`: dlopen(RTLD_NOW) of `libomx-rdmav34.so`
//!   resolves every symbol and the constructor registers (`OMX_DEBUG=1`
//!   prints "omx: provider registered").
//! * `fake_sysfs_device_is_matched`: a fake sysfs tree (`SYSFS_PATH`) with
//!   three uverbs devices; libibverbs loads us via `RDMAV_DRIVERS` and our
//!   `match_device` claims only the one with `omx_abi_version` = 2 (`OMX_UVERBS_ABI_VERSION`). Needs a
//!   private mount namespace for `/dev/infiniband` (libibverbs stats the
//!   char device; a tmpfs /dev in a private mount namespace) and a kernel without RDMA netlink (so libibverbs falls back
//!   to sysfs); skipped otherwise.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn target_dir() -> PathBuf {
    // target/<profile>/deps/smoke-<hash>
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("omx-smoke-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

/// Builds the C driver and a `libomx-rdmav34.so` link to the cdylib.
fn setup(name: &str) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let lib = target_dir().join("libomx_provider.so");
    // `cargo test` builds the rlib for this test, not the cdylib: the
    // Makefile's `unit` target runs `cargo build --workspace` first.
    assert!(
        lib.is_file(),
        "{} not built: run `cargo build -p omx-provider` before `cargo test`",
        lib.display()
    );
    let link = dir.join("libomx-rdmav34.so");
    std::os::unix::fs::symlink(&lib, &link).unwrap();
    let exe = dir.join("omx_smoke");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smoke/omx_smoke.c");
    let st = Command::new(&cc)
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .args(["-libverbs", "-ldl"])
        .status()
        .expect("C compiler");
    assert!(st.success(), "compiling {}", src.display());
    (dir, exe)
}

#[test]
fn dlopen_registers_provider() {
    let (dir, exe) = setup("dlopen");
    let out = Command::new(&exe)
        .arg("dlopen")
        .arg(dir.join("libomx-rdmav34.so"))
        .env("OMX_DEBUG", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("omx: provider registered"), "{stderr}");
    assert!(stdout.contains("loaded provider omx"), "{stdout}");
    let _ = fs::remove_dir_all(dir);
}

fn write(p: &Path, s: &str) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, s).unwrap();
}

fn fake_dev(sys: &Path, uverbs: &str, ibdev: &str, omx_abi: Option<&str>) {
    let uv = sys.join("class/infiniband_verbs").join(uverbs);
    write(&uv.join("ibdev"), &format!("{ibdev}\n"));
    write(&uv.join("dev"), "231:192\n");
    write(&uv.join("abi_version"), "2\n");
    let ib = sys.join("class/infiniband").join(ibdev);
    write(&ib.join("node_type"), "1: CA\n");
    if let Some(v) = omx_abi {
        write(&ib.join("omx_abi_version"), &format!("{v}\n"));
    }
}

#[test]
fn fake_sysfs_device_is_matched() {
    if Path::new("/sys/class/infiniband").exists() {
        eprintln!("skipped: this kernel has RDMA (netlink discovery ignores SYSFS_PATH)");
        return;
    }
    let unshare_ok = Command::new("unshare")
        .args(["-m", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !unshare_ok {
        eprintln!("skipped: no private mount namespace (unshare -m)");
        return;
    }
    let (dir, exe) = setup("sysfs");
    let sys = dir.join("sys");
    write(&sys.join("class/infiniband_verbs/abi_version"), "6\n");
    fake_dev(&sys, "uverbs0", "omx0", Some("2"));
    fake_dev(&sys, "uverbs1", "omxfake1", None); // named omx*, not rdma_omx
    fake_dev(&sys, "uverbs2", "omx2", Some("3")); // other omx ABI
                                                  // libibverbs stats /dev/infiniband/uverbsN (RDMA_CDEV_DIR is compiled
                                                  // in): give it plain files on a tmpfs /dev that only the child's private
                                                  // mount namespace sees.
    let script = format!(
        "mount -t tmpfs omx-smoke /dev && mkdir /dev/infiniband && \
         touch /dev/infiniband/uverbs0 /dev/infiniband/uverbs1 /dev/infiniband/uverbs2 && \
         exec {} list",
        exe.display()
    );
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .env("SYSFS_PATH", &sys)
        .env("RDMAV_DRIVERS", dir.join("libomx"))
        .env("IBV_SHOW_WARNINGS", "1")
        .env("OMX_DEBUG", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(!stderr.contains("couldn't load driver"), "{stderr}");
    assert!(stderr.contains("omx: provider registered"), "{stderr}");
    assert!(
        stdout.contains("device omx0 uverbs0"),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(!stdout.contains("omxfake1"), "{stdout}");
    assert!(!stdout.contains("device omx2"), "{stdout}");
    assert!(stderr.contains("omx2: kernel omx ABI 3"), "{stderr}");
    let _ = fs::remove_dir_all(dir);
}
