//! Helpers shared by the runtime's integration tests: one device per test binary, and specs
//! loaded and checked from `specs/`.

#![allow(dead_code)]

use std::sync::OnceLock;

use genc_compiler::check;
use genc_runtime::device::{Device, DeviceChoice};

/// Lavapipe when present (as in CI), else whatever device there is.
pub fn device() -> &'static Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE.get_or_init(|| {
        match Device::open(DeviceChoice::Cpu).or_else(|_| Device::open(DeviceChoice::Auto)) {
            Ok(d) => d,
            Err(e) => panic!("no device: {e}"),
        }
    })
}

/// `specs/NAME.gen`, parsed and type-checked (it must be clean).
pub fn checked(name: &str) -> check::Checked {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs").join(format!("{name}.gen"));
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (ast, errors) = genc_grammar::parse(&source);
    assert!(errors.is_empty(), "{name}: {errors:?}");
    let c = check::check(&ast, &[]);
    assert!(c.errors.is_empty(), "{name}: {:?}", c.errors);
    c
}
