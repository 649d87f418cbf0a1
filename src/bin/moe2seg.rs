//! `moe2seg`: the command-line face of moengage-segment.

use std::io;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use moengage_segment::cli_map;

#[derive(Parser)]
#[command(name = "moe2seg", version, about = "MoEngage Streams → Segment bridge")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Map one Streams body to Segment messages: JSON Lines on stdout, rejected events as
    /// JSON Lines on stderr. Exit 2 when the input is not a Streams request.
    Map {
        /// The body file; `-` or nothing reads stdin.
        file: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Map { file } => {
            let bytes = match cli_map::read_input(file.as_deref()) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!(
                        "moe2seg: cannot read {}: {e}",
                        file.as_deref().unwrap_or("stdin")
                    );
                    return ExitCode::from(2);
                }
            };
            let code = cli_map::run_map(&bytes, &mut io::stdout().lock(), &mut io::stderr().lock());
            match code {
                Ok(c) => ExitCode::from(c as u8),
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("moe2seg: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
