//! The `lbdeploy` executable: the controller's CLI and, on every host, the
//! agent. All logic lives in the library; this file only parses, runs and
//! turns the outcome into an exit code.

use std::process::ExitCode;

use clap::Parser;
use lbdeploy::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli::run(cli) {
        Ok(status) => ExitCode::from(status as u8),
        // `lbdeploy plan | head`: the reader has seen enough; not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole context chain on one line; secrets
            // and control characters (from hosts) never reach the terminal.
            let text =
                lbdeploy::util::redact::text(&format!("{e:#}")).into_owned();
            let text = lbdeploy::util::terminal::escape_lines(&text);
            eprintln!("lbdeploy: error: {text}");
            ExitCode::from(lbdeploy::exit::ExitStatus::Error as u8)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
