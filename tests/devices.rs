//! `genc devices`: lists adapters and opens one; without any Vulkan driver it fails with the
//! E0901 diagnostic and its install hint instead of panicking.

mod common;

use std::process::{Command, Output};

fn genc_devices(args: &[&str], no_driver: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_genc"));
    cmd.arg("devices").args(args).current_dir(common::root());
    if no_driver {
        // Point the Vulkan loader at no driver at all.
        cmd.env("VK_ICD_FILENAMES", "/nonexistent.json").env("VK_DRIVER_FILES", "/nonexistent.json");
    }
    cmd.output().unwrap_or_else(|e| panic!("cannot run genc: {e}"))
}

#[test]
fn devices_lists_the_adapters_and_opens_one() {
    let out = genc_devices(&[], false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("adapters:"), "{stdout}");
    assert!(stdout.contains("--device auto: "), "{stdout}");
    // auto is a GPU when there is one, else the host device.
    assert!(stdout.contains("wgpu<") || stdout.contains("host f32"), "{stdout}");
    let lavapipe = genc_devices(&["--device", "vulkan-cpu"], false);
    let stdout = String::from_utf8_lossy(&lavapipe.stdout);
    assert_eq!(lavapipe.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("wgpu<"), "{stdout}");
}

#[test]
fn the_host_device_needs_no_vulkan_driver() {
    let out = genc_devices(&["--device", "cpu"], true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("--device cpu: ") && stdout.contains("host f32"), "{stdout}");
}

#[test]
fn no_vulkan_driver_is_a_diagnostic_with_the_install_hint() {
    let out = genc_devices(&["--device", "vulkan-cpu"], true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("E0901"), "{stderr}");
    assert!(stderr.contains("mesa-vulkan-drivers"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn an_unknown_device_is_a_usage_error() {
    let out = genc_devices(&["--device", "tpu"], false);
    assert_eq!(out.status.code(), Some(2));
}
