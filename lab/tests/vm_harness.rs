//! System test, VM tier: a guest that outlives its timeout is killed, and the run says so.
//! Skipped with a message when qemu or the kernel package is unavailable, unless
//! `K8S_DATAPLANE_REQUIRE_VM=1`.

use std::time::{Duration, Instant};

use lab::vm::{Vm, VmError, VmImage};

/// PIDs of processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline"))
            && String::from_utf8_lossy(&cmd).contains(needle)
        {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn vm_run_past_its_timeout_is_killed() {
    let work = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("vm-timeout-{}", std::process::id()));
    let image = match VmImage::prepare(&work) {
        Ok(i) => i,
        Err(e @ (VmError::NoKernel { .. } | VmError::MissingTool { .. }))
            if std::env::var("K8S_DATAPLANE_REQUIRE_VM").as_deref() != Ok("1") =>
        {
            eprintln!("skipping the VM timeout test: {e}");
            return;
        }
        Err(e) => panic!("image: {e}"),
    };
    let t = Instant::now();
    let err = Vm::run(&image, "sleep 600\n", Duration::from_secs(3)).unwrap_err();
    let took = t.elapsed();
    assert!(matches!(err, VmError::Timeout { .. }), "{err}");
    assert!(
        took < Duration::from_secs(30),
        "run returned after {took:?}"
    );
    // qemu (whose command line names the image's directory) is gone
    let left = processes_mentioning(&work.to_string_lossy());
    let _ = std::fs::remove_dir_all(&work);
    assert!(left.is_empty(), "qemu still running: {left:?}");
}
