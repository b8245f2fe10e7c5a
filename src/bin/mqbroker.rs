//! `mqbroker`: upstream's command line (`-c`, `-n`, `-p`, `-m`) plus `--local`, the
//! one-command local mode (nameserver on a reserved executor + a single-master broker).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "mqbroker", about = "shardmq broker (RocketMQ 4.x compatible)")]
struct Args {
    /// Broker config file (.properties)
    #[arg(short = 'c', long = "configFile")]
    config_file: Option<PathBuf>,
    /// Name server address list, e.g. '192.168.0.1:9876;192.168.0.2:9876'
    #[arg(short = 'n', long = "namesrvAddr")]
    namesrv_addr: Option<String>,
    /// Print all config items and exit
    #[arg(short = 'p', long = "printConfigItem")]
    print_all: bool,
    /// Print important config items and exit
    #[arg(short = 'm', long = "printImportantConfig")]
    print_important: bool,
    /// Local mode: also run a nameserver in this process on 127.0.0.1:9876 and default to
    /// conf/local/broker.properties
    #[arg(long)]
    local: bool,
    /// Override one config key without editing the file, e.g. `--set brokerIP1=10.0.0.5`
    /// (repeatable; applied after the file, validated like a file entry)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

fn main() -> ExitCode {
    // Before anything allocates much (the logger's thread and buffers included).
    let thp = shardmq::runtime::disable_transparent_huge_pages();
    let _logs = shardmq::logging::init("broker");
    if let Err(e) = thp {
        tracing::warn!(
            "cannot turn transparent huge pages off (prctl): {e}; expect page-fault stalls"
        );
    }
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mqbroker: {e}");
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let file = match (&args.config_file, args.local) {
        (Some(f), _) => Some(f.clone()),
        (None, true) => Some(PathBuf::from("conf/local/broker.properties")),
        (None, false) => None,
    };
    let overrides = args
        .set
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| format!("--set {kv}: expected KEY=VALUE"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let loaded = shardmq::config::BrokerConfig::load_overridden(
        file.as_deref(),
        args.namesrv_addr.as_deref(),
        &overrides,
    )
    .map_err(|e| e.to_string())?;
    let config = loaded.config;
    if args.print_all || args.print_important {
        let text = if args.print_all {
            config.print_all()
        } else {
            config.print_important()
        };
        print!("{text}");
        return Ok(());
    }
    let _namesrv = if args.local {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 9876));
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        let settings = shardmq::namesrv::NamesrvSettings {
            kv_config_path: home.join("namesrv").join("kvConfig.json"),
            ..Default::default()
        };
        tracing::info!(%addr, "local mode: starting the nameserver");
        Some(shardmq::namesrv_service::spawn(addr, settings)?)
    } else {
        None
    };
    let settings = shardmq::broker::settings::from_config(&config)?;
    shardmq::broker::start::run(settings)
}
