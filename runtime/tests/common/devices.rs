//! The devices a test binary runs its tests on: written once, every test body runs on each.
//!
//! `GENC_TEST_DEVICES` names them (comma-separated `cpu`, `vulkan-cpu`, `gpu`); by default
//! the host device, lavapipe when it is installed (as in CI) and a GPU when there is one.
//! A device that was named but cannot be opened fails the run; a default one that is
//! missing is skipped with a note.

#![allow(dead_code)]

use std::cell::Cell;
use std::sync::OnceLock;

use genc_runtime::device::{Device, DeviceChoice};

/// Every device of this run, opened once per test binary (shader caches live on).
pub fn devices() -> &'static [(DeviceChoice, Device)] {
    static DEVICES: OnceLock<Vec<(DeviceChoice, Device)>> = OnceLock::new();
    DEVICES.get_or_init(|| {
        let named = std::env::var("GENC_TEST_DEVICES").ok().filter(|s| !s.trim().is_empty());
        let wanted: Vec<(DeviceChoice, bool)> = match &named {
            Some(list) => list
                .split(',')
                .map(|s| {
                    let choice = s.trim().parse().unwrap_or_else(|e| panic!("GENC_TEST_DEVICES: {e}"));
                    (choice, true)
                })
                .collect(),
            None => {
                vec![(DeviceChoice::Cpu, true), (DeviceChoice::VulkanCpu, false), (DeviceChoice::Gpu, false)]
            }
        };
        let mut opened = Vec::new();
        for (choice, required) in wanted {
            match Device::open(choice) {
                Ok(d) => opened.push((choice, d)),
                Err(e) if required => {
                    panic!("GENC_TEST_DEVICES names `{choice}`, which cannot be opened: {e}")
                }
                Err(e) => eprintln!("tests: no `{choice}` device here ({e}); its runs are skipped"),
            }
        }
        assert!(!opened.is_empty(), "no device to test on");
        opened
    })
}

thread_local! {
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

/// The device the running test body is on (the first device outside [`on_every_device`]).
pub fn device() -> &'static Device {
    &devices()[CURRENT.with(Cell::get)].1
}

/// Which kind of device [`device`] is.
pub fn device_choice() -> DeviceChoice {
    devices()[CURRENT.with(Cell::get)].0
}

/// Runs `body` once on each device; a failure names the device it failed on.
pub fn on_every_device(body: impl Fn()) {
    for (k, (choice, d)) in devices().iter().enumerate() {
        CURRENT.with(|c| c.set(k));
        eprintln!("-- on --device {choice} ({})", d.name());
        body();
    }
    CURRENT.with(|c| c.set(0));
}
