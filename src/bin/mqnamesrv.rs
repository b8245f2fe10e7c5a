//! `mqnamesrv [-c namesrv.properties] [-p]`: the nameserver alone.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "mqnamesrv",
    about = "shardmq nameserver (RocketMQ 4.x compatible)"
)]
struct Args {
    /// Name server config properties file
    #[arg(short = 'c', long = "configFile")]
    config_file: Option<PathBuf>,
    /// Print all config items and exit
    #[arg(short = 'p', long = "printConfigItem")]
    print_all: bool,
    /// Accepted for upstream compatibility and ignored (a nameserver has no nameservers)
    #[arg(short = 'n', long = "namesrvAddr")]
    _namesrv_addr: Option<String>,
}

fn main() -> ExitCode {
    // Before anything allocates much (the logger's thread and buffers included).
    let thp = shardmq::runtime::disable_transparent_huge_pages();
    let _logs = shardmq::logging::init("namesrv");
    if let Err(e) = thp {
        tracing::warn!(
            "cannot turn transparent huge pages off (prctl): {e}; expect page-fault stalls"
        );
    }
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mqnamesrv: {e}");
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let loaded = shardmq::config::NamesrvConfig::load(args.config_file.as_deref())
        .map_err(|e| e.to_string())?;
    let config = loaded.config;
    if args.print_all {
        print!("{}", config.print_all());
        return Ok(());
    }
    let ip: std::net::Ipv4Addr = config.netty_server.bind_address.parse().map_err(|_| {
        format!(
            "bindAddress={} is not an IPv4 address",
            config.netty_server.bind_address
        )
    })?;
    let addr = std::net::SocketAddr::from((ip, config.netty_server.listen_port));
    let settings = shardmq::namesrv::NamesrvSettings {
        kv_config_path: config.kv_config_path.clone(),
        order_message_enable: config.order_message_enable,
        extra_config: Vec::new(),
    };
    let handle = shardmq::namesrv_service::spawn(addr, settings)?;
    tracing::info!(%addr, "The Name Server boot success. serializeType=JSON");
    shardmq::signals::wait_for_termination()?;
    tracing::info!("shutdown requested");
    drop(handle);
    Ok(())
}
