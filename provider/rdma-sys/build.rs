//! Generates `$OUT_DIR/bindings.rs` from rdma-core's own private provider
//! header `infiniband/driver.h` and from the rdma_omx uverbs ABI header.
//!
//! rdma-core is not built. Its source comes from the crates.io package
//! `ibverbs-sys 0.3.2+55.0` (rdma-core v55, private ABI 34), which this crate
//! lists as a never-built dependency so that `cargo fetch` downloads it. The
//! few files rdma-core's cmake would generate are produced here:
//!
//! * the published header tree (`infiniband/`, `rdma/`, `ccan/`, `util/`,
//!   `linux/`), copied exactly as `publish_headers()` would;
//! * `kernel-abi/ib_user_verbs.h`, produced by rdma-core's own
//!   `buildlib/make_abi_structs.py` (needs `python3`);
//! * `config.h`, substituted from rdma-core's `buildlib/config.h.in`. None of
//!   its values changes a struct layout (they only select inline bodies and
//!   symbol-version attributes); the layout tests pin the result.
//!
//! Override the source location with `OMX_RDMA_CORE_SRC=/path/to/rdma-core`.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The rdma-core release whose private ABI we build against.
const IBVERBS_SYS_VERSION: &str = "0.3.2+55.0";
/// Private ABI the provider is built for (`-rdmav34.so`, `IBVERBS_PRIVATE_34`).
const EXPECTED_PABI: &str = "34";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-env-changed=OMX_RDMA_CORE_SRC");

    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let omx_uapi = manifest_dir.join("../../kmod-shim/include/uapi");
    let omx_uapi = omx_uapi
        .canonicalize()
        .unwrap_or_else(|e| panic!("omx uapi header dir {}: {e}", omx_uapi.display()));
    println!(
        "cargo:rerun-if-changed={}",
        omx_uapi.join("rdma_omx_abi.h").display()
    );

    let src = locate_rdma_core(&manifest_dir);
    println!(
        "cargo:rerun-if-changed={}",
        src.join("libibverbs").display()
    );
    let (package_version, pabi) = read_versions(&src);
    if pabi != EXPECTED_PABI {
        panic!(
            "rdma-core at {} has private ABI {pabi}, this provider is written for {EXPECTED_PABI}",
            src.display()
        );
    }

    let inc = out_dir.join("include");
    stage_headers(&src, &inc, &package_version, &pabi);

    let bindings = bindgen::Builder::default()
        .header(manifest_dir.join("wrapper.h").to_str().unwrap())
        .clang_arg(format!("-I{}", inc.display()))
        .clang_arg(format!("-I{}", omx_uapi.display()))
        .clang_arg("-D_GNU_SOURCE")
        // The private provider ABI and everything it reaches.
        .allowlist_type("verbs_.*")
        .allowlist_type("ibv_.*")
        .allowlist_type("ib_uverbs_.*")
        .allowlist_type("_ibv_.*")
        .allowlist_type("omx_.*")
        .allowlist_function("verbs_.*")
        .allowlist_function("_verbs_init_and_alloc_context")
        .allowlist_function("ibv_cmd_.*")
        .allowlist_function("ibv_read_ibdev_sysfs_file")
        .allowlist_function("ibv_query_gid_type")
        .allowlist_function("ibv_query_gid")
        .allowlist_function("ibv_resolve_eth_l2_from_gid")
        .allowlist_function("execute_ioctl")
        .allowlist_var("OMX_.*")
        .allowlist_var("IBV_.*")
        .allowlist_var("VERBS_.*")
        .allowlist_var("IB_USER_VERBS_.*")
        .allowlist_var("UVERBS_.*")
        .allowlist_var("RDMA_DRIVER_.*")
        .allowlist_var("IBVERBS_PABI_VERSION")
        // The uverbs ioctl ABI the provider calls directly (CQ notify).
        .allowlist_type("uverbs_default_objects")
        .allowlist_var("RDMA_IOCTL_MAGIC")
        .allowlist_var("PACKAGE_VERSION")
        // `enum ibv_qp_attr_mask` etc. are OR-ed flags; plain consts keep
        // both C semantics and `|` on u32.
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .derive_default(true)
        .derive_debug(false)
        .size_t_is_usize(true)
        .layout_tests(true)
        .generate()
        .expect("bindgen failed on rdma-core's driver.h (is libclang installed? apt-get install libclang-dev clang)");
    bindings
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("write bindings.rs");

    println!("cargo:rustc-env=OMX_RDMA_CORE_VERSION={package_version}");
    println!("cargo:rdma_core_src={}", src.display());
    // libibverbs.so (from libibverbs-dev) -> DT_NEEDED libibverbs.so.1; the
    // private symbols bind to version IBVERBS_PRIVATE_34.
    println!("cargo:rustc-link-lib=dylib=ibverbs");
}

fn fetch_hint() -> String {
    format!(
        "rdma-core v55 source not found. It ships inside the crates.io package \
         ibverbs-sys {IBVERBS_SYS_VERSION}, which cargo downloads but never builds. Run \
         `cargo fetch` in the workspace (needs network once), or point OMX_RDMA_CORE_SRC \
         at an rdma-core v44..v56 source tree."
    )
}

/// Finds the rdma-core source tree:
/// 1. `$OMX_RDMA_CORE_SRC`;
/// 2. the `ibverbs-sys` package as cargo resolved it (`cargo metadata
///    --offline`), which follows source replacement and `cargo vendor`;
/// 3. `$CARGO_HOME/registry/src/*/ibverbs-sys-<ver>/` (plain cache layout);
/// 4. failing all that, `cargo fetch` once and retry 2 and 3.
fn locate_rdma_core(manifest_dir: &Path) -> PathBuf {
    let is_tree = |p: &Path| p.join("libibverbs/driver.h").is_file();

    if let Some(dir) = env::var_os("OMX_RDMA_CORE_SRC") {
        let dir = PathBuf::from(dir);
        if is_tree(&dir) {
            return dir;
        }
        panic!(
            "OMX_RDMA_CORE_SRC={} has no libibverbs/driver.h",
            dir.display()
        );
    }

    let search = || {
        ibverbs_sys_from_metadata(manifest_dir)
            .into_iter()
            .chain(ibverbs_sys_from_cargo_home())
            .map(|pkg| pkg.join("vendor/rdma-core"))
            .find(|tree| is_tree(tree))
    };
    if let Some(tree) = search() {
        return tree;
    }
    // `cargo build` only downloads what it compiles, so on a fresh machine
    // the never-built ibverbs-sys is missing: fetch it once (a nested
    // `cargo fetch` does not deadlock on the package cache; it fails fast
    // when offline and we then print what to run).
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let fetched = Command::new(cargo)
        .arg("fetch")
        .arg("--manifest-path")
        .arg(manifest_dir.join("Cargo.toml"))
        .status()
        .is_ok_and(|s| s.success());
    if fetched {
        if let Some(tree) = search() {
            return tree;
        }
    }
    panic!("{}", fetch_hint());
}

fn ibverbs_sys_from_metadata(manifest_dir: &Path) -> Vec<PathBuf> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // --offline: never touch the network or wait for the package-cache lock
    // from inside a build; a missing download is reported with fetch_hint().
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(manifest_dir.join("Cargo.toml"))
        .output();
    let Ok(out) = out else { return Vec::new() };
    if !out.status.success() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // Avoid a JSON dependency: pick every "manifest_path" whose directory is
    // the ibverbs-sys package (registry: ibverbs-sys-<ver>, vendor: ibverbs-sys).
    let key = "\"manifest_path\":\"";
    text.match_indices(key)
        .filter_map(|(i, _)| {
            let rest = &text[i + key.len()..];
            let end = rest.find('"')?;
            let manifest = PathBuf::from(&rest[..end]);
            let dir = manifest.parent()?.to_path_buf();
            let name = dir.file_name()?.to_str()?;
            (name == "ibverbs-sys" || name == format!("ibverbs-sys-{IBVERBS_SYS_VERSION}"))
                .then_some(dir)
        })
        .collect()
}

fn ibverbs_sys_from_cargo_home() -> Vec<PathBuf> {
    let home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let Some(home) = home else { return Vec::new() };
    let Ok(registries) = fs::read_dir(home.join("registry/src")) else {
        return Vec::new();
    };
    registries
        .flatten()
        .map(|r| r.path().join(format!("ibverbs-sys-{IBVERBS_SYS_VERSION}")))
        .filter(|p| p.is_dir())
        .collect()
}

/// Reads `PACKAGE_VERSION` and `IBVERBS_PABI_VERSION` from rdma-core's
/// top-level CMakeLists.txt.
fn read_versions(src: &Path) -> (String, String) {
    let cmake = fs::read_to_string(src.join("CMakeLists.txt")).expect("rdma-core CMakeLists.txt");
    let get = |var: &str| {
        let pat = format!("set({var} \"");
        let start = cmake
            .find(&pat)
            .unwrap_or_else(|| panic!("{var} not set in rdma-core CMakeLists.txt"))
            + pat.len();
        let end = cmake[start..].find('"').unwrap() + start;
        cmake[start..end].to_string()
    };
    (get("PACKAGE_VERSION"), get("IBVERBS_PABI_VERSION"))
}

fn copy_into(files: impl IntoIterator<Item = PathBuf>, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for f in files {
        let name = f.file_name().unwrap();
        fs::copy(&f, dst.join(name)).unwrap_or_else(|e| panic!("copy {}: {e}", f.display()));
    }
}

fn headers_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "h"))
        .collect();
    v.sort();
    v
}

/// Reproduces the part of rdma-core's cmake configure step that driver.h
/// needs: the published header tree, kernel-abi wrappers and config.h.
fn stage_headers(src: &Path, inc: &Path, package_version: &str, pabi: &str) {
    let _ = fs::remove_dir_all(inc);
    // libibverbs/CMakeLists.txt: publish_headers + publish_internal_headers(infiniband ...)
    let ib = [
        "arch.h",
        "opcode.h",
        "sa-kern-abi.h",
        "sa.h",
        "verbs.h",
        "verbs_api.h",
        "tm_types.h",
        "cmd_ioctl.h",
        "cmd_write.h",
        "driver.h",
        "kern-abi.h",
        "marshall.h",
    ];
    copy_into(
        ib.iter()
            .map(|h| src.join("libibverbs").join(h))
            .chain([src.join("kernel-headers/rdma/ib_user_ioctl_verbs.h")]),
        &inc.join("infiniband"),
    );
    // kernel-headers/CMakeLists.txt: publish_internal_headers(rdma|linux ...)
    copy_into(
        headers_in(&src.join("kernel-headers/rdma")),
        &inc.join("rdma"),
    );
    copy_into(
        headers_in(&src.join("kernel-headers/linux")),
        &inc.join("linux"),
    );
    // ccan/ and util/ publish their headers under their own names.
    copy_into(headers_in(&src.join("ccan")), &inc.join("ccan"));
    copy_into(headers_in(&src.join("util")), &inc.join("util"));

    // kernel-headers/CMakeLists.txt: rdma_kernel_provider_abi(rdma/ib_user_verbs.h)
    let kabi = inc.join("kernel-abi");
    fs::create_dir_all(&kabi).unwrap();
    let script = src.join("buildlib/make_abi_structs.py");
    let python = env::var_os("PYTHON3").unwrap_or_else(|| "python3".into());
    let status = Command::new(&python)
        .arg(&script)
        .arg(src.join("kernel-headers/rdma/ib_user_verbs.h"))
        .arg(kabi.join("ib_user_verbs.h"))
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "running {} {}: {e} (install python3; it only rewrites kernel ABI headers)",
                python.to_string_lossy(),
                script.display()
            )
        });
    assert!(status.success(), "make_abi_structs.py failed: {status}");

    let config_in = fs::read_to_string(src.join("buildlib/config.h.in")).expect("config.h.in");
    fs::write(
        inc.join("config.h"),
        configure(&config_in, package_version, pabi),
    )
    .unwrap();
}

/// A minimal `configure_file()` for buildlib/config.h.in, with the values
/// cmake picks on Linux/x86_64 with gcc or clang.
fn configure(input: &str, package_version: &str, pabi: &str) -> String {
    const ENABLED: &[&str] = &[
        "HAVE_FUNC_ATTRIBUTE_ALWAYS_INLINE",
        "HAVE_FUNC_ATTRIBUTE_SYMVER",
        "HAVE_WORKING_IF_H",
        "HAVE_FULL_SYMBOL_VERSIONS",
    ];
    let long_bytes: u32 = env::var("CARGO_CFG_TARGET_POINTER_WIDTH")
        .ok()
        .and_then(|w| w.parse::<u32>().ok())
        .map_or(8, |w| w / 8);
    let mut out =
        String::from("/* generated by omx-rdma-sys build.rs from buildlib/config.h.in */\n");
    for line in input.lines() {
        let line = if let Some(rest) = line.strip_prefix("#cmakedefine ") {
            let name = rest.split_whitespace().next().unwrap_or("");
            if ENABLED.contains(&name) {
                format!("#define {rest}")
            } else {
                format!("/* #undef {name} */")
            }
        } else {
            line.replace(
                "@SIZEOF_LONG_CODE@",
                &format!("#define SIZEOF_LONG {long_bytes}"),
            )
            .replace("@IOCTL_MODE_NUM@", "3")
            .replace("@IBVERBS_PABI_VERSION@", pabi)
            .replace("@PACKAGE_VERSION@", package_version)
            .replace("@IBVERBS_PROVIDER_SUFFIX@", &format!("-rdmav{pabi}.so"))
        };
        // Every remaining @VAR@ is an install path no header we read uses.
        out.push_str(&strip_at_vars(&line));
        out.push('\n');
    }
    out
}

fn strip_at_vars(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(a) = rest.find('@') {
        match rest[a + 1..].find('@') {
            Some(b)
                if rest[a + 1..a + 1 + b]
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                    && b > 0 =>
            {
                out.push_str(&rest[..a]);
                rest = &rest[a + b + 2..];
            }
            _ => {
                out.push_str(&rest[..=a]);
                rest = &rest[a + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}
