//! `mqshutdown broker|namesrv`: sends SIGTERM to every running `mqbroker` / `mqnamesrv`
//! process, as upstream's script does for its Java processes; they stop cleanly.

use std::process::ExitCode;

fn main() -> ExitCode {
    let which = std::env::args().nth(1).unwrap_or_default();
    let name = match which.as_str() {
        "broker" => "mqbroker",
        "namesrv" => "mqnamesrv",
        _ => {
            eprintln!("Usage: mqshutdown (broker|namesrv)");
            return ExitCode::FAILURE;
        }
    };
    let pids = shardmq::signals::pids_named(name);
    if pids.is_empty() {
        println!("No {name} running.");
        return ExitCode::FAILURE;
    }
    for pid in pids {
        match shardmq::signals::terminate(pid) {
            Ok(()) => println!(
                "The {name}({pid}) is running...\nSend shutdown request to {name}({pid}) OK"
            ),
            Err(e) => eprintln!("cannot signal {name}({pid}): {e}"),
        }
    }
    ExitCode::SUCCESS
}
