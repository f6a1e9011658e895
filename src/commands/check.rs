//! `genc check FILE...`: parse and type-check; report every diagnostic, or one OK line per file.

use std::path::PathBuf;
use std::time::Instant;

use super::{Status, load, parse, typecheck};
use crate::report::{MessageFormat, Reporter};

pub fn run(files: &[PathBuf], sets: &[String], reporter: &Reporter) -> Status {
    let mut status = Status::Ok;
    for path in files {
        let started = Instant::now();
        let file = match load(path, reporter) {
            Ok(file) => file,
            Err(s) => {
                status = status.worst(s);
                continue;
            }
        };
        let Some(ast) = parse(&file, reporter) else {
            status = status.worst(Status::Diagnostics);
            continue;
        };
        if let Err(s) = typecheck(&file, &ast, sets, reporter) {
            status = status.worst(s);
        } else {
            if reporter.format == MessageFormat::Human {
                let ms = started.elapsed().as_secs_f64() * 1e3;
                println!("ok: {} ({ms:.1} ms)", file.name());
            }
        }
    }
    status
}
