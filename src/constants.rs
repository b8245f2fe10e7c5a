//! Every limit of the crate, in one place, with the relationships between them
//! checked at compile time. Pure data: no code runs here.

/// Largest frame we accept or send, counted with its 4-byte length word: upstream's
/// default `com.rocketmq.remoting.frameMaxLength` (spec/remoting.md §2).
pub const FRAME_MAX_LEN: usize = 16 * 1024 * 1024;

/// The frame's second word keeps the header length in its low 24 bits.
pub const HEADER_MAX_LEN: usize = 0x00FF_FFFF;

/// Length word + serialize-type/header-length word.
pub const FRAME_PREFIX_LEN: usize = 8;

/// Fixed part of a ROCKETMQ binary header (spec/remoting.md §3.2).
pub const BINARY_HEADER_FIXED_LEN: usize = 21;

/// Nesting limit of the lenient fastjson reader (bodies we parse are 4-5 levels deep).
pub const JSON_MAX_DEPTH: usize = 64;

/// Largest JSON text the lenient reader accepts: a body never exceeds a frame.
pub const JSON_MAX_LEN: usize = FRAME_MAX_LEN;

/// Message properties are stored behind a signed 16-bit length (message-format.md §2).
pub const MESSAGE_PROPERTIES_MAX_LEN: usize = i16::MAX as usize;

/// Topic names are stored behind a signed byte length (message-format.md §2).
pub const TOPIC_MAX_LEN: usize = i8::MAX as usize;

/// Fixed part of one mini-record of a batch body (message-format.md §6).
pub const BATCH_RECORD_FIXED_LEN: usize = 22;

const _: () = assert!(FRAME_MAX_LEN <= i32::MAX as usize);
const _: () = assert!(FRAME_PREFIX_LEN + BINARY_HEADER_FIXED_LEN < FRAME_MAX_LEN);
const _: () = assert!(HEADER_MAX_LEN < FRAME_MAX_LEN);
const _: () = assert!(JSON_MAX_LEN <= FRAME_MAX_LEN);
const _: () = assert!(JSON_MAX_DEPTH >= 8);
const _: () = assert!(MESSAGE_PROPERTIES_MAX_LEN == 32767);
const _: () = assert!(TOPIC_MAX_LEN == 127);

// Runtime and network limits.

/// Jobs queued towards one shard before senders wait (cross-shard back-pressure).
pub const MESH_CHANNEL_CAPACITY: usize = 4096;

/// Encoded frames queued for one connection's writer before handlers wait.
pub const CONN_WRITE_QUEUE_FRAMES: usize = 1024;
/// One write gathers queued frames up to this many bytes.
pub const CONN_WRITE_BATCH_BYTES: usize = 256 * 1024;
/// A frame body this large is written as it is, after the gathered bytes, instead of being
/// copied into the gathering buffer (a pull response's records).
pub const CONN_WRITE_DIRECT_BODY_BYTES: usize = 16 * 1024;
/// Room reserved for a frame's length words and header when it is encoded: a send or pull
/// response header is 150–400 bytes; a larger one grows the buffer once.
pub const FRAME_HEADER_RESERVE_BYTES: usize = 512;
/// Bytes read from a socket per read call.
pub const CONN_READ_BUFFER_BYTES: usize = 64 * 1024;
/// Requests being served at once for one connection; beyond it the client is misbehaving.
pub const CONN_MAX_IN_FLIGHT_REQUESTS: usize = 65_536;

/// A master reads commit-log bytes its read cache no longer holds (a slave catching up) this
/// many at a time, and ships them in transfers of `haTransferBatchSize`.
pub const HA_CATCH_UP_READ_BYTES: u32 = 1 << 20;

/// A long-polled pull is held at most this long whatever the client asks (clients time out
/// suspended pulls after 30 s).
pub const PULL_SUSPEND_MAX_MS: u64 = 20_000;
/// Messages a pull returns at most (upstream's in-memory transfer cap).
pub const PULL_MAX_MESSAGES: u32 = 32;
/// Bytes a pull returns at most (upstream's `maxTransferBytesOnMessageInMemory`).
pub const PULL_MAX_BYTES: u32 = 256 * 1024;

/// A client that has not sent a heartbeat for this long is dropped from its groups.
pub const CLIENT_CHANNEL_EXPIRE_MS: i64 = 120_000;

const _: () = assert!(CONN_READ_BUFFER_BYTES <= FRAME_MAX_LEN);
const _: () = assert!(CONN_WRITE_BATCH_BYTES <= FRAME_MAX_LEN);
const _: () = assert!(PULL_SUSPEND_MAX_MS < 30_000);

/// Longest stretch a shard runs ready tasks before it polls its ring (timers, completions,
/// sockets). glommio's default is 100 ms: a shard with always-ready work (a slave catching
/// up, a flooded connection, both yielding per piece) then answered nothing else for that
/// long (ARCHITECTURE 44).
pub const SHARD_PREEMPT_TIMER: std::time::Duration = std::time::Duration::from_millis(10);

/// io_uring registered-buffer memory per executor. `ulimit -l` is 8 MiB on these machines
/// and is shared by every executor of the process (GLOMMIO-NOTES.md).
pub const GLOMMIO_IO_MEMORY_BYTES: usize = 512 * 1024;
