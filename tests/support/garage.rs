//! A real Garage (the S3-compatible store, crates.io `garage` 2.5.0) for the storage tests: one
//! node on free loopback ports in a temporary directory, with its layout applied and an access key
//! that may create buckets. Killed when dropped; [`Garage::stop`] and [`Garage::start_again`]
//! take it down and bring it back on the same ports and data, as an outage would.
//!
//! `cargo xtask test` installs the binary when it is missing (once per machine, ~20 minutes).
//! Set `GARAGE_BIN` to use another one.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The region Garage signs and checks requests for (`s3_region`); chosen unlike any AWS region
/// so that a client which ignores the configured region fails visibly.
pub const REGION: &str = "garage";

/// How long Garage may take to answer after starting, layout included.
const READY_WITHIN: Duration = Duration::from_secs(60);

pub struct Garage {
    child: Option<Child>,
    dir: tempfile::TempDir,
    config: PathBuf,
    pub s3_port: u16,
    pub admin_port: u16,
    pub admin_token: String,
    pub region: String,
    /// A key allowed to create buckets.
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Garage {
    /// Starts a fresh single-node Garage and waits until it serves S3 with a usable key.
    pub fn start() -> Garage {
        let bin = bin();
        let dir = tempfile::tempdir().unwrap();
        let [s3_port, admin_port, rpc_port] = free_ports();
        let admin_token = random_hex(16);
        let config = dir.path().join("garage.toml");
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "sqlite"
replication_factor = 1

rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{rpc_secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"

[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
admin_token = "{admin_token}"
"#,
                dir = dir.path().display(),
                rpc_secret = random_hex(32),
            ),
        )
        .unwrap();

        let mut garage = Garage {
            child: None,
            dir,
            config,
            s3_port,
            admin_port,
            admin_token,
            region: REGION.to_owned(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
        };
        garage.spawn(&bin);
        garage.wait_for_rpc();

        // `node id` prints `<64 hex>@<address>`; the layout wants the id alone.
        let node = garage.cli(&["node", "id", "--quiet"]);
        let node_id: String = node.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
        assert_eq!(node_id.len(), 64, "unexpected `garage node id`: {node}");
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node_id]);
        garage.cli(&["layout", "apply", "--version", "1"]);
        garage.wait_until_healthy();

        let key: Value = serde_json::from_str(&garage.cli(&[
            "json-api",
            "CreateKey",
            r#"{"name": "corbel-test", "allow": {"createBucket": true}}"#,
        ]))
        .expect("`garage json-api CreateKey` prints JSON");
        garage.access_key_id = key["accessKeyId"].as_str().unwrap().to_owned();
        garage.secret_access_key = key["secretAccessKey"].as_str().unwrap().to_owned();
        garage
    }

    /// The S3 endpoint, for path-style requests.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// Kills the server (SIGKILL, as a crash would). Data and ports stay reserved for
    /// [`Garage::start_again`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and data, and waits until it is healthy.
    pub fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "garage is still running: stop() it first"
        );
        self.spawn(&bin());
        self.wait_until_healthy();
    }

    /// Runs the `garage` CLI against this node (e.g. `["bucket", "create", "name"]`) and returns
    /// its standard output; panics with the output and the server log when it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = self.cli_output(args);
        assert!(
            output.status.success(),
            "garage {} failed ({}):\n{}{}\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        String::from_utf8(output.stdout).unwrap()
    }

    pub fn log(&self) -> String {
        format!(
            "garage log:\n{}",
            std::fs::read_to_string(self.log_path()).unwrap_or_default()
        )
    }

    fn cli_output(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("failed to run the garage CLI")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("garage.log")
    }

    fn spawn(&mut self, bin: &Path) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(bin)
            .arg("-c")
            .arg(&self.config)
            .arg("server")
            .env("RUST_LOG", "garage=info,garage_api_s3=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("failed to start garage");
        self.child = Some(child);
    }

    /// Panics with the log if the server process has exited.
    fn check_running(&mut self) {
        let child = self.child.as_mut().expect("garage was started");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("garage exited ({status}) while starting\n{}", self.log());
        }
    }

    fn wait_for_rpc(&mut self) {
        let started = Instant::now();
        loop {
            self.check_running();
            if self.cli_output(&["status"]).status.success() {
                return;
            }
            assert!(
                started.elapsed() < READY_WITHIN,
                "garage did not answer `garage status` within {READY_WITHIN:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The admin `/health` is 503 until the layout is applied and the node serves, then 200.
    fn wait_until_healthy(&mut self) {
        let started = Instant::now();
        loop {
            self.check_running();
            if http_status(self.admin_port, "/health") == Some(200)
                && TcpStream::connect(("127.0.0.1", self.s3_port)).is_ok()
            {
                return;
            }
            assert!(
                started.elapsed() < READY_WITHIN,
                "garage's /health was not 200 within {READY_WITHIN:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `garage` binary: `GARAGE_BIN`, else `garage` on `PATH`, else cargo's bin directory.
pub fn bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(find_bin).clone()
}

fn find_bin() -> PathBuf {
    let works = |bin: &Path| {
        Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if let Some(path) = std::env::var_os("GARAGE_BIN").map(PathBuf::from) {
        assert!(
            works(&path),
            "GARAGE_BIN={} does not run (`--version` failed): unset it to use the garage that \
             `cargo xtask test` installs",
            path.display()
        );
        return path;
    }
    let on_path = PathBuf::from("garage");
    if works(&on_path) {
        return on_path;
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));
    if let Some(installed) = cargo_home.map(|home| home.join("bin/garage"))
        && works(&installed)
    {
        return installed;
    }
    panic!(
        "garage is not installed (`garage --version` failed): run `cargo xtask test`, which \
         installs it (cargo install garage --locked --version 2.5.0, ~20 minutes once per machine)"
    );
}

/// Distinct free loopback ports: all are bound at once so that none is handed out twice.
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("/dev/urandom is readable");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The status of a plain `GET` on loopback, or `None` when nothing answers. HTTP/1.0 so the
/// server closes the connection after answering, and no client crate is needed.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}

/// A blocking HTTP transport for the plugin's S3 client, over ureq: what wasi:http is to the
/// plugin. Every status is an answer for the S3 client to read, not a transport failure.
pub struct UreqTransport {
    /// `None`: a fresh agent (and connection) per request, as each wasi:http request pays.
    agent: Option<ureq::Agent>,
}

impl UreqTransport {
    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into()
    }

    /// One agent, keeping connections alive between requests.
    pub fn pooled() -> UreqTransport {
        UreqTransport {
            agent: Some(Self::agent()),
        }
    }

    /// A new connection for every request.
    pub fn per_request() -> UreqTransport {
        UreqTransport { agent: None }
    }
}

impl storage::s3::Transport for UreqTransport {
    fn send(
        &self,
        request: storage::s3::HttpRequest,
    ) -> Result<storage::s3::HttpResponse, storage::s3::TransportError> {
        use std::io::Read;
        use storage::s3::TransportError;
        let fresh;
        let agent = match &self.agent {
            Some(agent) => agent,
            None => {
                fresh = Self::agent();
                &fresh
            }
        };
        let what = format!("{} {}", request.method, request.url);
        let mut builder = ureq::http::Request::builder()
            .method(request.method.as_str())
            .uri(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let sent = if request.body.is_empty() {
            builder.body(()).map(|r| agent.run(r))
        } else {
            builder.body(request.body).map(|r| agent.run(r))
        };
        let mut response = sent
            .map_err(|e| TransportError::with_source(format!("{what}: bad request"), e))?
            .map_err(|e| TransportError::with_source(format!("{what}: {e}"), e))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        response
            .body_mut()
            .as_reader()
            .read_to_end(&mut body)
            .map_err(|e| TransportError::with_source(format!("{what}: reading the body"), e))?;
        Ok(storage::s3::HttpResponse {
            status,
            headers,
            body,
        })
    }
}
