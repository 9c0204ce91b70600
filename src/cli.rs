//! The binaries' shared ending: usage on `--help`, and a message with exit code 2 for bad
//! input or a failed run, never a panic.

use std::fmt::Display;
use std::process::ExitCode;

/// Turns a parse result (`Ok(None)` for `--help`) and the run it leads to into an exit code.
pub fn finish<A, E: Display>(
    program: &str,
    usage: &str,
    parsed: Result<Option<A>, E>,
    run: impl FnOnce(&A) -> crate::Result<()>,
) -> ExitCode {
    match parsed {
        Ok(None) => {
            println!("{usage}");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("{program}: {msg}\n{usage}");
            ExitCode::from(2)
        }
        Ok(Some(args)) => match run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{program}: {e}");
                ExitCode::from(2)
            }
        },
    }
}
