//! Real `ecovol` processes: started from the built binary, stopped with SIGKILL when a test wants a crash.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// Path of the `ecovol` binary under test. Use it from integration tests (cargo builds the binary before them).
#[macro_export]
macro_rules! ecovol_binary {
    () => {
        std::path::Path::new(env!("CARGO_BIN_EXE_ecovol-under-test"))
    };
}

/// A node running as its own process.
pub struct NodeProcess {
    pub child: Child,
    pub address: SocketAddr,
}

impl NodeProcess {
    /// Starts `ecovol serve --config <config>` and waits until it accepts gRPC health checks.
    pub async fn start(binary: &Path, config: &Path, address: SocketAddr) -> anyhow::Result<NodeProcess> {
        let child = Command::new(binary)
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawning ecovol serve")?;
        let mut process = NodeProcess { child, address };
        process.wait_ready(Duration::from_secs(30)).await?;
        Ok(process)
    }

    async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("ecovol exited during start-up: {status}");
            }
            if let Ok(channel) =
                tonic::transport::Endpoint::from_shared(format!("http://{}", self.address))?.connect().await
            {
                let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
                let asked = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await;
                if asked.is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("ecovol did not become ready within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown, no final flush — a crash.
    pub fn kill_hard(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM and wait for a graceful exit.
    pub fn terminate(mut self) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        Ok(self.child.wait()?)
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound then released; fine for tests on one machine).
pub fn free_address() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}
