//! The limits of this machine, measured in the same run as the scenarios: a bare tonic unary round trip over the
//! same mutual TLS with the same concurrency, raw sled insert + flush, the disk's fsync, and PostgreSQL taking
//! the same records as single-row durable inserts.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ecovol_node::store::{SledStore, Store};
use tokio::net::TcpListener;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use super::tls::BenchTls;
use super::{Figure, Latencies, Report, Size, drive};

/// Concurrent clients of the unary scenarios and of the echo baseline.
pub const CLIENTS: usize = 64;
/// Bytes of one record in the storage baselines: about what one service record's writes take (the record, its
/// first version, the idempotency entry, two index keys, the audit entry).
pub const RECORD_BYTES: usize = 1024;

/// Names of the limits, as scenarios look them up.
pub const ECHO: &str = "tonic echo, 64 clients";
/// p99 of `RUSH_CALLS` echo calls started at once over the same `CLIENTS` connections: the RPC layer's own p99 for
/// the sign-up rush, whatever the node does behind it.
pub const ECHO_RUSH: &str = "tonic echo rush p99";
pub const SLED_ONE: &str = "sled insert+flush, 1 writer";
pub const SLED_SIXTEEN: &str = "sled insert+flush, 16 writers";
pub const SLED_BATCH: &str = "sled batch 1000 + flush";
pub const POSTGRES_ONE: &str = "PostgreSQL insert, 1 client";
pub const POSTGRES_MANY: &str = "PostgreSQL insert, 64 clients";

pub async fn run(report: &mut Report, tls: &BenchTls, size: Size) -> anyhow::Result<()> {
    echo(report, tls, size).await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().to_path_buf();
    let figures = tokio::task::spawn_blocking(move || storage(&path, size)).await??;
    for figure in figures {
        report.push(figure);
    }
    match size {
        Size::Short => report.skip("baseline PostgreSQL", "short mode (initdb takes seconds)"),
        Size::Full => {
            let path = dir.path().join("pg");
            match tokio::task::spawn_blocking(move || postgres(&path)).await? {
                Ok(figures) => figures.into_iter().for_each(|figure| report.push(figure)),
                Err(error) => report.skip("baseline PostgreSQL", format!("{error:#}")),
            }
        }
    }
    Ok(())
}

/// The RPC limit: tonic's own health `Check` (a tiny unary call, no store behind it) over the bench's mutual
/// TLS, `CLIENTS` connections each with one call in flight.
async fn echo(report: &mut Report, tls: &BenchTls, size: Size) -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (_reporter, health) = tonic_health::server::health_reporter();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .tls_config(tls.server_config())?
        .tcp_nodelay(true)
        .add_service(health)
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async {
            let _ = stopped.await;
        });
    let server = tokio::spawn(server);
    let clients: Vec<_> = tls.channels(address, CLIENTS).await?.into_iter().map(HealthClient::new).collect();
    let call = |mut client: HealthClient<tonic::transport::Channel>, _index: usize| async move {
        client.check(HealthCheckRequest { service: String::new() }).await?;
        anyhow::Ok(())
    };
    drive(clients.clone(), size.pick(200, 20_000), call).await; // warm-up
    let load = drive(clients.clone(), size.pick(500, 150_000), call).await;
    let rush = rush_at_once(&clients, size.pick(300, 10_000), |mut client| async move {
        client.check(HealthCheckRequest { service: String::new() }).await.map(|_| ())
    })
    .await;
    let _ = stop.send(());
    let _ = server.await;
    anyhow::ensure!(load.failures == 0, "echo failed: {:?}", load.first_failure);
    report.push(Figure::new("baseline", ECHO, load.rate(), "calls/s").note(format!(
        "p50 {:.2} ms, p99 {:.2} ms",
        load.latencies.quantile_ms(0.5),
        load.latencies.quantile_ms(0.99)
    )));
    report.check("baseline echo calls", (load.calls - load.failures) as u64);
    anyhow::ensure!(rush.failed == 0, "echo rush: {} calls failed", rush.failed);
    report.push(Figure::new("baseline", ECHO_RUSH, rush.latencies.quantile_ms(0.99), "ms").note(format!(
        "{} calls at once over {CLIENTS} connections: p50 {:.0} ms, all answered in {:.2} s",
        rush.latencies.len(),
        rush.latencies.quantile_ms(0.5),
        rush.elapsed.as_secs_f64()
    )));
    Ok(())
}

/// What `rush_at_once` measured.
pub struct Rush<T> {
    /// Latency of every call, from its start (all start together) to its answer.
    pub latencies: Latencies,
    /// The answers, in call order.
    pub answers: Vec<Result<T, tonic::Status>>,
    pub failed: usize,
    /// From the first start to the last answer.
    pub elapsed: Duration,
}

/// Starts `calls` calls at once, the i-th on client `i % clients.len()` (the sign-up rush's shape), and waits for
/// every answer.
pub async fn rush_at_once<C, T, F, Fut>(clients: &[C], calls: usize, mut call: F) -> Rush<T>
where
    C: Clone + Send + 'static,
    T: Send + 'static,
    F: FnMut(C) -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>> + Send + 'static,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..calls)
        .map(|index| {
            let answer = call(clients[index % clients.len()].clone());
            tokio::spawn(async move {
                let begun = Instant::now();
                let answer = answer.await;
                (begun.elapsed(), answer)
            })
        })
        .collect();
    let (mut samples, mut answers, mut failed) = (Vec::with_capacity(calls), Vec::with_capacity(calls), 0);
    for task in tasks {
        match task.await {
            Ok((took, answer)) => {
                samples.push(took);
                failed += usize::from(answer.is_err());
                answers.push(answer);
            }
            Err(error) => {
                failed += 1;
                answers.push(Err(tonic::Status::internal(format!("call task failed: {error}"))));
            }
        }
    }
    Rush { latencies: Latencies::new(samples), answers, failed, elapsed: started.elapsed() }
}

/// The storage limits: sled (as the node opens it) taking `RECORD_BYTES` records, each flushed, and the
/// disk's fsync.
fn storage(dir: &Path, size: Size) -> anyhow::Result<Vec<Figure>> {
    let value = vec![b'x'; RECORD_BYTES];
    let mut figures = Vec::new();

    let store = SledStore::open(&dir.join("one"), 64 << 20)?;
    let count = size.pick(50, 3_000);
    let started = Instant::now();
    for index in 0..count {
        store.apply(&[(format!("rec/{index:010}").into_bytes(), Some(value.clone()))])?;
        store.flush()?;
    }
    figures.push(Figure::new("baseline", SLED_ONE, count as f64 / started.elapsed().as_secs_f64(), "records/s"));
    drop(store);

    let store = Arc::new(SledStore::open(&dir.join("sixteen"), 64 << 20)?);
    let each = size.pick(10, 600);
    let started = Instant::now();
    let writers: Vec<_> = (0..16)
        .map(|writer| {
            let (store, value) = (store.clone(), value.clone());
            std::thread::spawn(move || -> anyhow::Result<()> {
                for index in 0..each {
                    store.apply(&[(format!("rec/{writer:02}/{index:010}").into_bytes(), Some(value.clone()))])?;
                    store.flush()?;
                }
                Ok(())
            })
        })
        .collect();
    for writer in writers {
        writer.join().map_err(|_| anyhow::anyhow!("a sled writer panicked"))??;
    }
    let rate = (16 * each) as f64 / started.elapsed().as_secs_f64();
    figures.push(Figure::new("baseline", SLED_SIXTEEN, rate, "records/s"));
    drop(store);

    let store = SledStore::open(&dir.join("batch"), 64 << 20)?;
    let batches = size.pick(2, 200);
    let started = Instant::now();
    for batch in 0..batches {
        let writes: Vec<_> =
            (0..1000).map(|index| (format!("rec/{batch:06}/{index:04}").into_bytes(), Some(value.clone()))).collect();
        store.apply(&writes)?;
        store.flush()?;
    }
    figures.push(Figure::new(
        "baseline",
        SLED_BATCH,
        (batches * 1000) as f64 / started.elapsed().as_secs_f64(),
        "records/s",
    ));
    drop(store);

    let mut file = std::fs::File::create(dir.join("fsync.bin"))?;
    let block = vec![0u8; 4096];
    let mut data_sync = Vec::new();
    let mut full_sync = Vec::new();
    for round in 0..size.pick(20, 500) {
        file.write_all(&block)?;
        let started = Instant::now();
        if round % 2 == 0 {
            file.sync_data()?;
            data_sync.push(started.elapsed());
        } else {
            file.sync_all()?;
            full_sync.push(started.elapsed());
        }
    }
    for (name, samples) in [("fdatasync 4 KiB append", data_sync), ("fsync 4 KiB append", full_sync)] {
        let latencies = Latencies::new(samples);
        figures.push(
            Figure::new("baseline", format!("{name} p50"), latencies.quantile_ms(0.5), "ms")
                .note(format!("p99 {:.2} ms", latencies.quantile_ms(0.99))),
        );
    }
    Ok(figures)
}

/// PostgreSQL: a throwaway cluster (initdb) on a loopback port, pgbench inserting one `RECORD_BYTES` row per
/// transaction (durable: `synchronous_commit` on, as shipped) at 1 and at `CLIENTS` clients.
fn postgres(dir: &Path) -> anyhow::Result<Vec<Figure>> {
    let bin = ["/usr/local/bin", "/usr/lib/postgresql/15/bin"]
        .iter()
        .map(Path::new)
        .find(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .context("PostgreSQL (initdb, pg_ctl) is not installed")?;
    let pgbench = Path::new("/usr/bin/pgbench");
    anyhow::ensure!(pgbench.exists(), "pgbench is not installed");
    std::fs::create_dir_all(dir)?;
    // PostgreSQL refuses to run as root: run the server as the `postgres` account when we are root.
    let as_root = Command::new("id").arg("-u").output().map(|out| out.stdout.starts_with(b"0")).unwrap_or(false);
    let server_command = |program: &Path| {
        if as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    };
    if as_root {
        run_ok(Command::new("chown").args(["-R", "postgres"]).arg(dir))?;
        if let Some(parent) = dir.parent() {
            run_ok(Command::new("chmod").arg("755").arg(parent))?;
        }
    }
    let data = dir.join("data");
    run_ok(server_command(&bin.join("initdb")).args(["-A", "trust", "-U", "bench", "-D"]).arg(&data))?;
    let port = crate::free_port();
    let options = format!("-h 127.0.0.1 -p {port} -k {} -c max_connections=100", dir.display());
    run_ok(
        server_command(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(dir.join("log"))
            .args(["-w", "start"]),
    )?;
    let result = (|| -> anyhow::Result<Vec<Figure>> {
        let psql = |sql: &str| {
            let psql = [bin.join("psql"), "/usr/bin/psql".into(), "/usr/lib/postgresql/15/bin/psql".into()]
                .into_iter()
                .find(|path| path.exists())
                .unwrap_or_else(|| "psql".into());
            run_ok(Command::new(psql).args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "bench",
                "-d",
                "postgres",
                "-c",
                sql,
            ]))
        };
        psql("CREATE TABLE service_record (id bigserial PRIMARY KEY, body text NOT NULL)")?;
        let script = dir.join("insert.sql");
        std::fs::write(&script, format!("INSERT INTO service_record (body) VALUES (repeat('x', {RECORD_BYTES}));\n"))?;
        let mut figures = Vec::new();
        for (clients, name) in [(1usize, POSTGRES_ONE), (super::baseline::CLIENTS, POSTGRES_MANY)] {
            let output = Command::new(pgbench)
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "bench", "-n", "-T", "8", "-j", "2"])
                .args(["-c", &clients.to_string(), "-f"])
                .arg(&script)
                .arg("postgres")
                .output()?;
            let text = String::from_utf8_lossy(&output.stdout);
            anyhow::ensure!(output.status.success(), "pgbench failed: {}", String::from_utf8_lossy(&output.stderr));
            let tps = text
                .lines()
                .find(|line| line.starts_with("tps = "))
                .and_then(|line| line.trim_start_matches("tps = ").split_whitespace().next())
                .and_then(|number| number.parse::<f64>().ok())
                .context("no tps in pgbench's output")?;
            let latency = text
                .lines()
                .find(|line| line.starts_with("latency average"))
                .map(|line| line.trim().to_string())
                .unwrap_or_default();
            figures.push(Figure::new("baseline", name, tps, "inserts/s").note(latency));
        }
        Ok(figures)
    })();
    let _ = server_command(&bin.join("pg_ctl")).arg("-D").arg(&data).args(["-m", "immediate", "stop"]).output();
    result
}

fn run_ok(command: &mut Command) -> anyhow::Result<()> {
    let output = command.output().with_context(|| format!("running {command:?}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Waits up to `within` for `ready`, polling.
pub async fn wait_until(within: Duration, mut ready: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if ready().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
