//! The remoting server and client settings (upstream's `NettyServerConfig` and
//! `NettyClientConfig`, spec/properties.md §3.3-3.4). Most are Netty thread and buffer knobs that
//! shardmq accepts and prints for compatibility; what the glommio network layer honours is
//! documented where it reads them. Defaults are 4.9.8's; 4.3 differs where noted.

use super::value::config_section;

config_section! {
    /// The remoting server: shared by the broker (listen port 10911) and the nameserver (9876).
    pub struct NettyServerConfig(env) in NETTY_SERVER_FIELDS {
        /// Remoting listen port (class default 8888; the broker and namesrv set their own).
        /// The broker also listens on `listenPort - 2` (VIP) and `listenPort + 1` (HA).
        "listenPort" => listen_port: u16 = 8888, parse = super::value::parse_port;
        /// The local IPv4 address the listen, VIP and HA ports bind (5.x key; 4.x always binds
        /// every interface). Lets several brokers share a port number on one host, each on
        /// its own address (the seed cluster on loopback addresses).
        "bindAddress" => bind_address: String = "0.0.0.0".to_owned();
        "serverWorkerThreads" => server_worker_threads: u32 = 8;
        /// 0 means 4 upstream.
        "serverCallbackExecutorThreads" => server_callback_executor_threads: u32 = 0;
        "serverSelectorThreads" => server_selector_threads: u32 = 3;
        /// Max concurrent server-initiated oneway requests.
        "serverOnewaySemaphoreValue" => server_oneway_semaphore_value: u32 = 256;
        /// Max concurrent server-initiated async requests.
        "serverAsyncSemaphoreValue" => server_async_semaphore_value: u32 = 64;
        /// Idle connections are closed after this many seconds.
        "serverChannelMaxIdleTimeSeconds" => server_channel_max_idle_time_seconds: u32 = 120;
        /// SO_SNDBUF; 0 = OS default (4.3: 65535).
        "serverSocketSndBufSize" => server_socket_snd_buf_size: u32 = 0;
        /// SO_RCVBUF; 0 = OS default (4.3: 65535).
        "serverSocketRcvBufSize" => server_socket_rcv_buf_size: u32 = 0;
        /// listen(2) backlog (4.9).
        "serverSocketBacklog" => server_socket_backlog: u32 = 1024;
        /// Per-connection write high-water mark, 0 = default (4.9).
        "writeBufferHighWaterMark" => write_buffer_high_water_mark: u32 = 0;
        /// Per-connection write low-water mark, 0 = default (4.9).
        "writeBufferLowWaterMark" => write_buffer_low_water_mark: u32 = 0;
        "serverPooledByteBufAllocatorEnable" => server_pooled_byte_buf_allocator_enable: bool =
            true;
        "useEpollNativeSelector" => use_epoll_native_selector: bool = false;
    }
}

config_section! {
    /// The broker's outgoing connections (to nameservers and, for a slave, its master).
    pub struct NettyClientConfig(env) in NETTY_CLIENT_FIELDS {
        "clientWorkerThreads" => client_worker_threads: u32 = 4;
        /// Default: the number of cores.
        "clientCallbackExecutorThreads" => client_callback_executor_threads: u32 = env.cores;
        "clientOnewaySemaphoreValue" => client_oneway_semaphore_value: u32 = 65535;
        "clientAsyncSemaphoreValue" => client_async_semaphore_value: u32 = 65535;
        /// Connect timeout, ms.
        "connectTimeoutMillis" => connect_timeout_millis: u32 = 3000;
        /// Unused upstream.
        "channelNotActiveInterval" => channel_not_active_interval: u64 = 60000;
        "clientChannelMaxIdleTimeSeconds" => client_channel_max_idle_time_seconds: u32 = 120;
        /// SO_SNDBUF; 0 = OS default (4.3: 65535).
        "clientSocketSndBufSize" => client_socket_snd_buf_size: u32 = 0;
        /// SO_RCVBUF; 0 = OS default (4.3: 65535).
        "clientSocketRcvBufSize" => client_socket_rcv_buf_size: u32 = 0;
        "clientPooledByteBufAllocatorEnable" => client_pooled_byte_buf_allocator_enable: bool =
            false;
        /// Close a connection after a request on it timed out (4.3: false).
        "clientCloseSocketIfTimeout" => client_close_socket_if_timeout: bool = true;
        /// TLS for outgoing connections (upstream: `-Dtls.enable`).
        "useTLS" => use_tls: bool = false;
        /// Same key as the server's: upstream applies it to both objects.
        "writeBufferHighWaterMark" => write_buffer_high_water_mark: u32 = 0;
        "writeBufferLowWaterMark" => write_buffer_low_water_mark: u32 = 0;
    }
}
