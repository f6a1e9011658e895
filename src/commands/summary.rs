//! `genc summary FILE`: per net, its layers, output shapes and parameter counts.

use std::path::Path;

use super::{Status, load_checked};
use crate::report::Reporter;

pub fn run(path: &Path, sets: &[String], reporter: &Reporter) -> Status {
    match load_checked(path, sets, reporter) {
        Ok(checked) => {
            print!("{}", genc_compiler::stages::summary(&checked));
            Status::Ok
        }
        Err(status) => status,
    }
}
