//! A fault-injecting TCP proxy for the link between two real nodes: it forwards bytes both ways and can cut the
//! link (every open connection is closed, new ones are closed on arrival), heal it, and delay every chunk by a
//! fixed latency each way. TLS passes through untouched: the child still checks the parent's certificate by its
//! division code's name (`certs::node_dns_name`), whatever address it dials.
//!
//! ```ignore
//! let proxy = Proxy::start(cluster.node("320100").federation).await?;
//! route_uplink(&mut cluster, "320102", proxy.address()).await?;
//! proxy.cut();
//! proxy.heal();
//! proxy.set_latency(Duration::from_millis(50));
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::cluster::Cluster;

/// Bytes read at a time from either side.
const CHUNK_BYTES: usize = 64 * 1024;

/// What the proxy does now; shared by its tasks.
struct Faults {
    /// `true` while the link is cut.
    cut: watch::Sender<bool>,
    /// Delay of every chunk, each way, in microseconds.
    latency_micros: AtomicU64,
    /// Connections accepted (also those closed because the link was cut).
    connections: AtomicU64,
}

/// A proxy listening on a loopback port of its own, forwarding to `target`. Stops when dropped.
pub struct Proxy {
    address: SocketAddr,
    faults: Arc<Faults>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts forwarding connections on a fresh loopback port to `target`.
    pub async fn start(target: SocketAddr) -> anyhow::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("binding the proxy")?;
        let address = listener.local_addr()?;
        let faults = Arc::new(Faults {
            cut: watch::channel(false).0,
            latency_micros: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        });
        let task = tokio::spawn(accept(listener, target, faults.clone()));
        Ok(Proxy { address, faults, task })
    }

    /// Where to dial instead of the target.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Cuts the link: open connections are closed at once, new ones as they arrive.
    pub fn cut(&self) {
        self.faults.cut.send_replace(true);
    }

    /// Heals the link: new connections are forwarded again.
    pub fn heal(&self) {
        self.faults.cut.send_replace(false);
    }

    /// Delays every chunk by `latency` in each direction (zero: none). Applies to chunks read from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.faults.latency_micros.store(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.faults.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, target: SocketAddr, faults: Arc<Faults>) {
    let mut connections = tokio::task::JoinSet::new();
    while let Ok((client, _)) = listener.accept().await {
        faults.connections.fetch_add(1, Ordering::Relaxed);
        if *faults.cut.borrow() {
            drop(client);
            continue;
        }
        connections.spawn(forward(client, target, faults.clone()));
        // Reap finished connections so a long flapping run does not accumulate them.
        while connections.try_join_next().is_some() {}
    }
}

/// Forwards one connection until either side closes or the link is cut.
async fn forward(client: TcpStream, target: SocketAddr, faults: Arc<Faults>) {
    let Ok(server) = TcpStream::connect(target).await else { return };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut cut = faults.cut.subscribe();
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(client_read, server_write, faults.clone());
    let down = pump(server_read, client_write, faults.clone());
    tokio::select! {
        _ = cut.wait_for(|cut| *cut) => {}
        _ = async { tokio::join!(up, down) } => {}
    }
    // Dropping both halves of both sockets closes the connection.
}

/// Copies `from` to `to`, each chunk delivered `latency` after it was read, in order.
async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, faults: Arc<Faults>) {
    let (chunks, mut delayed) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buffer = vec![0u8; CHUNK_BYTES];
        loop {
            match from.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => {
                    let latency = Duration::from_micros(faults.latency_micros.load(Ordering::Relaxed));
                    if chunks.send((Instant::now() + latency, buffer[..read].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = delayed.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// Points `code`'s uplink at `address` (a proxy before its parent's federation port) and restarts the node so it
/// dials there. The TLS server name stays the parent's (it follows the parent's code, not the address).
pub async fn route_uplink(cluster: &mut Cluster, code: &str, address: SocketAddr) -> anyhow::Result<()> {
    cluster.stop(code).await?;
    let node = cluster.node(code);
    let parent = node.parent.clone().context("the node has no parent")?;
    let direct = format!("parent = \"https://{}\"", cluster.node(&parent).federation);
    let config = std::fs::read_to_string(&node.config_path)?;
    anyhow::ensure!(config.contains(&direct), "{code}'s config does not name its parent's address");
    std::fs::write(&node.config_path, config.replace(&direct, &format!("parent = \"https://{address}\"")))?;
    cluster.start_again(code).await
}
