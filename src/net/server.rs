//! Accept loop. Every shard binds the same address with SO_REUSEPORT (glommio's default), so
//! the kernel spreads connections over the shards.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use glommio::net::TcpListener;

use super::connection::{Connection, Handler};

/// Binds `addr` on the current shard.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).map_err(std::io::Error::from)
}

/// Accepts connections forever, serving each with `handler`. `shard` goes into the high bits
/// of connection ids so they are unique across the process.
pub async fn serve<H: Handler>(listener: TcpListener, handler: Rc<H>, shard: u16) {
    let counter = Cell::new(0u64);
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let n = counter.get().wrapping_add(1);
                counter.set(n);
                let id = (u64::from(shard) << 48) | (n & 0xFFFF_FFFF_FFFF);
                Connection::start(stream, id, Some(handler.clone()));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
